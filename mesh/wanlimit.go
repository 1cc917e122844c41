package mesh

import (
	"context"
	"slices"
	"sync"
	"time"
)

// DefaultSiteWANRequests is how many WAN fetches a whole site keeps in flight
// when Config.SiteWANRequests is zero: enough to fill a WAN link as one node
// fetching 16 at a time and a few more (the node's default), shared by the
// members (each with at least minWANRequests), since hundreds of requests on a
// thin link stall each other and cost retransmissions.
const (
	DefaultSiteWANRequests = 32
	minWANRequests         = 4
)

// siteShare is one member's part of the site WAN fetches a whole site keeps
// in flight, shared among n members (2 or more).
func siteShare(site, n int) int {
	return max(minWANRequests, (site+n-1)/n)
}

// wanLimit bounds a node's WAN fetches at once: fixed, if set; with none set,
// its share of the site's, shared among the owners: the live members eligible
// to own chunks (only the distribution points, when any is alive). A member
// alone may go up to alone: with no peer to share the link, the node's own
// bound on its requests, which widens them only while that pays, is the one
// that counts.
func wanLimit(fixed, site, alone, live, owners int) int {
	if fixed > 0 {
		return fixed
	}
	if live <= 1 {
		return max(site, alone)
	}
	return siteShare(site, max(1, owners))
}

// limiter is a counting semaphore whose bound is asked at every acquire, so
// that it follows the site's live members.
type limiter struct {
	limit func() int

	mu     sync.Mutex
	n      int
	signal chan struct{} // closed and replaced when a slot frees
}

func newLimiter(limit func() int) *limiter {
	return &limiter{limit: limit, signal: make(chan struct{})}
}

// acquire waits for a slot or for ctx to end.
func (l *limiter) acquire(ctx context.Context) error {
	for {
		lim := l.limit() // asked once a round: members come and go meanwhile
		l.mu.Lock()
		if l.n < lim {
			l.n++
			l.mu.Unlock()
			return nil
		}
		wait := l.signal
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *limiter) release() {
	l.mu.Lock()
	l.n--
	close(l.signal)
	l.signal = make(chan struct{})
	l.mu.Unlock()
}

// wanWindow widens a site member's WAN fetches past its share of the site's
// while they take about as long as the quickest it has seen.
//
// Far from the sources each fetch waits a round trip for one chunk, so a
// fixed number of them caps the site's bytes a second whatever the link
// (32 make about 100 Mbit/s through 50 ms). Members cannot each widen while
// their own bytes a second rise, as a node alone does: on a full link one
// member's doubling pays by taking the others' bytes, and together they
// would overfill it. A full link queues instead, which slows every fetch
// through it, whichever member makes it: fetch times are a signal the
// members share. So each member doubles its fetches while the median fetch
// of a period takes at most widenRatio times the quickest fetch since the
// fetches began, which a queue rarely allows, and halves them when the
// median passes narrowRatio. A thin link queues from the first requests and
// never widens. A member that began when the others had filled the link
// already saw no quick fetch; its doubling lengthens the queue, so a
// doubling is kept only if the median after it stays within confirmRatio of
// the one before.
type wanWindow struct {
	now func() time.Time // tests replace it

	mu       sync.Mutex
	factor   int // the share is multiplied by it: 1, 2, 4...
	share    int // the share and the most last asked for
	most     int
	quickest time.Duration // the quickest fetch since the fetches began
	heldTill time.Time     // no widening before then, after a narrowing
	skip     bool          // the period after a change mixes both sizes: not measured
	before   time.Duration // the median before a doubling not yet confirmed; 0: none
	start    time.Time     // when the period began
	last     time.Time     // when the last fetch ended
	times    []time.Duration
}

const (
	// widenRatio and narrowRatio bound a period's median fetch time against
	// the quickest one: below the first the window doubles, above the
	// second it halves.
	widenRatio   = 1.5
	narrowRatio  = 3
	confirmRatio = 1.2
	// A period lasts at least wanPeriodFetches fetches, or as many as the
	// limit if more, and wanPeriodTime.
	wanPeriodFetches = 8
	wanPeriodTime    = 250 * time.Millisecond
	// wanHold is how long a window that narrowed waits before it widens.
	wanHold = 10 * time.Second
	// wanIdle without a fetch ends the fetches: the next ones, maybe of
	// another release over another route, start again from the share.
	wanIdle = 5 * time.Second
)

func newWANWindow() *wanWindow { return &wanWindow{now: time.Now, factor: 1} }

// widen returns share widened by the window, at most max (and never below
// share).
func (w *wanWindow) widen(share, max int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.share, w.most = share, max
	w.idle(w.now())
	return w.sized()
}

// peek returns what widen would, recording nothing: for reports, which must
// not move the window, nor end an idle one (that is the fetches' to do).
func (w *wanWindow) peek(share, max int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	factor := w.factor
	if w.idleAt(w.now()) {
		factor = 1
	}
	return widened(share, max, factor)
}

// sized is the share widened by the factor, within the most.
func (w *wanWindow) sized() int { return widened(w.share, w.most, w.factor) }

// widened is share times factor, within most; share if most is not above it.
func widened(share, most, factor int) int {
	if most <= share {
		return share
	}
	return min(share*factor, most)
}

// done records a WAN fetch that succeeded in d, and at a period's end sizes
// the window for the next. It returns the limit before and after, when this
// fetch changed it.
func (w *wanWindow) done(d time.Duration) (from, to int, changed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	before := w.sized()
	w.record(d)
	after := w.sized()
	return before, after, after != before
}

// record is done's work, with w.mu held.
func (w *wanWindow) record(d time.Duration) {
	now := w.now()
	w.idle(now)
	w.last = now
	if w.start.IsZero() {
		w.start = now
	}
	if w.quickest == 0 || d < w.quickest {
		w.quickest = max(d, time.Microsecond)
	}
	w.times = append(w.times, d)
	if len(w.times) < max(wanPeriodFetches, w.sized()) || now.Sub(w.start) < wanPeriodTime {
		return
	}
	med := median(w.times)
	w.times, w.start = w.times[:0], now
	if w.skip {
		w.skip = false
		return
	}
	before := w.before
	w.before = 0
	switch {
	case w.factor > 1 && (float64(med) > narrowRatio*float64(w.quickest) || before > 0 && float64(med) > confirmRatio*float64(before)):
		w.factor /= 2
		w.heldTill, w.skip = now.Add(wanHold), true
	case float64(med) <= widenRatio*float64(w.quickest) && !now.Before(w.heldTill) && w.sized() < w.most:
		w.factor *= 2
		w.skip, w.before = true, med
	}
}

// idleAt reports whether no fetch ended for wanIdle before now, since the
// fetches began.
func (w *wanWindow) idleAt(now time.Time) bool {
	return !w.last.IsZero() && now.Sub(w.last) > wanIdle
}

// idle starts the window again from the share when no fetch ended for
// wanIdle.
func (w *wanWindow) idle(now time.Time) {
	if !w.idleAt(now) {
		return
	}
	w.factor, w.quickest, w.heldTill, w.skip, w.before = 1, 0, time.Time{}, false, 0
	w.start, w.last, w.times = time.Time{}, time.Time{}, w.times[:0]
}

// median returns the median of ds, which it sorts.
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}
