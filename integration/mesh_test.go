package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// site starts n nodes of one site, each joining the first, all using sources.
func site(t *testing.T, pub *publisher, siteKey string, n int, sources []string, extra ...string) []*nodeProc {
	t.Helper()
	nodes := make([]*nodeProc, 0, n)
	for i := range n {
		o := nodeOpts{Name: "site-" + strconv.Itoa(i+1), Trust: pub.Trust, Sources: sources, SiteKey: siteKey, Extra: extra}
		if i > 0 {
			o.Join = []string{nodes[0].Gossip}
		}
		nodes = append(nodes, newNode(t, o))
	}
	for _, nd := range nodes {
		waitFor(t, 30*time.Second, func() bool { return alive(nd) == n }, nd.Name+" to see the whole site")
	}
	return nodes
}

func alive(n *nodeProc) int {
	st, err := n.status()
	if err != nil {
		return 0
	}
	c := 0
	for _, p := range st.Peers {
		if p.State == "alive" {
			c++
		}
	}
	return c
}

// updateAll runs `patchmesh update --no-wait` on every node at once.
func updateAll(t *testing.T, nodes []*nodeProc) {
	t.Helper()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pm(t, "update", "--no-wait", "--api", n.API)
		}()
	}
	wg.Wait()
}

func siteKey(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "site.key")
	mustPM(t, "keygen", "--site", "--out", p)
	return p
}

// TestSiteFetchesEachChunkOnce: five nodes of one site get a release while the
// seed serves each chunk about once; a node killed mid-transfer does not stop the
// others; with the seed gone, a newcomer gets the whole release from its peers.
func TestSiteFetchesEachChunkOnce(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 16, 11)
	cr := newCountingRepo(t, pub.Repo)
	key := siteKey(t)
	nodes := site(t, pub, key, 5, []string{cr.URL})

	s1 := pub.Publish("1.0.0", src)
	updateAll(t, nodes)
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 90*time.Second)
		sameTree(t, src, filepath.Join(n.Install, "current"))
	}
	wan := cr.stats.ChunkBytes.Load()
	// Besides chunks, the seed served the manifest about once for the site
	// (its owner fetched it) and a small head to each node.
	other := cr.stats.Bytes.Load() - wan
	if other > 2*s1.ManifestBytes+5*4096 {
		t.Errorf("the seed served %d bytes besides chunks for a %d-byte manifest: each node fetched the manifest itself", other, s1.ManifestBytes)
	}
	ratio := float64(wan) / float64(s1.NewBytes)
	t.Logf("v1: %d unique chunk bytes, the seed served %d (%.3fx) to a site of 5", s1.NewBytes, wan, ratio)
	if ratio > 1.05 {
		t.Errorf("the seed served %.3fx the release's unique chunk bytes to one site, want at most 1.05x", ratio)
	}
	var lan, recWAN int64
	for _, n := range nodes {
		st := n.Status(t)
		lan += st.Bytes.LAN
		// No node held any of it: each release record puts every byte on
		// the WAN or on a peer, chunks fetched for peers as owner included.
		if r := st.Current; r == nil || r.FromLocal != 0 || r.FromWAN+r.FromLAN != s1.NewBytes {
			t.Errorf("%s: release record %+v, want all %d bytes from the WAN or peers", st.Node.Name, r, s1.NewBytes)
		} else {
			recWAN += r.FromWAN
		}
	}
	if lan < 3*s1.NewBytes {
		t.Errorf("nodes got %d bytes from peers in all; 5 nodes with one WAN copy should get at least 3x %d", lan, s1.NewBytes)
	}
	if recWAN < s1.NewBytes || recWAN > wan {
		t.Errorf("the release records show %d bytes from the WAN in all; want the %d unique bytes, at most the %d the seed served", recWAN, s1.NewBytes, wan)
	}

	// v2 with a slow seed; one node is killed in the middle.
	editTree(t, src, 40)
	makeBig(t, src, "lib/data.bin", 8, 12)
	s2 := pub.Publish("2.0.0", src)
	cr.delay.Store(int64(20 * time.Millisecond))
	before := cr.stats.ChunkBytes.Load()
	updateAll(t, nodes)
	victim := nodes[1]
	waitFor(t, 60*time.Second, func() bool {
		st, err := victim.status()
		return err == nil && st.Progress != nil && st.Progress.ChunksDone > st.Progress.ChunksTotal/4
	}, "the victim to be a quarter through")
	victim.Kill()
	cr.delay.Store(0)
	survivors := append([]*nodeProc{nodes[0]}, nodes[2:]...)
	for _, n := range survivors {
		n.WaitVersion(t, "2.0.0", 120*time.Second)
		sameTree(t, src, filepath.Join(n.Install, "current"))
	}
	wan2 := cr.stats.ChunkBytes.Load() - before
	t.Logf("v2: %d new chunk bytes, the seed served %d (%.3fx) with a node killed mid-way", s2.NewBytes, wan2, float64(wan2)/float64(s2.NewBytes))
	if float64(wan2) > 1.5*float64(s2.NewBytes) {
		t.Errorf("after the kill the seed served %.3fx the new bytes", float64(wan2)/float64(s2.NewBytes))
	}

	// The seed goes away; a new node of the site still gets everything from peers.
	cr.Close()
	late := newNode(t, nodeOpts{Name: "late", Trust: pub.Trust, Sources: []string{cr.URL}, SiteKey: key, Join: []string{nodes[0].Gossip}})
	late.WaitVersion(t, "2.0.0", 120*time.Second)
	sameTree(t, src, filepath.Join(late.Install, "current"))
	if st := late.Status(t); st.Bytes.WAN != 0 || st.Bytes.LAN == 0 {
		t.Errorf("late node: WAN %d, LAN %d bytes; want everything from the LAN", st.Bytes.WAN, st.Bytes.LAN)
	}
}

// TestSiteKeyRequired: a node with another site key neither joins the site nor
// gets chunks from it.
func TestSiteKeyRequired(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 2, 13)
	cr := newCountingRepo(t, pub.Repo)
	nodes := site(t, pub, siteKey(t), 2, []string{cr.URL})
	pub.Publish("1.0.0", src)
	updateAll(t, nodes)
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 60*time.Second)
	}
	cr.Close() // only the site could deliver now
	stranger := newNode(t, nodeOpts{Name: "stranger", Trust: pub.Trust, Sources: []string{cr.URL}, SiteKey: siteKey(t),
		Join: []string{nodes[0].Gossip}, Extra: []string{"--site-timeout", "3s"}})
	time.Sleep(8 * time.Second)
	st := stranger.Status(t)
	if len(st.Peers) > 1 {
		t.Errorf("a node with another site key sees the site: %+v", st.Peers)
	}
	if st.Current != nil || st.Bytes.LAN != 0 {
		t.Errorf("a node with another site key got the release: current %+v, LAN bytes %d", st.Current, st.Bytes.LAN)
	}
	for _, n := range nodes {
		for _, p := range n.Status(t).Peers {
			if p.Name == "stranger" {
				t.Errorf("%s lists the stranger as a peer", n.Name)
			}
		}
	}
}

// makeBig writes a pseudo-random file of sizeMiB under dir.
func makeBig(t *testing.T, dir, name string, sizeMiB int, seed uint64) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	sub := t.TempDir()
	makeTree(t, sub, sizeMiB, seed)
	data, err := os.ReadFile(filepath.Join(sub, "bin/app"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTieredDistributionPoint: a node serving the repository format (--serve-repo)
// is the only source of a node of another site; it fetches through its own
// site on a miss, and everything it hands out verifies.
func TestTieredDistributionPoint(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 4, 21)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	serve := freeAddr(t)
	dp := newNode(t, nodeOpts{Name: "dp", Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: siteKey(t), Extra: []string{"--serve-repo", serve}})
	dp.WaitVersion(t, "1.0.0", 60*time.Second)

	branch := newNode(t, nodeOpts{Name: "branch", Trust: pub.Trust, Sources: []string{"http://" + serve}})
	branch.WaitVersion(t, "1.0.0", 60*time.Second)
	sameTree(t, src, filepath.Join(branch.Install, "current"))

	// A new version: the branch asks the dp, which fetches it from the seed on the way.
	editTree(t, src, 5)
	s2 := pub.Publish("1.1.0", src)
	before := seed.Served(t).ChunkBytes
	// The dp refreshes the head it serves at most once a second.
	waitFor(t, 30*time.Second, func() bool {
		r := branch.Update(t)
		return r.code == 0 && branch.Current() == "1.1.0"
	}, "the branch to get 1.1.0 through the dp")
	sameTree(t, src, filepath.Join(branch.Install, "current"))
	// The branch holds 1.0.0, so it asks the dp for the deltas, not the chunks.
	if got := seed.Served(t).ChunkBytes - before; s2.DeltaOutput != s2.NewBytes || got != s2.DeltaBytes {
		t.Errorf("the seed served %d chunk bytes for %d bytes of deltas making the %d new bytes: the dp should fetch each once", got, s2.DeltaBytes, s2.NewBytes)
	}
	dp.WaitVersion(t, "1.0.0", time.Second) // the dp itself still runs what it had
}

// TestSiteWidensFarFromSource: a site of two whose source answers each chunk
// after a delay, as one far away behind a fast link would, keeps more WAN
// fetches in flight than the default's 32, though each member fetches only 4
// chunks at once of its own (--concurrency): as many as --site-wan-requests
// asks, or, by default, widened while the fetches stay as quick, up to 4 x 32.
func TestSiteWidensFarFromSource(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantMost int64
		widens   bool
	}{
		{"set", []string{"--site-wan-requests", "64", "--site-max-wan-requests", "64"}, 64, false},
		{"widened", nil, 4 * 32, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := newPublisher(t)
			src := filepath.Join(pub.Dir, "build")
			makeTree(t, src, 24, 9)
			cr := newCountingRepo(t, pub.Repo)
			nodes := site(t, pub, siteKey(t), 2, []string{cr.URL}, append([]string{"--concurrency", "4"}, tt.args...)...)
			pub.Publish("1.0.0", src)
			cr.delay.Store(int64(100 * time.Millisecond))
			updateAll(t, nodes)
			for _, n := range nodes {
				n.WaitVersion(t, "1.0.0", 120*time.Second)
				sameTree(t, src, filepath.Join(n.Install, "current"))
			}
			peak := cr.peak.Load()
			t.Logf("at most %d requests at once to the source", peak)
			if peak <= 32 || peak > tt.wantMost {
				t.Errorf("at most %d requests at once to the source; want more than the default site's 32, at most %d", peak, tt.wantMost)
			}
			// Each widening is logged; the status says the node's fetches at once.
			widened := 0
			for _, n := range nodes {
				log, err := os.ReadFile(n.log)
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(string(log), "\n") {
					if strings.Contains(line, `msg="site WAN fetches at once"`) && strings.Contains(line, "from=16 to=32") {
						widened++
					}
				}
				if st := n.Status(t); st.Node.WANFetches < 16 {
					t.Errorf("%s: status says %d WAN fetches at once, want its share or more", n.Name, st.Node.WANFetches)
				}
			}
			if (widened > 0) != tt.widens {
				t.Errorf("%d members logged widening from 16 to 32; want some: %v", widened, tt.widens)
			}
		})
	}
}

// TestSiteCatchesUp: one member of a site is asked to check; the members that
// catch up (--site-catch-up, on by default) follow within seconds without
// being asked, and the seed serves each new object once; a member with it off
// waits for its schedule.
func TestSiteCatchesUp(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 8, 21)
	pub.Publish("1.0.0", src)
	cr := newCountingRepo(t, pub.Repo)
	key := siteKey(t)
	var nodes []*nodeProc
	for i, catchUp := range []bool{true, true, false} {
		o := nodeOpts{Name: "cu-" + strconv.Itoa(i+1), Trust: pub.Trust, Sources: []string{cr.URL}, SiteKey: key, CatchUp: catchUp}
		if i > 0 {
			o.Join = []string{nodes[0].Gossip}
		}
		nodes = append(nodes, newNode(t, o))
	}
	for _, n := range nodes {
		waitFor(t, 30*time.Second, func() bool { return alive(n) == 3 }, n.Name+" to see the whole site")
		n.WaitVersion(t, "1.0.0", 60*time.Second)
	}
	asked, follower, waiter := nodes[0], nodes[1], nodes[2]
	waiterCheck := waiter.Status(t).LastCheck

	editTree(t, src, 20)
	pub.Publish("2.0.0", src)
	served := func() map[string]int64 {
		m := map[string]int64{}
		cr.gets.Range(func(k, v any) bool {
			if p := k.(string); strings.HasPrefix(p, "chunks/") {
				m[p] = v.(*atomic.Int64).Load()
			}
			return true
		})
		return m
	}
	before := served()
	start := time.Now()
	if r := asked.Update(t); r.code != 0 || !strings.Contains(r.stdout, "applied") {
		t.Fatalf("update of %s: exit %d: %s%s", asked.Name, r.code, r.stdout, r.stderr)
	}
	follower.WaitVersion(t, "2.0.0", 60*time.Second)
	t.Logf("%s ran 2.0.0 %s after %s was asked", follower.Name, time.Since(start).Round(time.Millisecond), asked.Name)
	sameTree(t, src, filepath.Join(follower.Install, "current"))
	if !follower.logHas("a site member has a newer release: checking now") {
		t.Errorf("%s reached 2.0.0 without logging that it caught up with the site", follower.Name)
	}
	// Each says what made its check run.
	waitFor(t, 30*time.Second, func() bool {
		st, err := follower.status()
		return err == nil && st.LastCheck != nil && st.LastCheck.Outcome == "applied"
	}, follower.Name+"'s check to end")
	if lc := follower.Status(t).LastCheck; lc.Trigger != "site" {
		t.Errorf("%s's last check: trigger %q, want site", follower.Name, lc.Trigger)
	}
	if out := mustPM(t, "status", "--api", follower.API).stdout; !strings.Contains(out, "applied: 2.0.0 is now current (a site member had a newer release)") {
		t.Errorf("%s's status does not say why it checked:\n%s", follower.Name, out)
	}
	if lc := asked.Status(t).LastCheck; lc.Trigger != "asked" {
		t.Errorf("%s's last check: trigger %q, want asked", asked.Name, lc.Trigger)
	}
	for p, n := range served() {
		if n-before[p] > 1 {
			t.Errorf("the seed served %s %d times for 2.0.0, want once for the site", p, n-before[p])
		}
	}

	// The member that does not catch up sees the same gossip for two more
	// summary periods, and checks nothing.
	time.Sleep(12 * time.Second)
	st := waiter.Status(t)
	if st.Current == nil || st.Current.Version != "1.0.0" {
		t.Errorf("%s, with --site-catch-up=false, runs %+v, want 1.0.0 until its schedule", waiter.Name, st.Current)
	}
	if st.LastCheck == nil || waiterCheck == nil || !st.LastCheck.Started.Equal(waiterCheck.Started) || st.LastCheck.Trigger != "start" {
		t.Errorf("%s, with --site-catch-up=false, checked again: last check %+v, before %+v", waiter.Name, st.LastCheck, waiterCheck)
	}
	if waiter.logHas("a site member has a newer release") {
		t.Errorf("%s, with --site-catch-up=false, logged catching up", waiter.Name)
	}
}
