package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// browserScript returns node, Chromium and the path of the browser script
// name, skipping the test where they are missing (failing it on CI).
func browserScript(t *testing.T, name string) (nodeJS, chromium, script string) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: long")
	}
	chromium = envOr("CHROMIUM", "/usr/bin/chromium")
	script, err := filepath.Abs(filepath.Join("browser", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, need := range []string{chromium, "browser/node_modules/playwright-core"} {
		if _, err := os.Stat(need); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("browser test needs %s (apt-get install chromium; cd integration/browser && npm ci): %v", need, err)
			}
			t.Skipf("browser test needs %s: %v", need, err)
		}
	}
	nodeJS, err = exec.LookPath("node")
	if err != nil {
		t.Fatalf("browser test needs node: %v", err)
	}
	return nodeJS, chromium, script
}

// runBrowser runs a browser script and returns its last line of output.
func runBrowser(t *testing.T, nodeJS, script string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeJS, append([]string{script}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("browser: %s", out)
	if err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.String())
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return lines[len(lines)-1]
}

// TestDashboardShowsHaltedSite: a two-node site whose canary fails the health
// check of a staged release halts; the other node's dashboard, in headless
// Chromium, shows the rollout card with HALTED, the reason and the failing
// canary by name. The card's picture lands in integration/artifacts/.
func TestDashboardShowsHaltedSite(t *testing.T) {
	nodeJS, chromium, script := browserScript(t, "halted.mjs")

	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 41)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	key := siteKey(t)
	opts := nodeOpts{Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: key, Extra: []string{"--rollout-poll", "1s"}}
	o1 := opts
	o1.Name = "h1"
	n1 := newNode(t, o1)
	o2 := opts
	o2.Name, o2.Join = "h2", []string{n1.Gossip}
	nodes := []*nodeProc{n1, newNode(t, o2)}
	for _, n := range nodes {
		waitFor(t, 30*time.Second, func() bool { return alive(n) == 2 }, n.Name+" to see its site")
		n.WaitVersion(t, "1.0.0", 90*time.Second)
	}

	if err := os.WriteFile(filepath.Join(src, "health.sh"), []byte("#!/bin/sh\necho database unreachable >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pub.Publish("2.0.0", src, "--health-check", "health.sh",
		"--stage", "name=canary,percent=1,soak=1h", "--stage", "name=all,percent=100")
	updateAll(t, nodes)
	var failing string
	waitFor(t, 90*time.Second, func() bool {
		for _, n := range nodes {
			r := rolloutOf(n)
			if r == nil || !r.Halted || len(r.Failing) != 1 {
				return false
			}
			failing = r.Failing[0].Name
		}
		return true
	}, "both nodes to see the site halted by one failing canary")
	canary, other := nodes[0], nodes[1]
	if failing == other.Name {
		canary, other = other, canary
	}
	if failing != canary.Name {
		t.Fatalf("failing node %q is not of the site", failing)
	}

	shot, err := filepath.Abs(filepath.Join("artifacts", "dashboard-halted.png"))
	if err != nil {
		t.Fatal(err)
	}
	out := runBrowser(t, nodeJS, script, "--url", "http://"+other.API+"/", "--screenshot", shot,
		"--failing", canary.Name, "--timeout", "90", "--chromium", chromium)
	var seen struct {
		Card, Badge    bool
		Action, Health string
		Failing        []struct{ Name, Text string }
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("script printed %q: %v", out, err)
	}
	if !seen.Card || !seen.Badge {
		t.Errorf("rollout card shown %v, halted badge shown %v", seen.Card, seen.Badge)
	}
	if !strings.Contains(seen.Health, "HALTED") || !strings.Contains(seen.Health, canary.Name) {
		t.Errorf("site health reads %q; want HALTED naming %s", seen.Health, canary.Name)
	}
	if !strings.Contains(seen.Action, "wait") || !strings.Contains(seen.Action, "halted") {
		t.Errorf("%s's action reads %q; want it waiting on the halt", other.Name, seen.Action)
	}
	if len(seen.Failing) != 1 || seen.Failing[0].Name != canary.Name || !strings.Contains(seen.Failing[0].Text, "database unreachable") {
		t.Errorf("failing list %+v; want %s with the health check's reason", seen.Failing, canary.Name)
	}
	if v := other.Current(); v != "1.0.0" {
		t.Errorf("%s runs %s in a halted site, want 1.0.0", other.Name, v)
	}
}

// TestDashboardApplyNow: a node whose maintenance window is hours away stages
// a release and waits; its dashboard, in headless Chromium, says so with when
// the window opens, and its "Apply now" button makes the release current.
func TestDashboardApplyNow(t *testing.T) {
	nodeJS, chromium, script := browserScript(t, "applynow.mjs")
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 43)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	far := time.Now().Add(6 * time.Hour)
	n := newNode(t, nodeOpts{Name: "w2", Trust: pub.Trust, Sources: []string{seed.URL},
		Extra: []string{"--window", clockSpan(far, far.Add(time.Hour))}})
	waitFor(t, 60*time.Second, func() bool {
		st, err := n.status()
		return err == nil && st.Window != nil && st.Window.Waiting
	}, "w2 to stage 1.0.0 and wait for its window")

	shot, err := filepath.Abs(filepath.Join("artifacts", "dashboard-window.png"))
	if err != nil {
		t.Fatal(err)
	}
	out := runBrowser(t, nodeJS, script, "--url", "http://"+n.API+"/", "--screenshot", shot,
		"--want", "1.0.0", "--timeout", "90", "--chromium", chromium)
	var seen struct {
		Current string
		Button  bool
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("script printed %q: %v", out, err)
	}
	if seen.Current != "1.0.0" || seen.Button {
		t.Errorf("after Apply now the dashboard shows %+v", seen)
	}
	st := n.Status(t)
	if st.Current == nil || st.Current.Version != "1.0.0" {
		t.Errorf("w2 runs %+v after Apply now, want 1.0.0", st.Current)
	}
	if w := st.Window; w == nil || w.Waiting || w.Open {
		t.Errorf("window status after Apply now %+v; want closed and nothing waiting", w)
	}
}
