package mesh

import (
	"context"
	"sync"
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
