package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest/batch"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

// chunkDir writes n chunk files of random bytes (1–20 KiB) under
// chunks/ in a fresh folder, and returns it with their paths and bytes.
func chunkDir(t *testing.T, n int) (string, []string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewChaCha8([32]byte{'b', 'a', 't'}))
	files := make(map[string][]byte, n)
	var paths []string
	for i := range n {
		p := fmt.Sprintf("chunks/%02x/bafkreichunk%04d", i%7, i)
		b := make([]byte, 1024+rng.IntN(19<<10))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(filepath.FromSlash(p))), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		files[p] = b
	}
	return dir, paths, files
}

// methodCounter counts a server's requests by method.
type methodCounter struct {
	gets, posts atomic.Int32
}

func (c *methodCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			c.posts.Add(1)
		} else {
			c.gets.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// serveRepo serves dir as patchmesh serve does, batches on or off.
func serveRepo(t *testing.T, dir string, batches bool, c *methodCounter) *httptest.Server {
	t.Helper()
	files, err := repo.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	srv := httptest.NewServer(c.wrap(repo.NewHandler(files, repo.HandlerOptions{Batch: batches})))
	t.Cleanup(srv.Close)
	return srv
}

// sameAs returns a check accepting only want's bytes for each path.
func sameAs(want map[string][]byte, path string) func(Source, []byte) error {
	return func(_ Source, b []byte) error {
		if !bytes.Equal(b, want[path]) {
			return fmt.Errorf("%s: %d bytes, not the file's %d", path, len(b), len(want[path]))
		}
		return nil
	}
}

// readAllAtOnce reads every path with ReadChunk, many at once, as a
// release's fetch does, and fails the test on any error.
func readAllAtOnce(t *testing.T, l *List, paths []string, want map[string][]byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(paths))
	sem := make(chan struct{}, 64)
	for _, p := range paths {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, _, err := l.ReadChunk(t.Context(), p, 1<<20, sameAs(want, p)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestReadChunkBatches(t *testing.T) {
	dir, paths, want := chunkDir(t, 400)
	var c methodCounter
	srv := serveRepo(t, dir, true, &c)
	l := NewList([]Source{mustNew(t, srv.URL, testOptions())}, nil)
	t.Cleanup(func() { l.Close() })

	// Asked twice, it probes once.
	for range 2 {
		if !l.Batches(t.Context()) {
			t.Fatal("Batches: false for a server that answers them")
		}
	}
	if p := c.posts.Load(); p != 1 {
		t.Fatalf("Batches: %d probes, want 1", p)
	}
	readAllAtOnce(t, l, paths, want)
	if g := c.gets.Load(); g != 0 {
		t.Errorf("%d chunks read one at a time from a server that answers batches", g)
	}
	// 64 reads at once, two batches in flight: most batches carry many.
	if p := c.posts.Load(); p == 0 || int(p) > len(paths)/4 {
		t.Errorf("%d batch requests for %d chunks read 64 at once", p, len(paths))
	}
	var total int64
	for _, b := range want {
		total += int64(len(b))
	}
	if h := l.Health(); !h[0].Healthy || h[0].BytesRead != total {
		t.Errorf("health %+v: want healthy, %d bytes read", h[0], total)
	}
	// Anything but a chunk is read on its own.
	if _, _, err := l.ReadChunk(t.Context(), "channels/stable/head.json", 1<<20, func(Source, []byte) error { return nil }); err == nil {
		t.Error("a document that is not there was read")
	}
	if g := c.gets.Load(); g != 1 {
		t.Errorf("a document: %d GETs, want 1", g)
	}
}

func TestReadChunkWithoutBatches(t *testing.T) {
	dir, paths, want := chunkDir(t, 120)
	var c methodCounter
	srv := serveRepo(t, dir, false, &c)
	l, clock := newTestList(mustNew(t, srv.URL, testOptions()))
	t.Cleanup(func() { l.Close() })

	readAllAtOnce(t, l, paths, want)
	// The refusal is remembered: the first batch, and maybe the one
	// beside it, were asked; the rest went one at a time.
	if p := c.posts.Load(); p == 0 || p > batchesInFlight {
		t.Errorf("%d batch requests to a server without them, want 1 to %d", p, batchesInFlight)
	}
	if l.Batches(t.Context()) {
		t.Error("Batches: true for a server that refused them")
	}
	if g := c.gets.Load(); int(g) != len(paths) {
		t.Errorf("%d GETs for %d chunks", g, len(paths))
	}
	if h := l.Health(); !h[0].Healthy {
		t.Errorf("a server without batches is unhealthy: %+v", h[0])
	}
	// A minute on, it is asked again (it may have been upgraded).
	before := c.posts.Load()
	clock.Advance(noBatchFor)
	if _, _, err := l.ReadChunk(t.Context(), paths[0], 1<<20, sameAs(want, paths[0])); err != nil {
		t.Fatal(err)
	}
	if p := c.posts.Load(); p != before+1 {
		t.Errorf("after %v: %d more batch requests, want 1", noBatchFor, p-before)
	}
	// Asked first, the list learns it from its probe alone.
	l2, _ := newTestList(mustNew(t, srv.URL, testOptions()))
	t.Cleanup(func() { l2.Close() })
	before = c.posts.Load()
	if l2.Batches(t.Context()) {
		t.Error("Batches: true for a server without them")
	}
	readAllAtOnce(t, l2, paths[:10], want)
	if p := c.posts.Load(); p != before+1 {
		t.Errorf("a probe and 10 reads: %d batch requests, want the probe's", p-before)
	}
}

// faultyBatches answers batch reads for dir with fault applied to the
// stream, and GETs as a plain file server.
func faultyBatches(t *testing.T, dir string, fault func(w io.Writer, i, n int, data []byte) bool) *httptest.Server {
	t.Helper()
	files := http.FileServerFS(os.DirFS(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			files.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", batch.ContentType)
		asked := strings.Split(strings.TrimSpace(string(body)), "\n")
		for i, p := range asked {
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
			if err != nil {
				t.Errorf("batch asked for %s: %v", p, err)
				return
			}
			if !fault(w, i, len(asked), data) {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestReadChunkBatchFaults(t *testing.T) {
	dir, paths, want := chunkDir(t, 8)
	item := func(w io.Writer, data []byte) {
		batch.WriteHeader(w, batch.Found, int64(len(data)))
		w.Write(data)
	}
	tests := []struct {
		name string
		// fault writes item i of n; false ends the stream there.
		fault func(w io.Writer, i, n int, data []byte) bool
		// the first source is then in backoff (it sent bad bytes)
		failed bool
	}{
		// Every item, so that the last word on the source is a failure
		// whichever batch ends first.
		{"bad bytes", func(w io.Writer, i, n int, data []byte) bool {
			data = append([]byte(nil), data...)
			data[0] ^= 1
			item(w, data)
			return true
		}, true},
		{"said missing", func(w io.Writer, i, n int, data []byte) bool {
			if i == 1 {
				batch.WriteHeader(w, batch.Missing, 0)
				return true
			}
			item(w, data)
			return true
		}, false},
		{"cut short", func(w io.Writer, i, n int, data []byte) bool {
			if i == 1 {
				batch.WriteHeader(w, batch.Found, int64(len(data)))
				w.Write(data[:len(data)/2])
				return false
			}
			item(w, data)
			return true
		}, false},
		{"over the bound", func(w io.Writer, i, n int, data []byte) bool {
			batch.WriteHeader(w, batch.Found, 2<<20)
			return false
		}, false},
		{"more than asked", func(w io.Writer, i, n int, data []byte) bool {
			item(w, data)
			if i == n-1 {
				item(w, data)
			}
			return true
		}, false},
		{"a status unknown", func(w io.Writer, i, n int, data []byte) bool {
			batch.WriteHeader(w, 9, int64(len(data)))
			return false
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := mustNew(t, faultyBatches(t, dir, tt.fault).URL, testOptions())
			var c methodCounter
			second := mustNew(t, serveRepo(t, dir, true, &c).URL, testOptions())
			l := NewList([]Source{first, second}, nil)
			t.Cleanup(func() { l.Close() })

			// Whatever the first source's batch did, every chunk arrives
			// whole, from it or from the second.
			readAllAtOnce(t, l, paths, want)
			h := l.Health()
			if h[0].Healthy == tt.failed {
				t.Errorf("first source: %+v; want failed %v", h[0], tt.failed)
			}
		})
	}
}

// TestListCloseEndsBatches: a batch that stalls does not hold up Close, and
// its reads are made again one at a time.
func TestListCloseEndsBatches(t *testing.T) {
	dir, paths, want := chunkDir(t, 1)
	stall := make(chan struct{})
	asked := make(chan struct{}, 1)
	srv := faultyBatches(t, dir, func(w io.Writer, i, n int, data []byte) bool {
		w.(http.Flusher).Flush()
		asked <- struct{}{}
		<-stall
		return false
	})
	t.Cleanup(func() { close(stall) }) // before the server's Close, which waits for the handler
	l := NewList([]Source{mustNew(t, srv.URL, testOptions())}, nil)
	read := make(chan error, 1)
	go func() {
		_, _, err := l.ReadChunk(context.Background(), paths[0], 1<<20, sameAs(want, paths[0]))
		read <- err
	}()
	<-asked
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a stalled batch")
	}
	if err := <-read; err != nil {
		t.Errorf("a read whose batch was ended: %v", err)
	}
}
