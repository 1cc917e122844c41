package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLIUsage: what a new operator meets first: a version, help that
// reads right, and exit 2 for a typo rather than 3 ("verification failed").
func TestCLIUsage(t *testing.T) {
	r := mustPM(t, "--version")
	if !strings.HasPrefix(r.stdout, "patchmesh ") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("--version printed %q", r.stdout)
	}
	r = mustPM(t, "version", "--json")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v["version"] == "" || v["go"] == nil {
		t.Errorf("version --json: %v: %s", err, r.stdout)
	}

	r = mustPM(t, "node", "run", "--help")
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--install-dir") && !strings.Contains(line, "--install-dir string") {
			t.Errorf("node run --help: %q, want a plain placeholder", strings.TrimSpace(line))
		}
	}

	pub := newPublisher(t)
	missing := filepath.Join(pub.Dir, "no-such-folder")
	tests := []struct {
		name string
		args []string
	}{
		{"verify a missing repository", []string{"verify", "--repo", missing, "--trust", pub.Trust}},
		{"publish a missing tree", []string{"publish", "--repo", pub.Repo, "--key", pub.Key, "--channel", "stable", "--version", "1.0.0", missing}},
		{"unknown command", []string{"bogus"}},
		{"extra argument", []string{"keygen", "extra"}},
		{"required flag", []string{"serve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := pm(t, tt.args...); r.code != 2 {
				t.Errorf("patchmesh %s: exit %d, want 2 (usage): %s", strings.Join(tt.args, " "), r.code, r.stderr)
			}
		})
	}

	// A seed without an API, spelled as for a node.
	addr := freeAddr(t)
	seed := startProc(t, "seed", "serve", "--repo", pub.Repo, "--listen", addr, "--api", "off")
	waitFor(t, 20*time.Second, func() bool {
		if done, _ := seed.Exited(); done {
			t.Fatalf("serve --api off exited")
		}
		resp, err := http.Get("http://" + addr + "/root.json")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "seed with --api off to serve")
}

// TestP2PHostPort: --p2p takes host:port as its help says, for TCP and QUIC.
func TestP2PHostPort(t *testing.T) {
	pub := newPublisher(t)
	siteKeyFile := filepath.Join(pub.Dir, "site.key")
	mustPM(t, "keygen", "--site", "--out", siteKeyFile)
	dir := t.TempDir()
	api, port := freeAddr(t), strconv.Itoa(freePort(t))
	p := startProc(t, "node", "node", "run", "--data", filepath.Join(dir, "data"), "--install-dir", filepath.Join(dir, "app"),
		"--trust", pub.Trust, "--source", pub.Repo, "--api", api, "--site-key", siteKeyFile,
		"--gossip", freeAddr(t), "--p2p", "127.0.0.1:"+port)
	waitFor(t, 30*time.Second, func() bool {
		if done, err := p.Exited(); done {
			log, _ := os.ReadFile(p.log)
			t.Fatalf("node exited (%v): %s", err, log)
		}
		log, _ := os.ReadFile(p.log)
		return strings.Contains(string(log), "/ip4/127.0.0.1/tcp/"+port) && strings.Contains(string(log), "/ip4/127.0.0.1/udp/"+port+"/quic-v1")
	}, "the node to listen on TCP and QUIC port "+port)
}

// TestRefusalNamesTrust: with the wrong trust root and a source that is down,
// the refusal says it once, names the keys the node trusts and its trust
// file, and the down source is a failing source, not a refused rotation.
func TestRefusalNamesTrust(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 1)
	pub.Publish("1.0.0", src)
	other := newPublisher(t) // a trust root of another key
	down := "http://" + freeAddr(t) + "/repo"
	n := newNode(t, nodeOpts{Name: "n1", Trust: other.Trust, Sources: []string{down, pub.Repo}})

	r := n.Update(t)
	if r.code != 3 {
		t.Errorf("update: exit %d, want 3: %s %s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "refused: refused") || !strings.HasPrefix(r.stdout, "refused: ") {
		t.Errorf("update printed %q, want one \"refused: \"", r.stdout)
	}
	if !strings.Contains(r.stdout, other.Trust) || !strings.Contains(r.stdout, "this node trusts keys ") {
		t.Errorf("refusal does not name the trusted keys and %s: %s", other.Trust, r.stdout)
	}
	st := n.Status(t)
	var v struct{ Version string }
	if err := json.Unmarshal([]byte(mustPM(t, "version", "--json").stdout), &v); err != nil || st.Node.Version != v.Version {
		t.Errorf("the node reports version %q, the binary %q (%v)", st.Node.Version, v.Version, err)
	}
	for _, e := range st.Errors {
		if strings.Contains(e.Message, "trust root rotation") {
			t.Errorf("a source that is down is reported as %s: %s", e.Kind, e.Message)
		}
	}
	for _, s := range st.Sources {
		if s.URL == down && (s.Healthy || strings.Contains(s.LastError, `Get "`)) {
			t.Errorf("down source: healthy %v, error %q (want one failing, said once)", s.Healthy, s.LastError)
		}
	}
}

// TestHookStderrKeepsTableWhole: a health check that prints several lines
// to stderr leaves one row per release in `patchmesh releases`.
func TestHookStderrKeepsTableWhole(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 1)
	pub.Publish("1.0.0", src)
	if err := os.WriteFile(filepath.Join(src, "health.sh"), []byte("#!/bin/sh\necho 'first: db down' >&2\necho '\tsecond: retry later' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pub.Publish("1.1.0", src, "--health-check", "health.sh")
	seed := newSeed(t, pub.Repo)
	n := newNode(t, nodeOpts{Name: "n1", Trust: pub.Trust, Sources: []string{seed.URL}})
	waitFor(t, 60*time.Second, func() bool {
		rels := mustPM(t, "releases", "--api", n.API).stdout
		return strings.Contains(rels, "1.1.0") && strings.Contains(rels, "second: retry later")
	}, "1.1.0 to be rolled back")
	out := mustPM(t, "releases", "--api", n.API).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "1.") {
			t.Errorf("releases: a row that is no release: %q\n%s", l, out)
		}
	}
}

// TestSlowMemberStaysAlive: a member that does not answer for a few seconds,
// as on a host starved of CPU, is not declared dead by its site: its chunks
// would otherwise be fetched again from the WAN by the next owners.
func TestSlowMemberStaysAlive(t *testing.T) {
	pub := newPublisher(t)
	siteKeyFile := filepath.Join(pub.Dir, "site.key")
	mustPM(t, "keygen", "--site", "--out", siteKeyFile)
	var nodes []*nodeProc
	for i := range 3 {
		o := nodeOpts{Name: "n" + strconv.Itoa(i), Trust: pub.Trust, Sources: []string{pub.Repo}, SiteKey: siteKeyFile}
		if i > 0 {
			o.Join = []string{nodes[0].Gossip}
		}
		nodes = append(nodes, newNode(t, o))
	}
	alive := func(n *nodeProc, name string) bool {
		for _, p := range n.Status(t).Peers {
			if p.Name == name {
				return p.State == "alive"
			}
		}
		return false
	}
	waitFor(t, 30*time.Second, func() bool { return alive(nodes[0], "n2") && alive(nodes[1], "n2") }, "n2 to join")

	// Stopped 12 s: with memberlist's LAN defaults a member is dead about 5 s
	// after it stops answering probes.
	slow := nodes[2]
	if err := slow.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			_ = slow.cmd.Process.Signal(syscall.SIGCONT)
			resumed = true
		}
	}
	defer resume()
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, n := range nodes[:2] {
			if !alive(n, "n2") {
				t.Fatalf("%s declared n2 %s after it stopped answering for a moment", n.Name, "not alive")
			}
		}
	}
	resume()
}

// TestPeerViewAfterRollback: after a node rolls back, its peers show the
// release it runs, not the newer one it still holds; and the CLI counts the
// site's peers as the dashboard does.
func TestPeerViewAfterRollback(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 1)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	siteKeyFile := filepath.Join(pub.Dir, "site.key")
	mustPM(t, "keygen", "--site", "--out", siteKeyFile)
	a := newNode(t, nodeOpts{Name: "a", Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: siteKeyFile})
	b := newNode(t, nodeOpts{Name: "b", Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: siteKeyFile, Join: []string{a.Gossip}})
	a.WaitVersion(t, "1.0.0", 60*time.Second)
	b.WaitVersion(t, "1.0.0", 60*time.Second)
	editTree(t, src, 2)
	pub.Publish("1.1.0", src)
	for _, n := range []*nodeProc{a, b} {
		if r := n.Update(t); r.code != 0 {
			t.Fatalf("%s update: exit %d: %s %s", n.Name, r.code, r.stdout, r.stderr)
		}
	}
	mustPM(t, "rollback", "--api", b.API, "--reason", "test")

	peerRow := func() string {
		out := mustPM(t, "status", "--api", a.API).stdout
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[0] == "b" {
				return l
			}
		}
		return ""
	}
	waitFor(t, 30*time.Second, func() bool {
		f := strings.Fields(peerRow())
		return len(f) > 3 && f[2] == "1.0.0" && f[3] == "1.1.0"
	}, "a's status to show b running 1.0.0 and holding 1.1.0")

	st := a.Status(t)
	if st.Node.PeersAlive != 1 || st.Node.PeersKnown != 1 {
		t.Errorf("status counts %d of %d peers alive, want 1 of 1", st.Node.PeersAlive, st.Node.PeersKnown)
	}
	if out := mustPM(t, "status", "--api", a.API).stdout; !strings.Contains(out, "1 of 1 peer(s) alive") {
		t.Errorf("status does not count 1 of 1 peers alive:\n%s", out)
	}
}

// TestDemo runs the README quick start's main command, smaller: a seed and a
// site on loopback, both releases reaching every node, the seed serving the
// first about once, and every node's dashboard address printed.
func TestDemo(t *testing.T) {
	r := mustPM(t, "demo", "--exit", "--nodes", "3", "--size", "4", "--dir", t.TempDir())
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if !strings.Contains(r.stdout, v+" reached all 3 nodes") {
			t.Errorf("the demo does not report %s reaching all 3 nodes:\n%s", v, r.stdout)
		}
	}
	m := regexp.MustCompile(`1\.0\.0 reached all 3 nodes in \S+; the seed served \S+ MiB of chunks and deltas \(([0-9.]+)x`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no seed ratio for 1.0.0 in:\n%s", r.stdout)
	}
	if ratio, _ := strconv.ParseFloat(m[1], 64); ratio > 1.05 {
		t.Errorf("the seed served %.2fx the first release's chunks to a site of 3, want about once", ratio)
	}
	_, dash, ok := strings.Cut(r.stdout, "\ndashboards:\n")
	if !ok || len(regexp.MustCompile(`(?m)^  \S+ +http://127\.0\.0\.1:[0-9]+/$`).FindAllString(dash, -1)) != 3 {
		t.Errorf("want 3 dashboard addresses on loopback after \"dashboards:\":\n%s", r.stdout)
	}
	if !strings.HasSuffix(r.stdout, "demo done\n") {
		t.Errorf("the demo did not end with \"demo done\":\n%s", r.stdout)
	}
}
