package mesh

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestSummariesSpread: every member of a real site learns every other's
// summary and its updates; a member that joins later learns the summaries set
// before it came (push-pull, not only broadcasts).
func TestSummariesSpread(t *testing.T) {
	key := siteKey(t)
	w := newTestWAN(t)
	nodes := startSite(t, key, w, 2, siteOpts{})
	for i, n := range nodes {
		if err := n.m.SetSummary([]byte(fmt.Sprintf("v1 of %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	late := startNode(t, loopbackConfig(key, "node-late", nodes[0].m.GossipAddr()), w, nil, runOptions{})
	all := append(nodes, late)
	waitAlive(t, all, 3)
	if err := late.m.SetSummary([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].m.SetSummary([]byte("v2 of 1")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"node-0": "v1 of 0", "node-1": "v2 of 1", "node-late": "late"}
	waitSummaries(t, all, want, 45*time.Second)
}

func waitSummaries(t *testing.T, nodes []*testNode, want map[string]string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, n := range nodes {
		for {
			got := n.m.Summaries()
			ok := len(got) == len(want)
			for name, v := range want {
				ok = ok && bytes.Equal(got[name], []byte(v))
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s holds summaries %q, want %q", n.m.Name(), got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestSummaryBounds(t *testing.T) {
	known := map[string]bool{}
	s := newSummaries("self", func(n string) bool { return known[n] }, func() int { return 1 })
	m := &Mesh{sums: s}
	if err := m.SetSummary(make([]byte, MaxSummary+1)); err == nil {
		t.Fatal("SetSummary took more than MaxSummary bytes")
	}
	// Older versions never replace newer ones; oversized entries are refused.
	if !s.merge("a", summaryEntry{ver: 2, data: []byte("new")}) || s.merge("a", summaryEntry{ver: 1, data: []byte("old")}) {
		t.Fatal("merge does not keep the newest version")
	}
	if s.merge("b", summaryEntry{ver: 1, data: make([]byte, MaxSummary+1)}) {
		t.Fatal("merge took an oversized summary")
	}
	// The table holds at most MaxSummaries, making room only from members
	// the member table no longer knows.
	for i := range MaxSummaries + 10 {
		name := fmt.Sprintf("m%03d", i)
		known[name] = true
		s.merge(name, summaryEntry{ver: 1, data: []byte("x")})
	}
	if len(s.entries) != MaxSummaries {
		t.Fatalf("%d summaries kept, want the cap %d", len(s.entries), MaxSummaries)
	}
	delete(known, "m000")
	if !s.merge("fresh", summaryEntry{ver: 1, data: []byte("x")}) {
		t.Fatal("a forgotten member's summary did not make room")
	}
	// A push-pull state round-trips, and truncated or lying states are
	// read no further than they hold.
	st := s.localState()
	s2 := newSummaries("other", func(string) bool { return true }, func() int { return 1 })
	s2.mergeState(st)
	if len(s2.entries) != MaxSummaries {
		t.Fatalf("state carried %d summaries, want %d", len(s2.entries), MaxSummaries)
	}
	for _, bad := range [][]byte{nil, {stateVersion}, {stateVersion, 0xff, 0xff, 0xff, 0x0f}, st[:len(st)/2], {stateVersion, 1, 200, 'a'}} {
		s3 := newSummaries("x", func(string) bool { return true }, func() int { return 1 })
		s3.mergeState(bad) // must not panic
		s3.notify(append([]byte{msgSummary}, bad...))
	}
}

// FuzzSummaryState: no state or message a peer sends panics or grows the
// table past its cap.
func FuzzSummaryState(f *testing.F) {
	s := newSummaries("self", func(string) bool { return true }, func() int { return 1 })
	s.merge("a", summaryEntry{ver: 1, data: []byte("hello")})
	f.Add(s.localState())
	f.Add(encodeSummaryMsg("b", summaryEntry{ver: 3, data: []byte("x")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newSummaries("self", func(string) bool { return true }, func() int { return 1 })
		s.mergeState(b)
		s.notify(b)
		if len(s.entries) > MaxSummaries {
			t.Fatalf("%d entries", len(s.entries))
		}
	})
}

// A member that missed a broadcast gets the summary when its author sends it
// again, before any push-pull.
func TestSummaryResend(t *testing.T) {
	known := func(string) bool { return true }
	a := newSummaries("a", known, func() int { return 2 })
	b := newSummaries("b", known, func() int { return 2 })
	a.setOwn([]byte("hello"))
	_ = a.queue.GetBroadcasts(0, 1400) // sent, and lost
	for a.queue.NumQueued() > 0 {
		_ = a.queue.GetBroadcasts(0, 1400)
	}
	a.resendOwn()
	for _, msg := range a.queue.GetBroadcasts(0, 1400) {
		b.notify(msg)
	}
	if got := b.get()["a"]; string(got) != "hello" {
		t.Fatalf("b holds %q for a after the resend", got)
	}
	// b passes on only what was news to it.
	if b.queue.NumQueued() != 1 {
		t.Fatalf("b queued %d broadcasts, want 1", b.queue.NumQueued())
	}
	a.resendOwn()
	for _, msg := range a.queue.GetBroadcasts(0, 1400) {
		b.notify(msg)
	}
	if b.queue.NumQueued() != 1 {
		t.Fatalf("a resend b already held was passed on: %d queued", b.queue.NumQueued())
	}
}
