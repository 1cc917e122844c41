package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDashboardShowsHaltedSite: a two-node site whose canary fails the health
// check of a staged release halts; the other node's dashboard, in headless
// Chromium, shows the rollout card with HALTED, the reason and the failing
// canary by name. The card's picture lands in integration/artifacts/.
func TestDashboardShowsHaltedSite(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: long")
	}
	chromium := envOr("CHROMIUM", "/usr/bin/chromium")
	script, err := filepath.Abs("browser/halted.mjs")
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
	nodeJS, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("browser test needs node: %v", err)
	}

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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeJS, script, "--url", "http://"+other.API+"/", "--screenshot", shot,
		"--failing", canary.Name, "--timeout", "90", "--chromium", chromium)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.String())
	}
	t.Logf("browser: %s", out)
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
