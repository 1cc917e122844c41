package source

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/node/ratecap"
)

// A capped source reads a body no faster than the cap, and the time spent
// waiting on the cap is not a stall nor a whole-request timeout, even with
// both far below the transfer's length.
func TestThrottledReadTakesBytesOverCap(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("patchmesh"), 60_000) // 540 kB, under smallBody
	if err := os.WriteFile(filepath.Join(dir, "blob"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	const capRate = ratecap.Rate(400_000)
	lim := ratecap.NewLimiter(func(time.Time) ratecap.Rate { return capRate }, nil)
	opts := testOptions()
	opts.Timeout, opts.IdleTimeout = 500*time.Millisecond, 300*time.Millisecond
	opts.Throttle = lim
	srv := serveDir(t, dir)
	for name, s := range map[string]Source{"http": mustNew(t, srv.URL, opts), "folder": mustNew(t, dir, opts)} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			got, err := readFile(context.Background(), s, "blob", 1<<20)
			el := time.Since(start)
			if err != nil {
				t.Fatalf("read through the cap: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("read other bytes")
			}
			// One bucket (at most 32 KiB at this cap) may go unpaid: it starts full.
			min := time.Duration(float64(len(data)-32<<10) / float64(capRate) * float64(time.Second))
			if el < min {
				t.Errorf("%d bytes at %v in %v, want at least %v", len(data), capRate, el, min)
			}
		})
	}
}
