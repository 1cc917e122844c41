package pipeline

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
)

// repeat returns n copies of x.
func repeat[T any](x T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = x
	}
	return out
}

// TestWindowSizes drives a window through periods of one second each, at
// given rates, on a clock of its own, and checks the size it takes after each.
func TestWindowSizes(t *testing.T) {
	// Settled at 16 after two periods, a window tries again once 30 s have
	// passed: at the end of the 32nd period.
	settled := slices.Concat([]float64{100, 110}, repeat(100.0, 30))
	settledSizes := slices.Concat([]int{32, 16}, repeat(16, 29), []int{32})
	tests := []struct {
		name     string
		min, max int
		start    int       // startAt; zero: not called
		rates    []float64 // MB a second of each period, in turn
		want     []int     // sizes after each period
		settled  bool
	}{
		{"every doubling pays, up to max", 4, 32, 0, []float64{100, 200, 400, 800, 1600}, []int{8, 16, 32, 32, 32}, true},
		{"the first doubling does not pay", 16, 64, 0, []float64{100, 110, 500}, []int{32, 16, 16}, true},
		{"a later one does not pay", 4, 64, 0, []float64{100, 190, 200}, []int{8, 16, 8}, true},
		{"still growing", 4, 64, 0, []float64{100, 200}, []int{8, 16}, false},
		{"trying again pays", 16, 64, 0, slices.Concat(settled, []float64{250, 520}), slices.Concat(settledSizes, []int{64, 64}), true},
		{"trying again does not pay", 16, 64, 0, slices.Concat(settled, []float64{105}), slices.Concat(settledSizes, []int{16}), true},
		{"fixed", 16, 0, 0, []float64{100, 200}, []int{16, 16}, true},
		{"max not above min", 16, 16, 0, []float64{100, 200}, []int{16, 16}, true},
		{"started wide", 16, 128, 64, []float64{100, 110}, []int{128, 64}, true},
		{"started wide, settled where it started", 16, 128, 64, []float64{100, 110, 100}, []int{128, 64, 64}, true},
		{"started below min", 16, 64, 4, []float64{100, 110}, []int{32, 16}, true},
		{"started over max", 16, 64, 512, []float64{100, 200}, []int{64, 64}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			w := newWindow(tt.min, tt.max)
			if tt.start != 0 {
				w.startAt(tt.start)
			}
			w.now = func() time.Time { return now }
			ctx := context.Background()
			var sizes []int
			for _, rate := range tt.rates {
				size, _, _ := w.state()
				// One period: as many fetches as it needs, each taking a
				// slot and giving it back, over one second in all.
				n := periodFetches * size
				for i := range n {
					if err := w.acquire(ctx); err != nil {
						t.Fatal(err)
					}
					if i == n-1 {
						now = now.Add(time.Second)
					}
					w.release(int64(rate*1e6) / int64(n)) // in MB/s: no rounding to speak of
				}
				size, _, _ = w.state()
				sizes = append(sizes, size)
			}
			_, peak, settled := w.state()
			if !slices.Equal(sizes, tt.want) || settled != tt.settled {
				t.Errorf("sizes %v, settled %v; want %v, %v", sizes, settled, tt.want, tt.settled)
			}
			if want := slices.Max(append(tt.want, tt.min)); peak != want {
				t.Errorf("peak %d, want %d", peak, want)
			}
		})
	}
}

// TestWindowAcquireWaits: a full window holds a fetch until a slot frees,
// and gives up when the context ends.
func TestWindowAcquireWaits(t *testing.T) {
	w := newWindow(2, 0)
	ctx := context.Background()
	for range 2 {
		if err := w.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan error, 1)
	go func() { got <- w.acquire(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("a third acquire in a window of 2 returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	w.release(1)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.acquire(cctx); err == nil {
		t.Fatal("acquire in a full window with an ended context returned nil")
	}
}

// slowSource answers every fetch after a delay, as a source a round trip
// away; with one, only one fetch at a time is served, as a source whose
// link is full. It records how many fetches were in flight as each began.
type slowSource struct {
	*fakeSource
	delay time.Duration
	one   sync.Mutex
	serve bool // serve one at a time

	mu       sync.Mutex
	inflight atomic.Int32
	seen     []int32
}

func (s *slowSource) Fetch(ctx context.Context, c cid.Cid) ([]byte, chunk.Origin, error) {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	s.mu.Lock()
	s.seen = append(s.seen, n)
	s.mu.Unlock()
	if s.serve {
		s.one.Lock()
		defer s.one.Unlock()
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, chunk.Origin{}, ctx.Err()
	}
	return s.fakeSource.Fetch(ctx, c)
}

// runSlow runs a release of one file of n test chunks (random from seed)
// through a pipeline with opts, fetching from a slowSource that answers after
// delay (one at a time if serve), and returns the fetches in flight the source
// saw at each request.
func runSlow(t *testing.T, seed uint64, n int, delay time.Duration, serve bool, opts Options) []int32 {
	t.Helper()
	chunks := make(map[cid.Cid][]byte)
	data := randomBytes(seed, n*testChunkSize)
	m := &manifest.Manifest{Version: "1", Files: []manifest.File{regular("f", 0o644, data, chunks)}}
	st := newMemStore(t)
	src := &slowSource{fakeSource: newFakeSource(st, chunks), delay: delay, serve: serve}
	if _, err := New(st, src, opts).Run(context.Background(), m, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	return src.seen
}

// TestRunWindow: a release's fetches widen where each waits on a round trip,
// and stay where the source serves one at a time whatever the number asked.
func TestRunWindow(t *testing.T) {
	tests := []struct {
		name     string
		delay    time.Duration
		serve    bool
		min, max int
		wantMax  int32 // the most fetches in flight, in the last quarter of the run
	}{
		{"far from the source", 20 * time.Millisecond, false, 4, 32, 32},
		{"a full link", 500 * time.Microsecond, true, 4, 32, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := runSlow(t, 7, 1500, tt.delay, tt.serve, Options{Concurrency: tt.min, MaxConcurrency: tt.max})
			if got := slices.Max(seen[len(seen)*3/4:]); got != tt.wantMax {
				t.Errorf("at most %d fetches in flight in the last quarter of %d, want %d", got, len(seen), tt.wantMax)
			}
		})
	}
}

// TestOwnLane: the chunks this node owns are fetched OwnConcurrency at a time
// (its share of the site's WAN fetches, which may widen as the lane runs), or
// Concurrency/8 and at least 2.
func TestOwnLane(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		own         []int // what OwnConcurrency answers, call by call; the last one after
		wantMax     int32
	}{
		{"default", 16, nil, 2},
		{"an eighth", 64, nil, 8},
		{"the site's share", 16, []int{12}, 12},
		{"a share below the eighth", 64, []int{4}, 8},
		{"a share that widens", 16, []int{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 24}, 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Concurrency: tt.concurrency, Owned: func(cid.Cid) bool { return true }}
			if tt.own != nil {
				var calls atomic.Int32
				opts.OwnConcurrency = func() int {
					return tt.own[min(int(calls.Add(1))-1, len(tt.own)-1)]
				}
			}
			got := slices.Max(runSlow(t, 11, 200, 2*time.Millisecond, false, opts))
			if got != tt.wantMax {
				t.Errorf("at most %d fetches in flight, want %d", got, tt.wantMax)
			}
		})
	}
}

// TestFetchBytesBound: whatever the lanes' windows, the chunk bytes they
// fetch at once, both lanes together, stay within the run's bound.
func TestFetchBytesBound(t *testing.T) {
	chunks := make(map[cid.Cid][]byte)
	data := randomBytes(13, 300*testChunkSize)
	m := &manifest.Manifest{Version: "1", Files: []manifest.File{regular("f", 0o644, data, chunks)}}
	st := newMemStore(t)
	src := &slowSource{fakeSource: newFakeSource(st, chunks), delay: 2 * time.Millisecond}
	p := New(st, src, Options{
		Concurrency:    32,
		Owned:          func(c cid.Cid) bool { b := c.Bytes(); return b[len(b)-1]%2 == 0 },
		OwnConcurrency: func() int { return 32 },
	})
	p.fetchLimit = 6 * testChunkSize
	if _, err := p.Run(context.Background(), m, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if got := slices.Max(src.seen); got != 6 {
		t.Errorf("at most %d chunks of %d bytes in flight, want the bound's 6", got, testChunkSize)
	}
}
