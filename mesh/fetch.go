package mesh

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/singleflight"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/store"
)

var (
	// ErrSiteFailed is wrapped when no member of the site delivered a chunk;
	// Fetch then falls back to the WAN, so callers see it only in logs.
	ErrSiteFailed = errors.New("site could not deliver the chunk")
	// errPenalized: the peer is on the penalty list.
	errPenalized = errors.New("peer is penalized")
)

// selfNext says that, by the ownership order, this node fetches the chunk
// itself: as its owner, or taking over from members before it that failed.
type selfNext struct{ takeover bool }

func (e *selfNext) Error() string { return "this node is next in the ownership order" }

// takeoverWindow is how long after an owner left its successor first asks a
// few members for a chunk before fetching it from the WAN: the old owner may
// have handed it out already.
const takeoverWindow = 10 * time.Minute

// takeoverProbes bounds the members asked, from their stores, on a takeover.
const takeoverProbes = 3

// fetchResult is what one flight of Fetch shares with its callers.
type fetchResult struct {
	data   []byte // the chunk, raw
	wire   []byte // its wire form, as it moved; nil when read from the store
	origin chunk.Origin
}

// wireChunk is a verified chunk and the wire form it came in.
type wireChunk struct{ raw, wire []byte }

// Fetch gets one chunk for this node: from the store if present; else from
// the site, i.e. from the chunk's owner (which fetches it from its WAN once
// and serves it) or, when the owner fails, the next member by the same order;
// from this node's WAN if it is the owner, if it is alone, or if the site
// cannot deliver within SiteTimeout. Bytes are verified before they are
// stored and returned. Concurrent calls for one CID share one fetch and the
// returned slice, which callers must not modify.
func (m *Mesh) Fetch(ctx context.Context, c cid.Cid) ([]byte, chunk.Origin, error) {
	data, ok, err := m.local(ctx, c)
	if err != nil {
		return nil, chunk.Origin{}, fmt.Errorf("fetch chunk %s: %w", c, err)
	}
	if ok {
		m.stats.localChunks.Add(1)
		return data, chunk.Origin{}, nil
	}
	r, err := doFlight(ctx, &m.fetchGroup, c.KeyString(), func() (fetchResult, error) {
		return m.fetch(ctx, c)
	})
	if err != nil {
		return nil, chunk.Origin{}, fmt.Errorf("fetch chunk %s: %w", c, err)
	}
	return r.data, r.origin, nil
}

// local returns c from the store if it is there. A chunk the store found
// damaged, and dropped, is not there: it is fetched again.
func (m *Mesh) local(ctx context.Context, c cid.Cid) ([]byte, bool, error) {
	has, err := m.st.Has(ctx, c)
	if err != nil || !has {
		return nil, false, err
	}
	data, err := m.st.Get(ctx, c)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// localWire returns c's stored wire form if it is there, checked by the
// store (a damaged chunk is dropped and never served), appended to buf's
// bytes: the result is the wire form alone, in buf's array where it fits.
func (m *Mesh) localWire(ctx context.Context, c cid.Cid, buf []byte) ([]byte, bool, error) {
	out, err := m.st.AppendWire(ctx, c, buf)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return out[len(buf):], true, nil
}

// fetch is one network fetch of c, run once per CID at a time.
func (m *Mesh) fetch(ctx context.Context, c cid.Cid) (fetchResult, error) {
	select {
	case m.reqSem <- struct{}{}:
	case <-ctx.Done():
		return fetchResult{}, ctx.Err()
	}
	defer func() { <-m.reqSem }()
	// A flight that ended while we queued may have stored it.
	if data, ok, err := m.local(ctx, c); err != nil || ok {
		return fetchResult{data: data, origin: chunk.Origin{}}, err
	}
	takeover, why := false, wanAlone
	if m.active() {
		sctx, cancel := context.WithTimeout(ctx, m.cfg.SiteTimeout)
		fallbackAt := time.Now().Add(m.cfg.FallbackDelay)
		for {
			data, name, err := m.fromSite(sctx, c)
			var self *selfNext
			switch {
			case err == nil:
				cancel()
				return m.store(ctx, c, data, chunk.Origin{Peer: name})
			case ctx.Err() != nil:
				cancel()
				return fetchResult{}, ctx.Err()
			case errors.As(err, &self) && self.takeover && m.siteRetry(sctx, fallbackAt):
				// Live members ahead of us failed to deliver: they are asked
				// again, within the delay, before we fetch it ourselves.
				continue
			case errors.As(err, &self):
				takeover = self.takeover || m.members.departedAhead(c.Bytes(), m.name, takeoverWindow)
				why = wanOwner
				if takeover {
					why = wanTakeover
				}
			case m.siteRetry(sctx, fallbackAt):
				continue
			default:
				why = wanSiteFailed
				m.log.Info("site did not deliver; fetching from WAN", "cid", c, "err", err)
			}
			break
		}
		cancel()
	}
	return m.fromWAN(ctx, c, takeover, why)
}

// Why a node fetches a chunk from its WAN, as logged with each WAN fetch: in
// a site only wanOwner is the rule; the others are where a chunk may cross
// the WAN twice.
const (
	wanAlone         = "alone"          // no site
	wanOwner         = "owner"          // first in this node's ownership order
	wanTakeover      = "takeover"       // members before it failed or left
	wanSiteFailed    = "site-failed"    // no member delivered within SiteTimeout
	wanAskedOwner    = "asked-as-owner" // a peer asked us as its owner
	wanAskedTakeover = "asked-takeover" // a peer asked us after its owner failed
)

// siteRetryPause spaces the site's retries within Config.FallbackDelay.
const siteRetryPause = time.Second

// siteRetry waits before asking the site again, and reports false when the
// fallback delay has passed or ctx (bounded by SiteTimeout) ended.
func (m *Mesh) siteRetry(ctx context.Context, fallbackAt time.Time) bool {
	left := time.Until(fallbackAt)
	if left <= 0 {
		return false
	}
	t := time.NewTimer(min(left, siteRetryPause))
	defer t.Stop()
	select {
	case <-t.C:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

// fromSite asks the members for c in ownership order: the owner first, as
// owner; when it fails, the next one with the takeover flag, and so on. If
// the order reaches this node, it returns a *selfNext: we fetch it ourselves.
// Members that own nothing (not dps while dps live) are asked last, from
// their stores only, complete holders first.
func (m *Mesh) fromSite(ctx context.Context, c cid.Cid) (wireChunk, string, error) {
	live := m.members.liveCandidates()
	order := hrwOrder(c.Bytes(), live)
	var errs []error
	for i, name := range order {
		if name == m.name {
			return wireChunk{}, "", &selfNext{takeover: i > 0}
		}
		flag := flagOwner
		if i > 0 {
			flag = flagTakeover
		}
		for attempt := 0; ; attempt++ {
			data, err := m.ask(ctx, name, c, flag)
			if err == nil {
				return data, name, nil
			}
			if ctx.Err() != nil {
				return wireChunk{}, "", ctx.Err()
			}
			if !askAgain(ctx, err, attempt) {
				errs = append(errs, err)
				break
			}
		}
	}
	rest := m.holdersOutside(order, live)
	for _, name := range rest {
		data, err := m.ask(ctx, name, c, flagStore)
		if err == nil {
			return data, name, nil
		}
		if ctx.Err() != nil {
			return wireChunk{}, "", ctx.Err()
		}
		errs = append(errs, err)
	}
	return wireChunk{}, "", fmt.Errorf("%w: %w", ErrSiteFailed, errors.Join(errs...))
}

// Asking an owner again: a busy owner is asked again, with backoff, until the
// site timeout, since the next member would fetch the chunk from its WAN while
// the owner may be fetching it too; an owner that says it is not the owner is
// asked a few more times, while the two views of the site converge.
const (
	askAgainMin      = 100 * time.Millisecond
	askAgainMax      = 2 * time.Second
	notOwnerAttempts = 3
)

// askAgain reports, after waiting, whether to ask the same member again
// after its answer err to the attempt-th request.
func askAgain(ctx context.Context, err error, attempt int) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	switch {
	case se.status == statusBusy:
	case se.status == statusNotOwner && attempt < notOwnerAttempts:
	default:
		return false
	}
	wait := askAgainMax
	if attempt < 5 {
		wait = min(askAgainMin<<attempt, askAgainMax)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// holdersOutside returns the live members not in order, other than this
// node, those holding the newest release first.
func (m *Mesh) holdersOutside(order []string, live []candidate) []string {
	type h struct {
		name    string
		holding uint64
	}
	var hs []h
	for _, cd := range live {
		if cd.name == m.name || slices.Contains(order, cd.name) {
			continue
		}
		if e, ok := m.members.get(cd.name); ok {
			hs = append(hs, h{cd.name, e.meta.holding})
		}
	}
	slices.SortFunc(hs, func(a, b h) int {
		return cmp.Or(cmp.Compare(b.holding, a.holding), cmp.Compare(a.name, b.name))
	})
	out := make([]string, len(hs))
	for i := range hs {
		out[i] = hs[i].name
	}
	return out
}

// ask requests c from the named member, unless it is gone or penalized.
func (m *Mesh) ask(ctx context.Context, name string, c cid.Cid, flag byte) (wireChunk, error) {
	e, ok := m.members.get(name)
	// A member announcing it leaves still serves its store until it is gone.
	leavingStore := ok && flag == flagStore && e.state == StateAlive && e.meta.leaving
	if !ok || (!e.live() && !leavingStore) {
		return wireChunk{}, fmt.Errorf("ask %s: not a live member", name)
	}
	if m.penalized(e.meta.peerID) {
		return wireChunk{}, fmt.Errorf("ask %s: %w", name, errPenalized)
	}
	data, err := m.request(ctx, e.meta.peerID, c, flag)
	if err != nil {
		m.log.Debug("peer did not deliver chunk", "cid", c, "peer", name, "err", err)
		return wireChunk{}, fmt.Errorf("ask %s: %w", name, err)
	}
	return data, nil
}

// request runs one chunk request to peer p, decodes the answer (capped at
// chunk.MaxSize) and verifies it.
func (m *Mesh) request(ctx context.Context, p peer.ID, c cid.Cid, flag byte) (wireChunk, error) {
	sem := m.peerSemaphore(p)
	if err := sem.acquire(ctx); err != nil {
		return wireChunk{}, err
	}
	defer sem.release()
	// The timeout starts once the request may go: time spent queued behind
	// our own requests to a busy peer is no failure of the peer, and counting
	// it as one hands its chunks to the next member, which fetches them again.
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	// The peer may have been penalized while we queued for it.
	if m.penalized(p) {
		return wireChunk{}, errPenalized
	}

	wire, enc, err := m.exchange(ctx, p, c, flag)
	if err != nil {
		return wireChunk{}, err
	}
	raw := wire
	if enc == encZstd {
		raw, err = m.cfg.Codec.Decode(c, wire, 0)
	} else {
		err = chunk.Verify(c, wire)
	}
	if err != nil {
		m.stats.verifyFailures.Add(1)
		m.penalize(p, "sent bytes that do not decode to the CID's chunk")
		name, ok := m.members.nameOf(p)
		if !ok {
			name = p.String()
		}
		m.node.BadPeer(c, name, err)
		return wireChunk{}, err
	}
	m.peerOK(p)
	// LAN byte counters count what moved: the wire form.
	n := int64(len(wire))
	m.stats.lanBytes.Add(n)
	m.stats.lanChunks.Add(1)
	m.peerCounters(p, true).from.Add(n)
	return wireChunk{raw: raw, wire: wire}, nil
}

// exchange sends one request for c to p on a kept stream (or a new one) and
// reads the answer, unverified. A kept stream the peer closed while it was
// idle fails before any answer: the request is then sent again on a new one.
func (m *Mesh) exchange(ctx context.Context, p peer.ID, c cid.Cid, flag byte) ([]byte, byte, error) {
	for {
		cs, reused, err := m.getStream(ctx, p)
		if err != nil {
			m.peerFailed(p)
			return nil, 0, fmt.Errorf("open stream: %w", err)
		}
		data, enc, answered, err := m.roundTrip(ctx, cs, c, flag)
		if err == nil {
			m.putStream(p, cs)
			return data, enc, nil
		}
		_ = cs.s.Reset()
		if errors.Is(err, errPeerStatus) {
			// A refusal is an answer, not a fault of the peer.
			return nil, 0, err
		}
		if reused && !answered && ctx.Err() == nil {
			continue
		}
		if ctx.Err() == nil {
			m.peerFailed(p)
		}
		return nil, 0, err
	}
}

// roundTrip is one request and response on cs; answered reports whether any
// of the response arrived.
func (m *Mesh) roundTrip(ctx context.Context, cs *chunkStream, c cid.Cid, flag byte) (data []byte, enc byte, answered bool, err error) {
	// Reset unblocks reads and writes as soon as ctx ends; the deadline
	// covers a peer that stops sending.
	stop := context.AfterFunc(ctx, func() { _ = cs.s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = cs.s.SetDeadline(dl)
	}
	if err := writeRequest(cs.s, c, flag); err != nil {
		return nil, 0, false, fmt.Errorf("send request: %w", err)
	}
	if _, err := cs.r.Peek(1); err != nil {
		return nil, 0, false, fmt.Errorf("read response: %w", err)
	}
	data, enc, _, err = readResponse(cs.r)
	if err != nil {
		if errors.Is(err, errPeerStatus) {
			return nil, 0, true, fmt.Errorf("peer refused: %w", err)
		}
		return nil, 0, true, fmt.Errorf("read response: %w", err)
	}
	if !stop() {
		return nil, 0, true, ctx.Err() // reset under us as ctx ended
	}
	return data, enc, true, nil
}

// fromWAN fetches c from this node's WAN, once per CID at a time whoever
// asks (local Fetch or a peer asking us as owner), verifies and stores it.
// On a takeover it first asks a few members' stores, since the previous
// owner may have handed the chunk out before it went.
func (m *Mesh) fromWAN(ctx context.Context, c cid.Cid, takeover bool, why string) (fetchResult, error) {
	return doFlight(ctx, &m.wanGroup, c.KeyString(), func() (fetchResult, error) {
		if data, ok, err := m.local(ctx, c); err != nil || ok {
			return fetchResult{data: data, origin: chunk.Origin{}}, err
		}
		probe := m.probeAhead
		if takeover {
			probe = m.probeHolders
		}
		if m.active() {
			if data, name, err := probe(ctx, c); err == nil {
				return m.store(ctx, c, data, chunk.Origin{Peer: name})
			}
		}
		if err := m.wanLimit.acquire(ctx); err != nil {
			return fetchResult{}, err
		}
		m.log.Debug("WAN fetch", "cid", c, "why", why)
		began := time.Now()
		raw, wire, err := m.node.FetchChunk(ctx, c)
		m.wanLimit.release()
		if err != nil {
			return fetchResult{}, fmt.Errorf("from WAN: %w", err)
		}
		if from, to, ok := m.wanWin.done(time.Since(began)); ok {
			m.log.Info("site WAN fetches at once", "from", from, "to", to)
		}
		return m.store(ctx, c, wireChunk{raw: raw, wire: wire}, chunk.Origin{WAN: true})
	})
}

// store puts a verified chunk in the store, in the wire form it came in,
// and tells the Delegate.
func (m *Mesh) store(ctx context.Context, c cid.Cid, w wireChunk, o chunk.Origin) (fetchResult, error) {
	// Told first: whoever finds the chunk stored must find its origin too.
	m.node.Stored(c, o)
	if err := m.st.PutVerifiedWire(ctx, c, w.raw, w.wire); err != nil {
		return fetchResult{}, fmt.Errorf("store: %w", err)
	}
	return fetchResult{data: w.raw, wire: w.wire, origin: o}, nil
}

// probeTimeout bounds one takeover probe: a store read on a LAN peer.
const probeTimeout = 5 * time.Second

// probeHolders asks up to takeoverProbes live members, next after this node
// in the ownership order, for c from their stores only.
func (m *Mesh) probeHolders(ctx context.Context, c cid.Cid) (wireChunk, string, error) {
	// A member still leaving is asked first: it is most likely the owner we
	// take over from, holding what it fetched but had not handed out yet.
	for _, e := range m.members.all() {
		if !e.self && e.state == StateAlive && e.meta.leaving {
			pctx, cancel := context.WithTimeout(ctx, min(probeTimeout, m.cfg.RequestTimeout))
			data, err := m.ask(pctx, e.name, c, flagStore)
			cancel()
			if err == nil {
				return data, e.name, nil
			}
		}
	}
	return m.probe(ctx, c, m.members.liveCandidates())
}

// probeAhead asks members that hold a newer complete release than this node
// for c from their stores: a node that joined late or was away owns chunks its
// site already holds, and must not fetch them from the WAN again. When nobody
// is ahead (a release new to the whole site) it asks no one.
func (m *Mesh) probeAhead(ctx context.Context, c cid.Cid) (wireChunk, string, error) {
	own := m.holding.Load()
	var ahead []candidate
	for _, e := range m.members.all() {
		if !e.self && e.live() && e.meta.holding > own {
			ahead = append(ahead, candidate{name: e.name, role: e.meta.role})
		}
	}
	if len(ahead) == 0 {
		return wireChunk{}, "", ErrSiteFailed
	}
	return m.probe(ctx, c, ahead)
}

// probe asks up to takeoverProbes of cands, in c's ownership order, for c from
// their stores only.
func (m *Mesh) probe(ctx context.Context, c cid.Cid, cands []candidate) (wireChunk, string, error) {
	asked := 0
	for _, name := range hrwOrderAll(c.Bytes(), cands) {
		if name == m.name {
			continue
		}
		if asked == takeoverProbes {
			break
		}
		asked++
		pctx, cancel := context.WithTimeout(ctx, min(probeTimeout, m.cfg.RequestTimeout))
		data, err := m.ask(pctx, name, c, flagStore)
		cancel()
		if err == nil {
			return data, name, nil
		}
		if ctx.Err() != nil {
			return wireChunk{}, "", ctx.Err()
		}
	}
	return wireChunk{}, "", ErrSiteFailed
}

// flightAborted marks a flight that failed because its leader's context
// ended; the other callers retry rather than fail with someone else's cancel.
type flightAborted struct{ err error }

func (e *flightAborted) Error() string { return e.err.Error() }
func (e *flightAborted) Unwrap() error { return e.err }

// doFlight runs fn once per key at a time across callers. fn runs with the
// context of the caller that leads the flight.
func doFlight[T any](ctx context.Context, g *singleflight.Group, key string, fn func() (T, error)) (T, error) {
	for {
		v, err, _ := g.Do(key, func() (any, error) {
			r, err := fn()
			if err != nil && ctx.Err() != nil {
				return r, &flightAborted{err}
			}
			return r, err
		})
		var ab *flightAborted
		if errors.As(err, &ab) && ctx.Err() == nil {
			continue // the leader was cancelled, not us
		}
		r, _ := v.(T)
		return r, err
	}
}

// peerHealth tracks failures of one peer.
type peerHealth struct {
	fails int
	until time.Time
}

// maxPeerFails is how many failed requests in a row penalize a peer.
const maxPeerFails = 3

func (m *Mesh) peerSemaphore(p peer.ID) *limiter {
	m.peerMu.Lock()
	defer m.peerMu.Unlock()
	s := m.peerSem[p]
	if s == nil {
		s = newLimiter(m.perPeer)
		m.peerSem[p] = s
	}
	return s
}

// perPeer bounds the requests to one peer at once: Config.PerPeer, or more
// when an owner's share of the site's WAN fetches is larger, so that the
// members asking it can keep its share busy (in a site of two, this node
// alone asks it).
func (m *Mesh) perPeer() int {
	live, owners := m.members.counts()
	return perPeerLimit(m.cfg.PerPeer, m.cfg.siteWANRequests(), live, owners)
}

func perPeerLimit(perPeer, site, live, owners int) int {
	if live < 2 {
		return perPeer
	}
	return max(perPeer, siteShare(site, max(1, owners)))
}

// RequestShare is how many chunks at once a member of the site asks for so
// that, all members together, the site keeps its WAN fetches in flight:
// Config.SiteWANRequests shared by the live members (all of them ask, whoever
// fetches from the WAN). A member alone: 0.
func (m *Mesh) RequestShare() int {
	live := m.members.liveCount()
	if live < 2 {
		return 0
	}
	return siteShare(m.cfg.siteWANRequests(), live)
}

// WANShare is how many WAN fetches at once this node makes as owner, given
// the live members now: its share of Config.SiteWANRequests (or
// Config.WANConcurrency where set), widened while the fetches stay quick up to
// its share of Config.SiteWANRequestsMax (see wanWindow). A member alone: its
// own bound.
func (m *Mesh) WANShare() int { return m.wanShare(false) }

// WANFetches is WANShare for reports: the same number, without recording the
// share in the window.
func (m *Mesh) WANFetches() int { return m.wanShare(true) }

func (m *Mesh) wanShare(peek bool) int {
	live, owners := m.members.counts()
	share := wanLimit(m.cfg.WANConcurrency, m.cfg.siteWANRequests(), m.cfg.Concurrency, live, owners)
	if m.cfg.WANConcurrency > 0 || live < 2 {
		return share
	}
	most := siteShare(m.cfg.siteWANRequestsMax(), max(1, owners))
	if peek {
		return m.wanWin.peek(share, most)
	}
	return m.wanWin.widen(share, most)
}

func (m *Mesh) penalized(p peer.ID) bool {
	m.peerMu.Lock()
	defer m.peerMu.Unlock()
	h := m.health[p]
	return h != nil && time.Now().Before(h.until)
}

func (m *Mesh) penalize(p peer.ID, why string) {
	m.peerMu.Lock()
	h := m.health[p]
	if h == nil {
		h = &peerHealth{}
		m.health[p] = h
	}
	h.fails = 0
	h.until = time.Now().Add(m.cfg.PenaltyDuration)
	m.peerMu.Unlock()
	m.dropStreams(p)
	m.stats.penalties.Add(1)
	name, _ := m.members.nameOf(p)
	m.log.Warn("peer penalized", "peer", p, "member", name, "reason", why, "for", m.cfg.PenaltyDuration)
}

func (m *Mesh) peerFailed(p peer.ID) {
	m.stats.peerErrors.Add(1)
	m.peerMu.Lock()
	h := m.health[p]
	if h == nil {
		h = &peerHealth{}
		m.health[p] = h
	}
	h.fails++
	n := h.fails
	m.peerMu.Unlock()
	if n >= maxPeerFails {
		m.penalize(p, "failed repeatedly")
	}
}

func (m *Mesh) peerOK(p peer.ID) {
	m.peerMu.Lock()
	defer m.peerMu.Unlock()
	if h := m.health[p]; h != nil {
		h.fails = 0
	}
}
