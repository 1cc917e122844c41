package mesh

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestWANLimit(t *testing.T) {
	tests := []struct {
		fixed, site, alone, live, owners, want int
	}{
		{0, 32, 8, 1, 1, 32},  // alone: the whole site's share
		{0, 32, 64, 1, 1, 64}, // or the node's own bound, if larger
		{0, 32, 64, 0, 0, 64}, // before it counts itself
		{0, 32, 64, 2, 2, 16}, // not alone: a share
		{0, 32, 8, 5, 5, 7},
		{0, 32, 8, 20, 20, 4}, // never below minWANRequests
		{0, 32, 8, 50, 50, 4},
		{0, 128, 8, 2, 2, 64}, // a site far from its sources keeps more in flight
		{0, 128, 8, 5, 5, 26},
		{0, 128, 64, 1, 1, 128},
		{0, 32, 8, 20, 2, 16}, // two distribution points fetch for twenty members
		{0, 32, 8, 20, 1, 32},
		{0, 32, 8, 20, 0, 32}, // none counted yet
		{3, 32, 64, 1, 1, 3},  // a configured limit wins
		{3, 128, 8, 20, 20, 3},
	}
	for _, tt := range tests {
		if got := wanLimit(tt.fixed, tt.site, tt.alone, tt.live, tt.owners); got != tt.want {
			t.Errorf("fixed %d, site %d, alone %d, %d live, %d owners: limit %d, want %d", tt.fixed, tt.site, tt.alone, tt.live, tt.owners, got, tt.want)
		}
	}
}

// TestCapShare: a site's WAN rate cap is shared by the members that fetch
// from the WAN for the site; an ordinary member of a site with distribution
// points, which fetches only when they fail it, shares it with every member.
func TestCapShare(t *testing.T) {
	tests := []struct {
		dp                 bool
		live, owners, want int
	}{
		{false, 0, 0, 1}, // before it counts itself
		{false, 1, 1, 1},
		{false, 5, 5, 5}, // no distribution points: every member fetches
		{true, 5, 5, 5},  // every live member is a distribution point
		{true, 20, 1, 1}, // the one distribution point reads at the whole cap
		{true, 20, 2, 2},
		{false, 20, 2, 20}, // an ordinary member's fallback: a small part
		{false, 20, 0, 20}, // none counted yet
		{true, 20, 0, 1},   // its own entry not counted yet
	}
	for _, tt := range tests {
		if got := capShare(tt.dp, tt.live, tt.owners); got != tt.want {
			t.Errorf("dp %v, %d live, %d owners: shared by %d, want %d", tt.dp, tt.live, tt.owners, got, tt.want)
		}
	}
}

// TestPerPeerLimit: a member may ask one peer for as many chunks at once as
// that owner fetches from its WAN, so that its share is kept busy.
func TestPerPeerLimit(t *testing.T) {
	tests := []struct {
		perPeer, site, live, owners, want int
	}{
		{8, 32, 0, 0, 8},
		{8, 32, 1, 1, 8},
		{8, 32, 2, 2, 16}, // the one other member asks for the owner's whole share
		{8, 32, 3, 3, 11},
		{8, 32, 5, 5, 8}, // the share is below PerPeer
		{8, 128, 2, 2, 64},
		{8, 128, 20, 20, 8},
		{8, 32, 20, 2, 16}, // a distribution point's share
		{24, 128, 8, 8, 24},
	}
	for _, tt := range tests {
		if got := perPeerLimit(tt.perPeer, tt.site, tt.live, tt.owners); got != tt.want {
			t.Errorf("per peer %d, site %d, %d live, %d owners: %d, want %d", tt.perPeer, tt.site, tt.live, tt.owners, got, tt.want)
		}
	}
}

// TestMemberCounts: owners are the live distribution points when any is
// alive, else every live member; leaving and dead members count for neither.
func TestMemberCounts(t *testing.T) {
	tests := []struct {
		name              string
		members           []memberEntry
		wantLive, wantOwn int
	}{
		{"none", nil, 0, 0},
		{"all ordinary", []memberEntry{
			{name: "a", state: StateAlive}, {name: "b", state: StateAlive}, {name: "c", state: StateDead},
		}, 2, 2},
		{"two distribution points", []memberEntry{
			{name: "a", state: StateAlive, meta: nodeMeta{role: RoleDP}}, {name: "b", state: StateAlive, meta: nodeMeta{role: RoleDP}},
			{name: "c", state: StateAlive}, {name: "d", state: StateAlive}, {name: "e", state: StateAlive},
		}, 5, 2},
		{"the distribution points gone", []memberEntry{
			{name: "a", state: StateDead, meta: nodeMeta{role: RoleDP}}, {name: "b", state: StateAlive, meta: nodeMeta{role: RoleDP, leaving: true}},
			{name: "c", state: StateAlive}, {name: "d", state: StateAlive},
		}, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTable()
			for _, e := range tt.members {
				tb.upsert(e)
			}
			if live, own := tb.counts(); live != tt.wantLive || own != tt.wantOwn {
				t.Errorf("counts: %d live, %d owners; want %d, %d", live, own, tt.wantLive, tt.wantOwn)
			}
		})
	}
}

func TestWANLimiterWaits(t *testing.T) {
	l := newLimiter(func() int { return 2 })
	ctx := t.Context()
	for range 2 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := l.acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third acquire of 2 slots: %v, want it to wait until its context ends", err)
	}
	got := make(chan error, 1)
	go func() { got <- l.acquire(ctx) }()
	l.release()
	if err := <-got; err != nil {
		t.Fatalf("acquire after a release: %v", err)
	}
}

// driveWANWindow runs periods of a member's WAN fetches through w: in each,
// as many fetches as the limit w hands out, taking took(limit) each, over
// 300 ms of a fake clock. It returns the limit of each period.
func driveWANWindow(w *wanWindow, share, most, periods int, took func(limit int) time.Duration) []int {
	now := time.Unix(1e9, 0)
	w.now = func() time.Time { return now }
	var limits []int
	for range periods {
		limit := w.widen(share, most)
		limits = append(limits, limit)
		for range max(limit, wanPeriodFetches) {
			now = now.Add(300 * time.Millisecond / time.Duration(max(limit, wanPeriodFetches)))
			w.done(took(limit))
		}
	}
	return limits
}

// TestWANWindow: a member widens its WAN fetches while they take about as
// long as the quickest, up to its share of the most, and narrows them when
// a queue builds; a thin link, queued from the start, never widens.
func TestWANWindow(t *testing.T) {
	const rtt = 50 * time.Millisecond
	tests := []struct {
		name        string
		share, most int
		periods     int
		took        func(limit int) time.Duration
		want        []int
	}{
		{"far, fast link", 16, 64, 8, func(int) time.Duration { return rtt }, []int{16, 32, 32, 64, 64, 64, 64, 64}},
		{"no room", 16, 16, 4, func(int) time.Duration { return rtt }, []int{16, 16, 16, 16}},
		{"a thin link", 16, 64, 6, func() func(int) time.Duration {
			first := true
			return func(int) time.Duration {
				if first { // the first fetch met an empty link
					first = false
					return 10 * time.Millisecond
				}
				return 250 * time.Millisecond
			}
		}(), []int{16, 16, 16, 16, 16, 16}},
		{"a queue past 32", 16, 128, 10, func(limit int) time.Duration {
			if limit > 32 {
				return 4 * rtt
			}
			return rtt
		}, []int{16, 32, 32, 64, 64, 32, 32, 32, 32, 32}},
		// Others filled the link before this member began: no fetch of its
		// was quick, but its doubling lengthens the queue, and is undone.
		{"a queue it joined late", 16, 64, 8, func(limit int) time.Duration {
			return time.Duration(16+limit) * 2 * time.Millisecond
		}, []int{16, 32, 32, 16, 16, 16, 16, 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := driveWANWindow(newWANWindow(), tt.share, tt.most, tt.periods, tt.took)
			if !slices.Equal(got, tt.want) {
				t.Errorf("limits %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWANWindowIdle: after wanIdle without a fetch, the next fetches start
// again from the share, and from a new quickest fetch.
func TestWANWindowIdle(t *testing.T) {
	w := newWANWindow()
	got := driveWANWindow(w, 8, 64, 5, func(int) time.Duration { return 40 * time.Millisecond })
	if got[len(got)-1] != 32 {
		t.Fatalf("limits %v, want them to reach 32", got)
	}
	now := w.now().Add(wanIdle + time.Second)
	w.now = func() time.Time { return now }
	if n := w.widen(8, 64); n != 8 {
		t.Errorf("after a pause, before any fetch, the limit is %d, want the share, 8", n)
	}
	w.done(300 * time.Millisecond)
	if n := w.widen(8, 64); n != 8 {
		t.Errorf("after a pause the limit is %d, want the share, 8", n)
	}
	if w.quickest != 300*time.Millisecond {
		t.Errorf("quickest fetch %v after a pause, want the new one, 300ms", w.quickest)
	}
}

// TestWANWindowPeek: peek says what widen would, and moves nothing: after a
// pause it says the share, but the window starts again only when asked.
func TestWANWindowPeek(t *testing.T) {
	w := newWANWindow()
	driveWANWindow(w, 8, 64, 5, func(int) time.Duration { return 40 * time.Millisecond })
	n := w.peek(8, 64)
	if n <= 8 {
		t.Fatalf("peek = %d after quick fetches, want the window widened past the share, 8", n)
	}
	if m := w.peek(8, 16); m != 16 {
		t.Errorf("peek with a lower most = %d, want 16", m)
	}
	if m := w.widen(8, 64); m != n || w.most != 64 {
		t.Fatalf("widen = %d after peeks, most %d; want peek's %d, and 64 (peek records no most)", m, w.most, n)
	}
	now := w.now().Add(wanIdle + time.Second)
	w.now = func() time.Time { return now }
	if m := w.peek(8, 64); m != 8 {
		t.Errorf("peek after a pause = %d, want the share, 8", m)
	}
	if w.factor == 1 || w.quickest == 0 {
		t.Errorf("peek after a pause reset the window (factor %d, quickest %v)", w.factor, w.quickest)
	}
	if m := w.widen(8, 64); m != 8 || w.factor != 1 {
		t.Errorf("widen after a pause = %d, factor %d; want the share, 8, and the window started again", m, w.factor)
	}
}

// TestWANWindowUnasked: a member alone, or with a fixed limit, never asks the
// window for a limit; its fetches must not widen it meanwhile, or it would
// join a site with a share many times too large.
func TestWANWindowUnasked(t *testing.T) {
	w := newWANWindow()
	now := time.Unix(1e9, 0)
	w.now = func() time.Time { return now }
	for range 10000 {
		now = now.Add(10 * time.Millisecond)
		w.done(50 * time.Millisecond)
	}
	if n := w.widen(16, 128); n != 16 {
		t.Errorf("after fetches alone the limit is %d, want the share, 16", n)
	}
}
