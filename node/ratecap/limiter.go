package ratecap

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// reevaluate is how often a Limiter asks its cap function again: schedules
// switch on minutes and a site's membership changes in seconds.
const reevaluate = time.Second

// Limiter is a token bucket over bytes whose rate follows a cap function of
// the time (a schedule, a site share). It is safe for concurrent use.
type Limiter struct {
	capAt func(time.Time) Rate
	now   func() time.Time

	mu      sync.Mutex
	lim     *rate.Limiter // nil: no cap
	cur     Rate
	checked time.Time

	throttled atomic.Int64 // nanoseconds waited, summed over callers
}

// NewLimiter returns a limiter whose cap at time t is capAt(t), read from the
// clock now (nil: time.Now). capAt returns zero for no cap.
func NewLimiter(capAt func(time.Time) Rate, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{capAt: capAt, now: now}
}

// burst is the bucket's depth: a twentieth of a second of the rate, so that a
// cap holds over short spans too, and at least one large read.
func burst(r Rate) int { return max(16<<10, int(r/20)) }

// current returns the bucket for the cap now, nil for none.
func (l *Limiter) current() *rate.Limiter {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// A schedule switches on the minute: a new minute is asked at once.
	if !l.checked.IsZero() && now.Sub(l.checked) < reevaluate && !now.Before(l.checked) &&
		now.Truncate(time.Minute).Equal(l.checked.Truncate(time.Minute)) {
		return l.lim
	}
	l.checked = now
	r := l.capAt(now)
	if r == l.cur {
		return l.lim
	}
	l.cur = r
	switch {
	case r <= 0:
		l.lim = nil
	case l.lim == nil:
		l.lim = rate.NewLimiter(rate.Limit(r), burst(r))
	default:
		l.lim.SetLimit(rate.Limit(r))
		l.lim.SetBurst(burst(r))
	}
	return l.lim
}

// Rate returns the cap in force now; zero: none.
func (l *Limiter) Rate() Rate {
	l.current()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// Throttled returns the time callers waited on the cap, summed over callers
// that waited at once.
func (l *Limiter) Throttled() time.Duration { return time.Duration(l.throttled.Load()) }

// WaitN accounts for n bytes, returning when the cap allows them or ctx ends.
// Callers call it after the bytes moved (a read) or before (a write): either
// way the long-run rate stays at the cap.
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		lim := l.current()
		if lim == nil {
			return nil
		}
		k := min(n, lim.Burst())
		res := lim.ReserveN(time.Now(), k)
		if !res.OK() {
			return fmt.Errorf("rate cap: %d bytes over the bucket", k)
		}
		if d := res.Delay(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				res.Cancel()
				return fmt.Errorf("rate cap: %w", ctx.Err())
			}
			l.throttled.Add(int64(d))
		}
		n -= k
	}
	return nil
}
