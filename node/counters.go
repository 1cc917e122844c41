package node

import (
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/api"
)

const (
	maxEvents   = 50
	maxSamples  = 360
	sampleEvery = 10 * time.Second
)

// counters is the node's own part of the status: its counters, recent
// events, served bytes, byte history, listen addresses, last scrub and the
// chunks --serve-repo may pass through. It owns its lock; callers use its
// methods and never lock it themselves. The zero value is not ready: use
// newCounters.
type counters struct {
	mu                 sync.Mutex
	apiAddr, serveAddr string
	events             []api.Event // newest last
	c                  api.Counters
	servedBytes        int64
	samples            []api.BytesSample
	known              map[cid.Cid]bool // chunks of verified manifests, served by --serve-repo
	lastScrub          *api.ScrubResult
	// The run of damaged chunks the newest "store" event counts (scrub.go).
	damagedRun int
	damagedAt  time.Time
}

func newCounters() *counters {
	return &counters{
		known: make(map[cid.Cid]bool),
		c:     api.Counters{VerifyFailuresByPeer: make(map[string]int64)},
	}
}

// event records an event, keeping the newest maxEvents.
func (s *counters) event(kind, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eventLocked(kind, msg)
}

func (s *counters) eventLocked(kind, msg string) {
	s.events = append(s.events, api.Event{Time: time.Now(), Kind: kind, Message: msg})
	if len(s.events) > maxEvents {
		s.events = s.events[len(s.events)-maxEvents:]
	}
}

// storeDamaged records a damaged chunk the store dropped. The chunks within
// a minute of each other are one "store" event with a count, not a list that
// pushes every other event out.
func (s *counters) storeDamaged(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if k := len(s.events); k > 0 && s.events[k-1].Kind == "store" && now.Sub(s.damagedAt) < time.Minute {
		s.damagedRun++
		s.damagedAt = now
		s.events[k-1].Time = now
		s.events[k-1].Message = fmt.Sprintf("%d chunks in the store were damaged: dropped, to be fetched again; the last: %s", s.damagedRun, msg)
		return
	}
	s.damagedRun, s.damagedAt = 1, now
	s.eventLocked("store", msg)
}

// verifyFailed counts a verification failure; peer, if not empty, is the
// member that sent the bad chunk.
func (s *counters) verifyFailed(peer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.VerifyFailures++
	if peer != "" {
		s.c.VerifyFailuresByPeer[peer]++
	}
}

func (s *counters) refused() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Refusals++
}

func (s *counters) applied() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Applies++
}

func (s *counters) rolledBack() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Rollbacks++
}

// rollbacks is the number of rollbacks since the node started.
func (s *counters) rollbacks() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.Rollbacks
}

// checked counts a check that took d.
func (s *counters) checked(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Checks++
	s.c.CheckSecondsTotal += d.Seconds()
}

// served counts a chunk of b bytes served to a repository client.
func (s *counters) served(b int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servedBytes += b
	s.c.ChunksServed++
}

func (s *counters) servedTotal() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servedBytes
}

// sample adds a point to the WAN/LAN history, keeping the newest maxSamples.
func (s *counters) sample(wan, lan int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, api.BytesSample{Time: time.Now(), WAN: wan, LAN: lan})
	if len(s.samples) > maxSamples {
		s.samples = s.samples[len(s.samples)-maxSamples:]
	}
}

func (s *counters) setAPIAddr(a string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiAddr = a
}

func (s *counters) setServeAddr(a string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serveAddr = a
}

// addrs are the addresses the API and --serve-repo listen on.
func (s *counters) addrs() (apiAddr, serveAddr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiAddr, s.serveAddr
}

func (s *counters) setLastScrub(r api.ScrubResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastScrub = &r
}

// addKnown marks the chunks and delta objects of the verified manifest m as
// ones --serve-repo may pass through.
func (s *counters) addKnown(m *manifest.Manifest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range m.Files {
		for _, r := range f.Chunks {
			s.known[r.CID] = true
		}
	}
	deltaObjects(s.known, m)
}

func (s *counters) isKnown(c cid.Cid) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.known[c]
}

// countersSnapshot is a copy of the counters, safe to keep and change.
type countersSnapshot struct {
	apiAddr, serveAddr string
	counters           api.Counters // VerifyFailuresByPeer is never nil
	servedBytes        int64
	samples            []api.BytesSample // oldest first
	events             []api.Event       // newest first, never nil
	lastScrub          *api.ScrubResult
}

func (s *counters) snapshot() countersSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := countersSnapshot{
		apiAddr: s.apiAddr, serveAddr: s.serveAddr, counters: s.c, servedBytes: s.servedBytes,
		samples: append([]api.BytesSample(nil), s.samples...),
		events:  make([]api.Event, 0, len(s.events)),
	}
	snap.counters.VerifyFailuresByPeer = maps.Clone(s.c.VerifyFailuresByPeer)
	if snap.counters.VerifyFailuresByPeer == nil {
		snap.counters.VerifyFailuresByPeer = make(map[string]int64)
	}
	for i := len(s.events) - 1; i >= 0; i-- {
		snap.events = append(snap.events, s.events[i])
	}
	if s.lastScrub != nil {
		r := *s.lastScrub
		snap.lastScrub = &r
	}
	return snap
}
