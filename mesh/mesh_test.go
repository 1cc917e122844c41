package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// TestSiteFetchesEachChunkOnce: nodes of one site all fetch the same chunks
// at once; every node ends with every chunk, and the WAN served each chunk
// once, to its owner.
func TestSiteFetchesEachChunkOnce(t *testing.T) {
	tests := []struct {
		name   string
		nodes  int
		chunks int
		dps    int // the first dps nodes are distribution points
	}{
		{"4 nodes", 4, 200, 0},
		{"5 nodes, 2 distribution points", 5, 200, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWAN(t)
			cids, total := w.add(t, tt.chunks, 64<<10)
			nodes := startSite(t, siteKey(t), w, tt.nodes, siteOpts{config: func(i int, cfg *Config) {
				if i < tt.dps {
					cfg.Role = RoleDP
				}
			}})
			fetchAllAtOnce(t, nodes, cids)
			for _, n := range nodes {
				checkStored(t, n, cids)
			}
			bytes, count, by := w.served()
			for _, c := range cids {
				if count[c.String()] != 1 {
					t.Errorf("WAN served chunk %s %d times, want once", c, count[c.String()])
				}
				owner := nodes[0].m.Owner(c)
				if by[c.String()][owner] != 1 {
					t.Errorf("chunk %s: WAN fetches by node %v, want one by its owner %s", c, by[c.String()], owner)
				}
			}
			ratio := float64(bytes) / float64(total)
			t.Logf("WAN bytes %d for %d bytes of chunks: %.3fx", bytes, total, ratio)
			if ratio > 1.0 {
				t.Errorf("WAN bytes %.3fx the chunk bytes, want 1x", ratio)
			}
			for i, n := range nodes {
				if c := n.d.wanChunks.Load(); i >= tt.dps && tt.dps > 0 && c != 0 {
					t.Errorf("%s is no distribution point but fetched %d chunks from the WAN", n.m.Name(), c)
				}
			}
			// Every node but the owner got each chunk over the LAN. A server
			// counts a chunk once its write returns, which may be just after
			// the requester has it: wait for the counters to settle.
			want := int64(len(nodes)-1) * total
			var lan, served int64
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				lan, served = 0, 0
				for _, n := range nodes {
					lan += n.m.Stats().LANBytes
					served += n.m.Stats().ServedBytes
				}
				if served == want || time.Now().After(deadline) {
					break
				}
			}
			if lan != want || served != want {
				t.Errorf("LAN bytes received %d, served %d; want both %d", lan, served, want)
			}
		})
	}
}

// TestOwnedOnePerChunk: in a site, exactly one member reports each chunk as
// its own, the owner every member names; a node alone owns nothing.
func TestOwnedOnePerChunk(t *testing.T) {
	w := newTestWAN(t)
	cids, _ := w.add(t, 60, 4<<10)
	alone := startNode(t, loopbackConfig(siteKey(t), "alone"), w, nil, runOptions{})
	if alone.m.Owned()(cids[0]) {
		t.Errorf("a node alone reports owning a chunk")
	}
	nodes := startSite(t, siteKey(t), w, 3, siteOpts{})
	var owned []func(cid.Cid) bool
	for _, n := range nodes {
		owned = append(owned, n.m.Owned())
	}
	for _, c := range cids {
		var owners []string
		for i, n := range nodes {
			if owned[i](c) {
				owners = append(owners, n.m.Name())
			}
		}
		if len(owners) != 1 || owners[0] != nodes[0].m.Owner(c) {
			t.Errorf("chunk %s: owned by %v, want only %s", c, owners, nodes[0].m.Owner(c))
		}
	}
}

// TestDelegateToldOfStored: the Delegate is told of every chunk the mesh
// stores with the Origin Fetch returns, and the owner that fetched a chunk
// from its WAN for a peer is told it came from the WAN.
func TestDelegateToldOfStored(t *testing.T) {
	w := newTestWAN(t)
	cids, _ := w.add(t, 40, 16<<10)
	nodes := startSite(t, siteKey(t), w, 2, siteOpts{})
	asker, other := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	origins, err := fetchAll(ctx, asker, cids)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cids {
		got, ok := asker.d.storedOrigin(c)
		if !ok || got != origins[i] {
			t.Errorf("chunk %s: delegate told %+v (%v), Fetch returned %+v", c, got, ok, origins[i])
		}
		if origins[i].Peer == other.m.Name() {
			if o, ok := other.d.storedOrigin(c); !ok || !o.WAN {
				t.Errorf("chunk %s: its owner's delegate told %+v (%v), want from the WAN", c, o, ok)
			}
		}
	}
}

// TestDistributionPointShare: where distribution points alone fetch from the
// WAN, the site's WAN fetches are shared among them, not among every member:
// one distribution point of five members keeps up to the site's 32 in flight,
// where a fifth share would be 7, and reads at a site rate cap's whole.
func TestDistributionPointShare(t *testing.T) {
	w := newTestWAN(t)
	w.delay = 20 * time.Millisecond
	cids, _ := w.add(t, 300, 16<<10)
	nodes := startSite(t, siteKey(t), w, 5, siteOpts{config: func(i int, cfg *Config) {
		if i == 0 {
			cfg.Role = RoleDP
		}
	}})
	fetchAllAtOnce(t, nodes, cids)
	for _, n := range nodes[1:] {
		if c := n.d.wanChunks.Load(); c != 0 {
			t.Errorf("%s is no distribution point but fetched %d chunks from the WAN", n.m.Name(), c)
		}
	}
	peak := w.peak.Load()
	t.Logf("at most %d WAN fetches at once", peak)
	if peak <= 8 || peak > DefaultSiteWANRequests {
		t.Errorf("at most %d WAN fetches at once; want more than a fifth of the site's %d, at most all of them", peak, DefaultSiteWANRequests)
	}
	// A site WAN rate cap goes the same way: whole to the one that fetches.
	for i, n := range nodes {
		want := 5
		if i == 0 {
			want = 1
		}
		if got := n.m.CapShare(); got != want {
			t.Errorf("%s shares a site cap by %d, want %d", n.m.Name(), got, want)
		}
	}
}

// TestSiteWANWidens: far from its WAN behind a fast link, where every fetch
// takes one round trip however many run at once, a site of two widens its
// WAN fetches past SiteWANRequests, up to SiteWANRequestsMax. Behind a thin
// link, which answers one fetch at a time so that fetches queue from the
// first ones, it keeps SiteWANRequests, but for one doubling each: a member
// whose first fetches already queued behind the other's saw no quick fetch,
// and may double once before the next period undoes it (wanWindow's
// confirmRatio), after which it holds for wanHold, longer than the run.
func TestSiteWANWidens(t *testing.T) {
	tests := []struct {
		name             string
		delay, link      time.Duration
		chunks           int
		wantMin, wantMax int64
	}{
		{"far and fast", 100 * time.Millisecond, 0, 2000, DefaultSiteWANRequests + 1, 4 * DefaultSiteWANRequests},
		{"thin", 0, 5 * time.Millisecond, 600, 1, 2 * DefaultSiteWANRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWAN(t)
			w.delay, w.link = tt.delay, tt.link
			cids, _ := w.add(t, tt.chunks, 4<<10)
			nodes := startSite(t, siteKey(t), w, 2, siteOpts{config: func(_ int, cfg *Config) {
				cfg.Concurrency = 256 // the node's bound on its fetches at once: room to widen
			}})
			fetchAllAtOnce(t, nodes, cids)
			peak := w.peak.Load()
			t.Logf("at most %d WAN fetches at once", peak)
			if peak < tt.wantMin || peak > tt.wantMax {
				t.Errorf("at most %d WAN fetches at once, want %d to %d", peak, tt.wantMin, tt.wantMax)
			}
			_, count, _ := w.served()
			for _, c := range cids {
				if n := count[c.String()]; n != 1 {
					t.Fatalf("chunk %s crossed the WAN %d times, want once", c, n)
				}
			}
		})
	}
}

// TestSelfRowIsCurrent: our own row in Members says what the node set at
// once; the other members see it once gossip carries it.
func TestSelfRowIsCurrent(t *testing.T) {
	nodes := startSite(t, siteKey(t), newTestWAN(t), 2, siteOpts{})
	m := nodes[0].m
	m.SetHolding(7)
	m.SetRunning(6)
	if err := m.SetStatus([]byte("s")); err != nil {
		t.Fatal(err)
	}
	row := func(ms *Mesh, name string) Member {
		for _, mb := range ms.Members() {
			if mb.Name == name {
				return mb
			}
		}
		t.Fatalf("%s is not a member", name)
		return Member{}
	}
	self := row(m, m.name)
	if !self.Self || self.Holding != 7 || self.Running != 6 || string(self.Status) != "s" {
		t.Errorf("own row right after setting: self %v, holding %d, running %d, status %q; want true, 7, 6, \"s\"", self.Self, self.Holding, self.Running, self.Status)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		other := row(nodes[1].m, m.name)
		if other.Holding == 7 && other.Running == 6 && string(other.Status) == "s" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer's row of us never said holding 7, running 6: %+v", other)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
