package node

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/api"
)

func TestCountersSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name  string
		do    func(s *counters)
		check func(t *testing.T, snap countersSnapshot)
	}{
		{"empty", func(*counters) {}, func(t *testing.T, snap countersSnapshot) {
			if snap.events == nil || len(snap.events) != 0 || snap.counters.VerifyFailuresByPeer == nil || snap.lastScrub != nil {
				t.Errorf("empty snapshot: %+v", snap)
			}
		}},
		{"counts", func(s *counters) {
			s.applied()
			s.rolledBack()
			s.rolledBack()
			s.refused()
			s.checked(1500 * time.Millisecond)
			s.served(100)
			s.served(20)
			s.verifyFailed("")
			s.verifyFailed("b")
		}, func(t *testing.T, snap countersSnapshot) {
			c := snap.counters
			want := api.Counters{Applies: 1, Rollbacks: 2, Refusals: 1, Checks: 1, CheckSecondsTotal: 1.5, ChunksServed: 2, VerifyFailures: 2}
			c.VerifyFailuresByPeer = nil
			if fmt.Sprint(c) != fmt.Sprint(want) {
				t.Errorf("counters %+v, want %+v", c, want)
			}
			if snap.counters.VerifyFailuresByPeer["b"] != 1 || len(snap.counters.VerifyFailuresByPeer) != 1 {
				t.Errorf("by peer %v", snap.counters.VerifyFailuresByPeer)
			}
			if snap.servedBytes != 120 {
				t.Errorf("served %d", snap.servedBytes)
			}
		}},
		{"events newest first, bounded", func(s *counters) {
			for i := range maxEvents + 5 {
				s.event("e", fmt.Sprint(i))
			}
		}, func(t *testing.T, snap countersSnapshot) {
			if len(snap.events) != maxEvents || snap.events[0].Message != fmt.Sprint(maxEvents+4) || snap.events[maxEvents-1].Message != "5" {
				t.Errorf("%d events, first %q", len(snap.events), snap.events[0].Message)
			}
		}},
		{"damaged chunks are one event", func(s *counters) {
			s.event("verify", "v")
			s.storeDamaged("a")
			s.storeDamaged("b")
			s.storeDamaged("c")
		}, func(t *testing.T, snap countersSnapshot) {
			if len(snap.events) != 2 || snap.events[0].Kind != "store" || !strings.HasPrefix(snap.events[0].Message, "3 chunks") ||
				!strings.HasSuffix(snap.events[0].Message, "the last: c") {
				t.Errorf("events %+v", snap.events)
			}
		}},
		{"samples bounded", func(s *counters) {
			for i := range maxSamples + 1 {
				s.sample(int64(i), 0)
			}
		}, func(t *testing.T, snap countersSnapshot) {
			if len(snap.samples) != maxSamples || snap.samples[0].WAN != 1 {
				t.Errorf("%d samples, first %+v", len(snap.samples), snap.samples[0])
			}
		}},
		{"addresses and scrub", func(s *counters) {
			s.setAPIAddr("a:1")
			s.setServeAddr("b:2")
			s.setLastScrub(api.ScrubResult{Chunks: 3})
		}, func(t *testing.T, snap countersSnapshot) {
			if snap.apiAddr != "a:1" || snap.serveAddr != "b:2" || snap.lastScrub == nil || snap.lastScrub.Chunks != 3 {
				t.Errorf("snapshot %+v", snap)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCounters()
			tc.do(s)
			snap := s.snapshot()
			tc.check(t, snap)
			// The snapshot is a copy: changing it leaves the counters be.
			snap.counters.VerifyFailuresByPeer["x"] = 9
			if len(snap.events) > 0 {
				snap.events[0].Message = "changed"
			}
			if again := s.snapshot(); again.counters.VerifyFailuresByPeer["x"] != 0 ||
				(len(again.events) > 0 && again.events[0].Message == "changed") {
				t.Error("snapshot shares memory with the counters")
			}
		})
	}
}

// TestCountersConcurrent is meant for -race: every method from many
// goroutines, with snapshots taken meanwhile.
func TestCountersConcurrent(t *testing.T) {
	s := newCounters()
	const workers, rounds = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				s.applied()
				s.rolledBack()
				s.refused()
				s.checked(time.Millisecond)
				s.served(10)
				s.verifyFailed(fmt.Sprint("peer", w))
				s.event("e", "m")
				s.storeDamaged("d")
				s.sample(int64(i), int64(i))
				s.setAPIAddr("a")
				s.setLastScrub(api.ScrubResult{})
				_ = s.isKnown(chunk.Sum([]byte(fmt.Sprint(i))))
				_ = s.rollbacks()
				_ = s.servedTotal()
				_, _ = s.addrs()
				snap := s.snapshot()
				snap.counters.VerifyFailuresByPeer["x"]++
			}
		})
	}
	m := &manifest.Manifest{Files: []manifest.File{{Chunks: []manifest.ChunkRef{{CID: chunk.Sum([]byte("a"))}}}}}
	wg.Go(func() { s.addKnown(m) })
	wg.Wait()
	if !s.isKnown(chunk.Sum([]byte("a"))) || s.isKnown(chunk.Sum([]byte("b"))) {
		t.Error("known chunks: want a, not b")
	}
	snap := s.snapshot()
	const n = workers * rounds
	c := snap.counters
	if c.Applies != n || c.Rollbacks != n || c.Refusals != n || c.Checks != n || c.ChunksServed != n || c.VerifyFailures != n ||
		snap.servedBytes != 10*n || s.rollbacks() != n || s.servedTotal() != 10*n {
		t.Errorf("counters after %d rounds: %+v, served %d", n, c, snap.servedBytes)
	}
	if len(c.VerifyFailuresByPeer) != workers || c.VerifyFailuresByPeer["peer0"] != rounds {
		t.Errorf("by peer %v", c.VerifyFailuresByPeer)
	}
	if len(snap.events) > maxEvents || len(snap.samples) > maxSamples {
		t.Errorf("%d events, %d samples", len(snap.events), len(snap.samples))
	}
}
