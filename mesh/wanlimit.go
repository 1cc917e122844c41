package mesh

import (
	"context"
	"sync"
)

// siteWANRequests is how many WAN fetches a whole site aims to keep in flight
// when WANConcurrency is zero: enough to fill a WAN link as one node fetching
// 16 at a time and a few more (the node's default), shared by the members
// (each with at least minWANRequests), since hundreds of requests on a thin
// link stall each other and cost retransmissions.
const (
	siteWANRequests = 32
	minWANRequests  = 4
)

// wanLimiter bounds this node's WAN fetches at once: a fixed limit, or, with
// none set, the site's share given the live members at the time of asking. A
// member alone may go up to alone: with no peer to share the link, the node's
// own bound on its requests, which widens them only while that pays, is the
// one that counts.
type wanLimiter struct {
	fixed int
	alone int
	live  func() int

	mu     sync.Mutex
	n      int
	signal chan struct{} // closed and replaced when a slot frees
}

func newWANLimiter(fixed, alone int, live func() int) *wanLimiter {
	return &wanLimiter{fixed: fixed, alone: alone, live: live, signal: make(chan struct{})}
}

func (l *wanLimiter) limit() int {
	if l.fixed > 0 {
		return l.fixed
	}
	live := l.live() // asked once: members come and go meanwhile
	if live <= 1 {
		return max(siteWANRequests, l.alone)
	}
	return max(minWANRequests, (siteWANRequests+live-1)/live)
}

// acquire waits for a slot or for ctx to end.
func (l *wanLimiter) acquire(ctx context.Context) error {
	for {
		lim := l.limit()
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

func (l *wanLimiter) release() {
	l.mu.Lock()
	l.n--
	close(l.signal)
	l.signal = make(chan struct{})
	l.mu.Unlock()
}
