package integration

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/node/api"
)

// rolloutSites starts two sites ("a" and "b") of per nodes each, every node
// polling a staged rollout each second; tags(name) gives a node's --tag flags.
func rolloutSites(t *testing.T, pub *publisher, per int, sources []string, tags func(name string) []string) [][]*nodeProc {
	t.Helper()
	var sites [][]*nodeProc
	for _, s := range []string{"a", "b"} {
		key := siteKey(t)
		var nodes []*nodeProc
		for i := range per {
			name := s + strconv.Itoa(i+1)
			o := nodeOpts{Name: name, Trust: pub.Trust, Sources: sources, SiteKey: key, Extra: []string{"--rollout-poll", "1s"}}
			if tags != nil {
				for _, tg := range tags(name) {
					o.Extra = append(o.Extra, "--tag", tg)
				}
			}
			if i > 0 {
				o.Join = []string{nodes[0].Gossip}
			}
			nodes = append(nodes, newNode(t, o))
		}
		for _, nd := range nodes {
			waitFor(t, 30*time.Second, func() bool { return alive(nd) == per }, nd.Name+" to see its whole site")
		}
		sites = append(sites, nodes)
	}
	return sites
}

func allOf(sites [][]*nodeProc) []*nodeProc {
	var out []*nodeProc
	for _, s := range sites {
		out = append(out, s...)
	}
	return out
}

// rolloutOf returns the node's rollout status, nil when it has none or is unreachable.
func rolloutOf(n *nodeProc) *api.RolloutStatus {
	st, err := n.status()
	if err != nil {
		return nil
	}
	return st.Rollout
}

// canaries returns the nodes of a site that run version, waiting until at
// least one does.
func canaries(t *testing.T, site []*nodeProc, version string) map[string]bool {
	t.Helper()
	waitFor(t, 60*time.Second, func() bool {
		for _, n := range site {
			if n.Current() == version {
				return true
			}
		}
		return false
	}, "a canary of the site to run "+version)
	out := map[string]bool{}
	for _, n := range site {
		if n.Current() == version {
			out[n.Name] = true
		}
	}
	return out
}

// TestRolloutStagesAndTargets: a release staged canary → 50% → 100% with soaks of
// seconds reaches every targeted node of two sites, no node applying before its
// stage opened and every site starting with a canary; a node outside the target
// tags never applies and says why. The release before had no rollout and went to
// every node at once, as before rollouts existed.
func TestRolloutStagesAndTargets(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 21)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	// Eight nodes in two sites, as the rollout's acceptance asks.
	sites := rolloutSites(t, pub, 4, []string{seed.URL}, func(name string) []string {
		if name == "b3" {
			return []string{"lab"}
		}
		return []string{"fleet"}
	})
	nodes := allOf(sites)
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 90*time.Second)
		if r := rolloutOf(n); r != nil {
			t.Errorf("%s: a release without a rollout shows one: %+v", n.Name, r)
		}
	}

	editTree(t, src, 2)
	pub.Publish("2.0.0", src, "--target-tag", "fleet",
		"--stage", "name=canary,percent=1,soak=2s", "--stage", "name=half,percent=50,soak=2s", "--stage", "name=all,percent=100")
	updateAll(t, nodes)
	for _, n := range nodes {
		if n.Name == "b3" {
			continue
		}
		n.WaitVersion(t, "2.0.0", 120*time.Second)
		// The release shows as current once switched; its activation time
		// once the health check confirmed it.
		waitFor(t, 60*time.Second, func() bool {
			st, err := n.status()
			return err == nil && st.Current != nil && !st.Current.Activated.IsZero() && st.Rollout != nil && st.Rollout.Action == "done"
		}, n.Name+" to confirm 2.0.0")
	}
	for i, s := range sites {
		canary := 0
		for _, n := range s {
			st := n.Status(t)
			r := st.Rollout
			if r == nil {
				t.Fatalf("%s: no rollout in the status", n.Name)
			}
			if n.Name == "b3" {
				if st.Current == nil || st.Current.Version != "1.0.0" || r.Action != "ignore" || !strings.Contains(r.Reason, "targets tags fleet") {
					t.Errorf("b3 (tag lab) runs %+v, rollout %s: %s; want 1.0.0 and the release ignored", st.Current, r.Action, r.Reason)
				}
				if lc := st.LastCheck; lc == nil || lc.Outcome != "ignored" {
					t.Errorf("b3's last check: %+v, want ignored", lc)
				}
				continue
			}
			if r.Canary {
				canary++
			}
			if r.Stage < 0 || r.Action != "done" {
				t.Errorf("%s: stage %d, action %s (%s)", n.Name, r.Stage, r.Action, r.Reason)
			}
			if st.Current.Activated.Before(r.OpensAt) {
				t.Errorf("%s (stage %s) applied at %s, before its stage opened at %s", n.Name, r.StageName, st.Current.Activated, r.OpensAt)
			}
		}
		if canary < 1 {
			t.Errorf("site %d has no canary", i)
		}
	}
}

// TestRolloutHaltsOnFailedCanaries: a release whose health check fails rolls
// back on each site's canary, each site halts itself, and no other node applies
// it, even once the publisher opens every stage. The halt shows in the status,
// `patchmesh status` and the metrics, naming the failing node.
func TestRolloutHaltsOnFailedCanaries(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 22)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	sites := rolloutSites(t, pub, 4, []string{seed.URL}, nil)
	nodes := allOf(sites)
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 90*time.Second)
	}

	if err := os.WriteFile(filepath.Join(src, "health.sh"), []byte("#!/bin/sh\necho database unreachable >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pub.Publish("2.0.0", src, "--health-check", "health.sh",
		"--stage", "name=canary,percent=1,soak=1h", "--stage", "name=all,percent=100")
	updateAll(t, nodes)
	failed := map[string]bool{}
	for _, s := range sites {
		waitFor(t, 90*time.Second, func() bool {
			for _, n := range s {
				if r := rolloutOf(n); r == nil || !r.Halted {
					return false
				}
			}
			return true
		}, "every node of the site to see it halted")
		for _, f := range rolloutOf(s[0]).Failing {
			failed[f.Name] = true
		}
	}
	// Every stage open: a halted site still applies nothing.
	mustPM(t, "rollout", "promote", "--repo", pub.Repo, "--channel", "stable", "--key", pub.Key, "--note", "test")
	for _, n := range nodes {
		waitFor(t, 30*time.Second, func() bool {
			r := rolloutOf(n)
			return r != nil && r.Sequence == 2
		}, n.Name+" to obey the promote")
	}
	time.Sleep(3 * time.Second) // a few polls at 1s
	for _, n := range nodes {
		st := n.Status(t)
		if st.Current == nil || st.Current.Version != "1.0.0" {
			t.Errorf("%s runs %+v; every node should be on 1.0.0", n.Name, st.Current)
		}
		r := st.Rollout
		if !r.Halted || !strings.Contains(r.HaltReason, "failed") {
			t.Errorf("%s: halted %v (%s)", n.Name, r.Halted, r.HaltReason)
		}
		if failed[n.Name] {
			if !r.Canary {
				t.Errorf("%s failed the release but is not a canary", n.Name)
			}
		} else if r.Action != "wait" || !strings.Contains(r.Reason, "halted") {
			t.Errorf("%s: %s (%s), want it waiting on the halt", n.Name, r.Action, r.Reason)
		}
	}
	if len(failed) < 2 {
		t.Errorf("failing nodes %v: want at least a canary in each site", failed)
	}
	out := mustPM(t, "status", "--api", nodes[1].API).stdout
	if !strings.Contains(out, "HALTED") || !strings.Contains(out, "database unreachable") {
		t.Errorf("patchmesh status does not show the halt and why:\n%s", out)
	}
	if m := metrics(t, nodes[1]); !strings.Contains(m, `patchmesh_rollout_halted{version="2.0.0"} 1`) {
		t.Errorf("metrics lack the halt:\n%s", grepLines(m, "rollout"))
	}
}

// TestRolloutPauseResumePromoteAbort: with a long soak only the canaries apply;
// pause holds a promoted stage closed, resume lets it go, every node applies,
// and abort brings every node back to the release before.
func TestRolloutPauseResumePromoteAbort(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 23)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	sites := rolloutSites(t, pub, 4, []string{seed.URL}, nil)
	nodes := allOf(sites)
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 90*time.Second)
	}
	editTree(t, src, 2)
	pub.Publish("2.0.0", src, "--stage", "name=canary,percent=1,soak=1h", "--stage", "name=all,percent=100")
	updateAll(t, nodes)
	early := map[string]bool{}
	for _, s := range sites {
		for name := range canaries(t, s, "2.0.0") {
			early[name] = true
		}
	}
	rollout := func(action string) string {
		return mustPM(t, "rollout", action, "--repo", pub.Repo, "--channel", "stable", "--key", pub.Key).stdout
	}
	// The others fetched ahead and wait for their stage.
	for _, n := range nodes {
		if early[n.Name] {
			continue
		}
		waitFor(t, 60*time.Second, func() bool {
			r := rolloutOf(n)
			return r != nil && r.Action == "wait" && strings.Contains(r.Reason, "opens at")
		}, n.Name+" to wait for its stage")
	}
	rollout("pause")
	rollout("promote")
	for _, n := range nodes {
		if early[n.Name] {
			continue
		}
		waitFor(t, 30*time.Second, func() bool {
			r := rolloutOf(n)
			return r != nil && r.Sequence == 3 && strings.Contains(r.Reason, "paused")
		}, n.Name+" to see the promoted stage paused")
		if v := n.Current(); v != "1.0.0" {
			t.Fatalf("%s runs %s while the rollout is paused", n.Name, v)
		}
	}
	if out := mustPM(t, "rollout", "status", "--repo", pub.Repo, "--channel", "stable").stdout; !strings.Contains(out, "paused") || !strings.Contains(out, "open since") {
		t.Errorf("rollout status:\n%s", out)
	}
	rollout("resume")
	for _, n := range nodes {
		n.WaitVersion(t, "2.0.0", 60*time.Second)
	}
	rollout("abort")
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 60*time.Second)
	}
	for _, n := range nodes {
		st := n.Status(t)
		if lc := st.LastCheck; lc == nil || (lc.Outcome != "aborted" && lc.Outcome != "skipped-bad") {
			t.Errorf("%s: last check %+v, want the abort", n.Name, lc)
		}
		if r := st.Rollout; r == nil || r.Halted || r.SiteFailed != 0 {
			t.Errorf("%s: an abort counted as site failures: %+v", n.Name, r)
		}
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// metrics returns the node's Prometheus metrics text.
func metrics(t *testing.T, n *nodeProc) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + n.API + "/metrics")
	if err != nil {
		t.Fatalf("%s metrics: %v", n.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s metrics: %v", n.Name, err)
	}
	return string(b)
}
