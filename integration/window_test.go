package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clockSpan is a window from a to b as "HH:MM:SS-HH:MM:SS" in local time,
// every day (it may cross midnight).
func clockSpan(a, b time.Time) string {
	return a.Local().Format("15:04:05") + "-" + b.Local().Format("15:04:05")
}

// TestWindowDefersApply: a node whose maintenance window opens in half a
// minute fetches and stages the release at once, waits, says when the window
// opens, and switches only once it has. A later release whose rollout stage
// has a window far off waits although the node's own window is open (the
// stricter wins) until apply-now overrides it.
func TestWindowDefersApply(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 31)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)

	opens := time.Now().Add(30 * time.Second).Truncate(time.Second)
	n := newNode(t, nodeOpts{Name: "w1", Trust: pub.Trust, Sources: []string{seed.URL},
		// Open all day but the minute before opens: it holds the stage's window below.
		Extra: []string{"--window", clockSpan(opens, opens.Add(-time.Minute))}})

	waitFor(t, 25*time.Second, func() bool {
		st, err := n.status()
		return err == nil && st.Window != nil && st.Window.Waiting
	}, "w1 to stage 1.0.0 and wait for its window")
	st := n.Status(t)
	if w := st.Window; w.Open || w.Version != "1.0.0" || !w.OpensAt.Equal(opens) || !strings.Contains(w.Reason, "waiting for window (opens at") {
		t.Errorf("window status %+v, want 1.0.0 waiting for %s", w, opens)
	}
	if st.Current != nil {
		t.Fatalf("w1 applied %s before its window opened", st.Current.Version)
	}
	if out := mustPM(t, "status", "--api", n.API).stdout; !strings.Contains(out, "waiting for window (opens at") {
		t.Errorf("patchmesh status does not say the node waits for its window:\n%s", out)
	}
	if m := metrics(t, n); !strings.Contains(m, `patchmesh_maintenance_window_waiting{version="1.0.0"} 1`) || !strings.Contains(m, "patchmesh_maintenance_window_open 0") {
		t.Errorf("metrics lack the wait:\n%s", grepLines(m, "window"))
	}
	// A check asked by hand does not jump the window either.
	if r := n.Update(t); !strings.Contains(r.stdout, "waiting for window") {
		t.Errorf("update inside the wait: %s", r.stdout)
	}
	if time.Now().Before(opens) && n.Current() != "" {
		t.Fatalf("w1 runs %s before %s", n.Current(), opens)
	}

	n.WaitVersion(t, "1.0.0", 90*time.Second)
	// The current link moves before the health check confirms and stamps the activation.
	waitFor(t, 30*time.Second, func() bool {
		st, err := n.status()
		return err == nil && st.Current != nil && !st.Current.Activated.IsZero()
	}, "w1 to confirm 1.0.0")
	st = n.Status(t)
	if st.Current.Activated.Before(opens) {
		t.Errorf("1.0.0 activated at %s, before the window opened at %s", st.Current.Activated, opens)
	}
	if w := st.Window; w == nil || !w.Open || w.Waiting {
		t.Errorf("after the apply, window status %+v; want open and nothing waiting", w)
	}
	if r := pm(t, "apply-now", "--api", n.API); r.code != 3 || !strings.Contains(r.stderr, "no staged release waits") {
		t.Errorf("apply-now with nothing waiting: exit %d, %s", r.code, r.stderr)
	}

	// The rollout's stage applies only at a time hours away; the node's own
	// window is open now, but both must be.
	far := time.Now().Add(6 * time.Hour)
	editTree(t, src, 2)
	pub.Publish("2.0.0", src, "--stage", "name=all,percent=100,window="+clockSpan(far, far.Add(time.Hour)))
	if r := n.Update(t); !strings.Contains(r.stdout, "waiting for window") {
		t.Errorf("update of 2.0.0: %s", r.stdout)
	}
	st = n.Status(t)
	if w := st.Window; w == nil || !w.Waiting || w.Version != "2.0.0" || len(w.StageWindows) != 1 || w.OpensAt.Before(far.Add(-time.Second)) {
		t.Fatalf("window status %+v, want 2.0.0 waiting for the stage's window at %s", w, far)
	}
	if st.Current.Version != "1.0.0" {
		t.Fatalf("w1 runs %s, want 1.0.0 while 2.0.0 waits", st.Current.Version)
	}
	r := mustPM(t, "apply-now", "--api", n.API)
	if !strings.Contains(r.stdout, "applied") {
		t.Errorf("apply-now: %s", r.stdout)
	}
	if v := n.Current(); v != "2.0.0" {
		t.Errorf("after apply-now w1 runs %q, want 2.0.0", v)
	}
}
