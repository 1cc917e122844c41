package pipeline

import (
	"context"
	"sync"
	"time"
)

// window is how many fetches of a lane run at once. Far from its source a
// fetch spends a round trip waiting for one chunk (19 KiB on average), so a
// fixed number of them caps the bytes a second whatever the link: 16 at once
// made 47 Mbit/s through a 50 ms round trip, 64 made 174
// (scripts/bench-rtt.sh).
//
// The window starts at its minimum and, like TCP's slow start, doubles after
// each measured period in which the bytes a second rose by a fifth or more
// over the period before it, up to its maximum. The first period that did not
// pay for its doubling takes the window back to the size before, where it
// settles; so does a window that reached its maximum and measured it. Near the
// source, or behind a rate cap, the first doubling does not pay and the
// window ends where it began.
//
// A settled window below its maximum tries doubling again every
// reprobeAfter: a long fetch outlives what it measured (a rate cap's schedule
// lifts at night, a busy CPU made a doubling look unpaid).
type window struct {
	min, max int
	fixed    bool // max not above min: nothing to measure
	// follow, if set, sizes a fixed window at each acquire, never below
	// min: a bound that someone else measures.
	follow func() int
	now    func() time.Time // tests replace it

	mu        sync.Mutex
	size      int
	busy      int
	settled   bool
	settledAt time.Time
	peak      int           // the largest size taken, for the log
	freed     chan struct{} // closed, and replaced, when a slot frees or the window grows

	// The period being measured: fetches ended in it, their bytes, since when.
	start  time.Time
	ended  int
	bytes  int64
	before float64 // bytes a second of the previous period, 0 before the first
}

const (
	// A period lasts at least periodFetches fetches per slot of the window
	// and at least periodTime: enough round trips to measure a rate.
	periodFetches = 4
	periodTime    = 200 * time.Millisecond
	// growthPays is the rise of the bytes a second that a doubling must bring.
	growthPays = 1.2
	// reprobeAfter is how long a window stays settled below its maximum
	// before it tries doubling again: one period in 150 at twice the fetches.
	reprobeAfter = 30 * time.Second
)

// newWindow returns a window of min fetches at once that may grow to max; a
// max not above min keeps it fixed.
func newWindow(min, max int) *window {
	w := &window{min: min, max: max, size: min, peak: min, now: time.Now, freed: make(chan struct{})}
	if max <= min {
		w.max, w.fixed = min, true
	}
	return w
}

// startAt opens the window at n fetches at once, within its bounds, before
// its first acquire, and returns the size it took.
func (w *window) startAt(n int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.size = max(w.min, min(n, w.max))
	w.peak = max(w.peak, w.size)
	return w.size
}

// acquire waits for a slot in the window.
func (w *window) acquire(ctx context.Context) error {
	for {
		size := 0
		if w.fixed && w.follow != nil {
			size = w.follow() // outside the lock: it takes the mesh's
		}
		w.mu.Lock()
		if size > 0 {
			w.size = max(w.min, size)
			w.peak = max(w.peak, w.size)
		}
		if w.busy < w.size {
			w.busy++
			if w.start.IsZero() {
				w.start = w.now()
			}
			w.mu.Unlock()
			return nil
		}
		freed := w.freed
		w.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release frees a slot, taken by a fetch that moved n bytes (0 if it failed).
func (w *window) release(n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy--
	if !w.fixed {
		w.ended++
		w.bytes += n
		if now := w.now(); w.ended >= periodFetches*w.size && now.Sub(w.start) >= periodTime {
			w.measured(now, float64(w.bytes)/now.Sub(w.start).Seconds())
			w.start, w.ended, w.bytes = now, 0, 0
		}
	}
	close(w.freed)
	w.freed = make(chan struct{})
}

// measured takes the bytes a second of the period that ended at now and
// sizes the window for the next.
func (w *window) measured(now time.Time, rate float64) {
	switch {
	case w.settled:
		if w.size >= w.max || now.Sub(w.settledAt) < reprobeAfter {
			break
		}
		w.settled = false // try again, against this period's rate
		w.size = min(w.size*2, w.max)
	case w.before > 0 && rate < w.before*growthPays:
		// The last doubling did not pay: back.
		w.size = max(w.size/2, w.min)
		w.settled, w.settledAt = true, now
	case w.size >= w.max:
		w.settled, w.settledAt = true, now
	default:
		w.size = min(w.size*2, w.max)
	}
	w.before = rate
	w.peak = max(w.peak, w.size)
}

// state returns the window's size, the largest it took, and whether it has
// settled.
func (w *window) state() (size, peak int, settled bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size, w.peak, w.settled || w.fixed
}
