package mesh

import (
	"bufio"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/patchmesh/patchmesh/chunk"
)

// TestOwnerStopsMidway: the member owning the most chunks stops while the
// others fetch, gracefully or as if killed; they still get every chunk, and
// the WAN serves about one copy of each.
func TestOwnerStopsMidway(t *testing.T) {
	tests := []struct {
		name     string
		crash    bool
		maxRatio float64
	}{
		// Leaving gracefully, the owner finishes what it has in flight and
		// its successors ask around before fetching: no byte twice on a
		// quiet machine. Under -race beside other tests a request can still
		// time out and be fetched again (1 chunk of 300 seen): 2% of slack,
		// where a stop that cut its requests off cost 4–7%.
		{"graceful", false, 1.02},
		// Killed, it takes with it the chunks it fetched but had not
		// handed out yet, bounded by what was in flight.
		{"crash", true, 1.15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWAN(t)
			w.delay = 2 * time.Millisecond
			cids, total := w.add(t, 300, 32<<10)
			nodes := startSite(t, siteKey(t), w, 4, siteOpts{run: func(int) runOptions { return runOptions{crash: tt.crash} }})

			owned := map[string]int{}
			for _, c := range cids {
				owned[nodes[0].m.Owner(c)]++
			}
			var victim *testNode
			var survivors []*testNode
			for _, n := range nodes {
				if victim == nil || owned[n.m.Name()] > owned[victim.m.Name()] {
					victim = n
				}
			}
			for _, n := range nodes {
				if n != victim {
					survivors = append(survivors, n)
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			errs := startFetchAll(ctx, survivors, cids)
			// Stop the owner once it has served a quarter of what it would.
			quarter := int64(owned[victim.m.Name()] * len(survivors) / 4)
			for victim.m.Stats().ServedChunks < quarter {
				select {
				case err := <-errs:
					t.Fatalf("a survivor finished before the owner was stopped: %v", err)
				case <-time.After(5 * time.Millisecond):
				}
			}
			servedBefore := victim.m.Stats().ServedChunks
			victim.stop(t)
			for range survivors {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range survivors {
				checkStored(t, n, cids)
			}
			bytes, count, _ := w.served()
			dup := 0
			for _, c := range cids {
				if count[c.String()] > 1 {
					dup++
				}
			}
			ratio := float64(bytes) / float64(total)
			t.Logf("%s owned %d of %d chunks, served %d copies before it stopped; WAN bytes %.3fx, %d chunks fetched twice",
				victim.m.Name(), owned[victim.m.Name()], len(cids), servedBefore, ratio, dup)
			if ratio > tt.maxRatio {
				t.Errorf("WAN bytes %.3fx the chunk bytes, want at most %.2fx", ratio, tt.maxRatio)
			}
			if tt.crash {
				return
			}
			// Left once the leave message arrives, or at the latest once the
			// bounds of a graceful stop have passed.
			for _, n := range survivors {
				state := func() string {
					for _, mb := range n.m.Members() {
						if mb.Name == victim.m.Name() {
							return mb.State
						}
					}
					return ""
				}
				deadline := time.Now().Add(leaveAnnounceTimeout + leaveTimeout + 5*time.Second)
				for state() != StateLeft && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if s := state(); s != StateLeft {
					t.Errorf("%s sees the stopped member as %s, want %s", n.m.Name(), s, StateLeft)
				}
			}
		})
	}
}

// TestCorruptPeer: a member that serves bad bytes is detected and
// penalized, and the chunks still arrive intact from another member.
func TestCorruptPeer(t *testing.T) {
	w := newTestWAN(t)
	cids, _ := w.add(t, 120, 16<<10)
	var corrupted atomic.Int64
	var mu sync.Mutex
	blamed := map[string]int64{} // BadPeer's reports to the reader
	nodes := startSite(t, siteKey(t), w, 3, siteOpts{config: func(i int, cfg *Config) {
		if i == 0 {
			cfg.Delegate = &testDelegate{badPeer: func(c cid.Cid, member string, err error) {
				mu.Lock()
				blamed[member]++
				mu.Unlock()
			}}
		}
	}, run: func(i int) runOptions {
		if i != 2 {
			return runOptions{}
		}
		// An honest Mesh never serves unverified bytes, so a lying peer
		// cannot be made any other way.
		return runOptions{corrupt: func(b []byte) []byte {
			corrupted.Add(1)
			out := append([]byte(nil), b...)
			out[len(out)/2] ^= 0xff
			return out
		}}
	}})
	liar, reader := nodes[2], nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	origins, err := fetchAll(ctx, reader, cids)
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, reader, cids)
	for i, o := range origins {
		if o.Peer == liar.m.Name() {
			t.Errorf("chunk %s reported as delivered by the corrupting member", cids[i])
		}
	}
	s := reader.m.Stats()
	t.Logf("corrupted %d responses; reader saw %d verify failures, %d penalties", corrupted.Load(), s.VerifyFailures, s.Penalties)
	if s.VerifyFailures == 0 || s.Penalties == 0 {
		t.Fatalf("no verify failure or penalty recorded: %+v", s)
	}
	mu.Lock()
	if len(blamed) != 1 || blamed[liar.m.Name()] != s.VerifyFailures {
		t.Errorf("BadPeer told of %v, want %d chunks from %s", blamed, s.VerifyFailures, liar.m.Name())
	}
	mu.Unlock()
	if !reader.m.penalized(liar.m.pid) {
		t.Errorf("corrupting member is not penalized")
	}
	// Once penalized, the liar is not asked again: only requests already
	// in flight to it (at most the per-peer bound) can fail verification.
	if lim := reader.m.perPeer(); s.VerifyFailures > int64(lim) {
		t.Errorf("%d verify failures, want at most the %d requests to one peer at once: the penalty did not stop requests", s.VerifyFailures, lim)
	}
}

// TestOtherSiteRefused: a node with another site key cannot join, and a
// libp2p host outside the site cannot fetch chunks from a member.
func TestOtherSiteRefused(t *testing.T) {
	w := newTestWAN(t)
	cids, _ := w.add(t, 1, 1024)
	nodes := startSite(t, siteKey(t), w, 2, siteOpts{})
	member := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := member.m.Fetch(ctx, cids[0]); err != nil {
		t.Fatal(err)
	}

	// A node with another key joining the member's gossip address.
	cfg := loopbackConfig(siteKey(t), "stranger", member.m.GossipAddr())
	stranger := startNode(t, cfg, w, nil, runOptions{})
	if n, err := stranger.m.ml.Join([]string{member.m.GossipAddr()}); n != 0 || err == nil {
		t.Errorf("join with another site key: contacted %d, err %v; want refusal", n, err)
	}
	// Watch a while (several gossip rounds): nobody may see the stranger.
	time.Sleep(2 * time.Second)
	for _, n := range append(nodes, stranger) {
		if got := aliveCount(n.m); (n == stranger && got != 1) || (n != stranger && got != 2) {
			t.Errorf("%s sees %d alive members: %+v", n.m.Name(), got, n.m.Members())
		}
	}

	// A plain libp2p host (no gater of its own) asking the member for the
	// chunk: the member's gater refuses the connection.
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	info := peer.AddrInfo{ID: member.m.pid}
	for _, a := range member.m.P2PAddrs() {
		info.Addrs = append(info.Addrs, ma.StringCast(a))
	}
	h.Peerstore().AddAddrs(info.ID, info.Addrs, time.Hour)
	if _, err := outsiderRequest(ctx, h, info.ID, cids[0]); err == nil {
		t.Fatalf("host outside the site fetched a chunk from a member")
	}
	// The same request from the stranger's mesh (its own gater and all).
	if _, err := stranger.m.request(ctx, member.m.pid, cids[0], flagStore); err == nil {
		t.Fatalf("node of another site fetched a chunk from a member")
	}
	if got := member.m.Stats().ServedChunks; got != 0 {
		t.Errorf("member served %d chunks to outsiders", got)
	}
	// Control: a member of the site gets it.
	data, err := nodes[1].m.request(ctx, member.m.pid, cids[0], flagStore)
	if err != nil || chunk.Verify(cids[0], data.raw) != nil {
		t.Errorf("site member request: %v", err)
	}
}

// outsiderRequest speaks the chunk protocol from a bare libp2p host.
func outsiderRequest(ctx context.Context, h host.Host, p peer.ID, c cid.Cid) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return nil, err
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeRequest(s, c, flagStore); err != nil {
		return nil, err
	}
	_ = s.CloseWrite()
	data, _, _, err := readResponse(bufio.NewReader(s))
	return data, err
}

// TestBusyOwnerIsWaitedFor: an owner too busy to take a request in time is
// asked again, not taken over: the next member would fetch the chunk from the
// WAN a second time. Here node-0 only serves: one request at a time, each
// waiting on a slow WAN, so most requests to it are answered "busy".
func TestBusyOwnerIsWaitedFor(t *testing.T) {
	w := newTestWAN(t)
	w.delay = 300 * time.Millisecond
	cids, _ := w.add(t, 30, 4<<10)
	nodes := startSite(t, siteKey(t), w, 3, siteOpts{config: func(_ int, cfg *Config) {
		cfg.ServeConcurrency = 1
		// A request waits at most half of it for a serve slot, then "busy".
		cfg.RequestTimeout = 2 * time.Second
	}})
	fetchAllAtOnce(t, nodes[1:], cids)
	_, count, by := w.served()
	for _, c := range cids {
		if count[c.String()] != 1 {
			t.Errorf("WAN served chunk %s %d times (%v), want once, to its owner %s", c, count[c.String()], by[c.String()], nodes[0].m.Owner(c))
		}
	}
}
