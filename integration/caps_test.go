package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWANCapHoldsOnANode: a node with a small WAN cap pulls a release of a few
// MiB from a loopback seed no faster than the cap: the update takes at least
// the bytes over the cap, and its average rate stays under 1.1x the cap. The
// node reports the cap and the time it waited on it.
func TestWANCapHoldsOnANode(t *testing.T) {
	const capRate = 1_000_000 // --wan-rate 1MB/s, in bytes a second
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 4, 7)
	seed := newSeed(t, pub.Repo)
	n := newNode(t, nodeOpts{Name: "capped", Trust: pub.Trust, Sources: []string{seed.URL},
		Extra: []string{"--wan-rate", "1MB/s"}})
	// The start-up check finds no release; publish after it, then time the update.
	waitFor(t, 30*time.Second, func() bool { st, err := n.status(); return err == nil && st.LastCheck != nil }, "the start-up check")
	s := pub.Publish("1.0.0", src)
	before := seed.Served(t).Bytes
	start := time.Now()
	r := n.Update(t)
	elapsed := time.Since(start)
	if r.code != 0 || !strings.Contains(r.stdout, "applied") {
		t.Fatalf("update: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	sameTree(t, src, filepath.Join(n.Install, "current"))
	moved := seed.Served(t).Bytes - before
	if moved < s.NewBytes {
		t.Fatalf("seed served %d bytes for a release of %d new bytes", moved, s.NewBytes)
	}
	// The bucket starts full: one bucket's worth (at most 64 KiB at 1 MB/s) moves unpaced.
	const slack = 64 << 10
	min := time.Duration(float64(moved-slack) / capRate * float64(time.Second))
	if elapsed < min {
		t.Errorf("%d bytes under a %d B/s cap moved in %v, want at least %v", moved, capRate, elapsed, min)
	}
	if rate := float64(moved) / elapsed.Seconds(); rate > 1.1*capRate {
		t.Errorf("average rate %.0f B/s over a cap of %d B/s", rate, capRate)
	}
	st := n.Status(t)
	if st.Caps == nil || st.Caps.WAN != capRate || st.Caps.WANThrottledSeconds <= 0 {
		t.Errorf("status caps = %+v, want wan %d and some throttled time", st.Caps, capRate)
	}
	t.Logf("%d bytes in %v: %.0f B/s under a cap of %d B/s", moved, elapsed.Round(time.Millisecond), float64(moved)/elapsed.Seconds(), capRate)
}

// TestChannelCapsTighten: the publisher's channel caps reach the node through
// the signed head and hold where they are tighter than the node's own, and a
// later publish keeps them.
func TestChannelCapsTighten(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 8)
	pub.Publish("1.0.0", src, "--channel-wan-rate", "2MB/s", "--channel-site-wan-rate", "off")
	makeTree(t, src, 1, 9)
	pub.Publish("1.1.0", src) // no cap flags: the head keeps the channel's caps
	seed := newSeed(t, pub.Repo)
	n := newNode(t, nodeOpts{Name: "n", Trust: pub.Trust, Sources: []string{seed.URL}, Extra: []string{"--wan-rate", "5MB/s"}})
	n.WaitVersion(t, "1.1.0", 60*time.Second)
	// The limiter asks its caps again within a second.
	waitFor(t, 10*time.Second, func() bool { st, err := n.status(); return err == nil && st.Caps != nil && st.Caps.WAN == 2_000_000 },
		"the node's WAN cap to be the channel's 2MB/s")
}

// TestLANUploadCapHolds: a member capped at 1 MB/s of uploads to its site
// serves a late joiner the whole release no faster than the cap allows, and
// the joiner still gets it all from the site.
func TestLANUploadCapHolds(t *testing.T) {
	const capRate = 1_000_000 // --lan-upload-rate 1MB/s
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 4, 11)
	s := pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	key := siteKey(t)
	a := newNode(t, nodeOpts{Name: "uploader", Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: key,
		Extra: []string{"--lan-upload-rate", "1MB/s"}})
	a.WaitVersion(t, "1.0.0", 60*time.Second)
	b := newNode(t, nodeOpts{Name: "joiner", Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: key, Join: []string{a.Gossip}})
	waitFor(t, 30*time.Second, func() bool { return alive(b) == 2 }, "the joiner to see the uploader")
	before := seed.Served(t).Bytes
	start := time.Now()
	if r := b.Update(t); r.code != 0 {
		t.Fatalf("update: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	elapsed := time.Since(start)
	sameTree(t, src, filepath.Join(b.Install, "current"))
	lan := b.Status(t).Bytes.LAN
	if lan < s.NewBytes*9/10 {
		t.Fatalf("the joiner got %d bytes from its site and the seed served %d more, for a %d-byte release: the test needs the site to carry it", lan, seed.Served(t).Bytes-before, s.NewBytes)
	}
	const slack = 64 << 10 // the bucket starts full
	if min := time.Duration(float64(lan-slack) / capRate * float64(time.Second)); elapsed < min {
		t.Errorf("%d LAN bytes under a %d B/s upload cap moved in %v, want at least %v", lan, capRate, elapsed, min)
	}
	if rate := float64(lan) / elapsed.Seconds(); rate > 1.1*capRate {
		t.Errorf("average LAN rate %.0f B/s over an upload cap of %d B/s", rate, capRate)
	}
	if st := a.Status(t); st.Caps == nil || st.Caps.LANUpload != capRate || st.Caps.LANThrottledSeconds <= 0 {
		t.Errorf("uploader's caps = %+v, want lan_upload %d and some throttled time", st.Caps, capRate)
	}
	t.Logf("%d LAN bytes in %v: %.0f B/s under an upload cap of %d B/s", lan, elapsed.Round(time.Millisecond), float64(lan)/elapsed.Seconds(), capRate)
}

// TestSiteWANCapGoesToTheDistributionPoint: in a site of three whose one
// distribution point alone fetches from the WAN, a site cap set alike on every
// member is the distribution point's whole cap, not a third of it; the
// ordinary members keep a third for when it fails them. The site still reads
// no faster than the cap.
func TestSiteWANCapGoesToTheDistributionPoint(t *testing.T) {
	const capRate = 1_000_000 // --site-wan-rate 1MB/s, in bytes a second
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 4, 17)
	cr := newCountingRepo(t, pub.Repo)
	key := siteKey(t)
	dp := newNode(t, nodeOpts{Name: "site-dp", Trust: pub.Trust, Sources: []string{cr.URL}, SiteKey: key,
		Extra: []string{"--role", "dp", "--site-wan-rate", "1MB/s"}})
	nodes := []*nodeProc{dp}
	for _, name := range []string{"site-a", "site-b"} {
		nodes = append(nodes, newNode(t, nodeOpts{Name: name, Trust: pub.Trust, Sources: []string{cr.URL}, SiteKey: key,
			Join: []string{dp.Gossip}, Extra: []string{"--site-wan-rate", "1MB/s"}}))
	}
	// Every member sees all three alive, the distribution point as one, and
	// has made its start-up check.
	for _, n := range nodes {
		waitFor(t, 30*time.Second, func() bool {
			st, err := n.status()
			if err != nil || st.LastCheck == nil {
				return false
			}
			live, dps := 0, 0
			for _, p := range st.Peers {
				if p.State == "alive" {
					live++
					if p.Role == "dp" {
						dps++
					}
				}
			}
			return live == 3 && dps == 1
		}, n.Name+" to see the site")
	}

	s := pub.Publish("1.0.0", src)
	start := time.Now()
	updateAll(t, nodes)
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 90*time.Second)
	}
	elapsed := time.Since(start)
	sameTree(t, src, filepath.Join(nodes[2].Install, "current"))
	moved := cr.stats.ChunkBytes.Load()
	if moved < s.NewBytes || float64(moved) > 1.05*float64(s.NewBytes) {
		t.Errorf("the seed served %d chunk bytes for a release of %d new bytes, want each about once", moved, s.NewBytes)
	}
	for _, n := range nodes {
		st := n.Status(t)
		want := int64(capRate / 3)
		if n == dp {
			want = capRate
		} else if r := st.Current; r == nil || r.FromWAN != 0 {
			t.Errorf("%s is no distribution point; its release record %+v, want nothing from the WAN", n.Name, r)
		}
		// Read after the transfer: the limiters asked their caps every second of it.
		if st.Caps == nil || st.Caps.SiteWAN != capRate || st.Caps.WAN != want {
			t.Errorf("%s: caps %+v, want the site's %d and %d B/s of it", n.Name, st.Caps, capRate, want)
		}
	}
	if out := mustPM(t, "status", "--api", dp.API).stdout; !strings.Contains(out, "WAN 8Mbit/s, site WAN 8Mbit/s; waited") {
		t.Errorf("patchmesh status of the distribution point does not show its caps and wait:\n%s", out)
	}
	// One bucket's worth (at most 64 KiB at 1 MB/s) moves unpaced.
	const slack = 64 << 10
	if min := time.Duration(float64(moved-slack) / capRate * float64(time.Second)); elapsed < min {
		t.Errorf("%d bytes under a site cap of %d B/s moved in %v, want at least %v", moved, capRate, elapsed, min)
	}
	t.Logf("the site read %d bytes in %v: %.2fx its cap of %d B/s", moved, elapsed.Round(time.Millisecond), float64(moved)/elapsed.Seconds()/capRate, capRate)
}
