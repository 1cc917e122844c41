package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock drives the list's backoff without waiting.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestList(sources ...Source) (*List, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	l := NewList(sources, nil)
	l.now = clock.Now
	return l, clock
}

// flakyServer serves dir, or answers with status while status is not 200,
// and counts the requests it gets.
type flakyServer struct {
	*httptest.Server
	status   atomic.Int32
	requests atomic.Int32
}

func newFlakyServer(t *testing.T, dir string, status int) *flakyServer {
	f := &flakyServer{}
	f.status.Store(int32(status))
	files := http.FileServerFS(os.DirFS(dir))
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if s := int(f.status.Load()); s != http.StatusOK {
			http.Error(w, "injected", s)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func TestListFallsBackFromDeadSource(t *testing.T) {
	dir, files := testRepo(t)
	good := serveDir(t, dir)
	dead := mustNew(t, deadURL(t), testOptions())
	l, clock := newTestList(dead, mustNew(t, good.URL, testOptions()))
	t.Cleanup(func() { l.Close() })

	const p = "channels/stable/head.json"
	got, src, err := l.ReadAll(t.Context(), p, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, files[p]) || src.String() != good.URL {
		t.Fatalf("got %q from %s, want the file from %s", got, src, good.URL)
	}
	h := l.Health()
	if h[0].Healthy || h[0].Failures != 1 || !strings.Contains(h[0].LastError, "refused") {
		t.Errorf("dead source health: %+v", h[0])
	}
	if want := clock.Now().Add(time.Second); !h[0].RetryAt.Equal(want) || !h[0].LastErrorAt.Equal(clock.Now()) {
		t.Errorf("dead source retry at %v, want %v (1s backoff)", h[0].RetryAt, want)
	}
	if !h[1].Healthy || !h[1].LastOK.Equal(clock.Now()) || h[1].BytesRead != int64(len(files[p])) {
		t.Errorf("good source health: %+v", h[1])
	}
}

func TestListBackoff(t *testing.T) {
	dir, files := testRepo(t)
	flaky := newFlakyServer(t, dir, http.StatusInternalServerError)
	good := serveDir(t, dir)
	l, clock := newTestList(mustNew(t, flaky.URL, testOptions()), mustNew(t, good.URL, testOptions()))
	ctx := t.Context()
	const p = "roots/1.json"

	read := func(wantFrom string) {
		t.Helper()
		got, src, err := l.ReadAll(ctx, p, 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, files[p]) || src.String() != wantFrom {
			t.Fatalf("got %q from %s, want it from %s", got, src, wantFrom)
		}
	}
	wantHealth := func(failures int, retryIn time.Duration) {
		t.Helper()
		h := l.Health()[0]
		if h.Failures != failures || h.Healthy != (failures == 0) {
			t.Fatalf("flaky source: %d failures, healthy %v; want %d", h.Failures, h.Healthy, failures)
		}
		if failures > 0 && (!h.RetryAt.Equal(clock.Now().Add(retryIn)) || !strings.Contains(h.LastError, "500")) {
			t.Fatalf("flaky source: retry at %v, last error %q; want retry in %v and the status", h.RetryAt, h.LastError, retryIn)
		}
	}

	read(good.URL) // 500: falls back
	wantHealth(1, time.Second)
	read(good.URL) // in backoff: not asked
	if n := flaky.requests.Load(); n != 1 {
		t.Fatalf("the failing source got %d requests, want 1 (the second skipped in backoff)", n)
	}

	clock.Advance(time.Second) // backoff over; still failing: backoff doubles
	read(good.URL)
	wantHealth(2, 2*time.Second)
	if n := flaky.requests.Load(); n != 2 {
		t.Fatalf("the failing source got %d requests, want 2", n)
	}

	for i := 3; i <= 12; i++ { // the backoff is capped at 5 minutes
		clock.Advance(backoffMax)
		read(good.URL)
		wantHealth(i, min(time.Second<<(i-1), backoffMax))
	}

	flaky.status.Store(http.StatusOK)
	clock.Advance(backoffMax)
	read(flaky.URL) // recovered: the first source serves again
	wantHealth(0, 0)
	read(flaky.URL)
	if h := l.Health()[0]; !h.RetryAt.IsZero() || !h.LastOK.Equal(clock.Now()) || h.BytesRead != 2*int64(len(files[p])) {
		t.Errorf("recovered source health: %+v", h)
	}
}

func TestListAllInBackoffAreTried(t *testing.T) {
	dir, _ := testRepo(t)
	a := newFlakyServer(t, dir, http.StatusServiceUnavailable)
	b := newFlakyServer(t, dir, http.StatusBadGateway)
	l, _ := newTestList(mustNew(t, a.URL, testOptions()), mustNew(t, b.URL, testOptions()))
	for range 2 {
		_, _, err := l.ReadAll(t.Context(), "roots/1.json", 1<<10)
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("every source failing: got %v", err)
		}
		if !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "502") {
			t.Errorf("the error does not name each failure: %v", err)
		}
	}
	if a.requests.Load() != 2 || b.requests.Load() != 2 {
		t.Errorf("requests %d, %d; want both sources tried twice though in backoff", a.requests.Load(), b.requests.Load())
	}
}

// TestListBackoffNotMissing: a source in backoff is still asked when the
// others lack the file, so a file is never reported missing (which callers
// take as final) while a source that may hold it was skipped.
func TestListBackoffNotMissing(t *testing.T) {
	dir, files := testRepo(t)
	flaky := newFlakyServer(t, dir, http.StatusInternalServerError)
	empty := serveDir(t, t.TempDir())
	l, _ := newTestList(mustNew(t, flaky.URL, testOptions()), mustNew(t, empty.URL, testOptions()))
	const p = "roots/1.json"
	for i := range 2 { // the second read finds the flaky source in backoff
		_, _, err := l.ReadAll(t.Context(), p, 1<<10)
		if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "500") {
			t.Fatalf("read %d, first source failing, second lacking the file: got %v; want the failure, not ErrNotFound", i+1, err)
		}
	}
	if n := flaky.requests.Load(); n != 2 {
		t.Errorf("the source in backoff got %d requests, want 2", n)
	}
	flaky.status.Store(http.StatusOK)
	got, src, err := l.ReadAll(t.Context(), p, 1<<10)
	if err != nil || src.String() != flaky.URL || !bytes.Equal(got, files[p]) {
		t.Errorf("source in backoff back up: got %q from %v, %v", got, src, err)
	}
}

func TestListNotFound(t *testing.T) {
	dir, files := testRepo(t)
	empty := t.TempDir()
	tests := []struct {
		name         string
		sources      []string // "empty", "repo", "500"
		wantNotFound bool
		wantFrom     int // index of the serving source, -1: error
	}{
		{"everywhere missing", []string{"empty", "empty"}, true, -1},
		{"missing on the first", []string{"empty", "repo"}, false, 1},
		{"missing and failing", []string{"empty", "500"}, false, -1},
		{"failing and missing", []string{"500", "empty"}, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srcs []Source
			for _, kind := range tt.sources {
				switch kind {
				case "empty":
					srcs = append(srcs, mustNew(t, serveDir(t, empty).URL, testOptions()))
				case "repo":
					srcs = append(srcs, mustNew(t, serveDir(t, dir).URL, testOptions()))
				case "500":
					srcs = append(srcs, mustNew(t, newFlakyServer(t, dir, 500).URL, testOptions()))
				}
			}
			l, _ := newTestList(srcs...)
			const p = "manifests/stable/7.json"
			got, src, err := l.ReadAll(t.Context(), p, 1<<10)
			if errors.Is(err, ErrNotFound) != tt.wantNotFound {
				t.Fatalf("got %v; want ErrNotFound: %v", err, tt.wantNotFound)
			}
			if tt.wantFrom < 0 {
				if err == nil {
					t.Fatalf("got the file from %s", src)
				}
				return
			}
			if err != nil || src != srcs[tt.wantFrom] || !bytes.Equal(got, files[p]) {
				t.Fatalf("got %q from %v, %v", got, src, err)
			}
			for i, h := range l.Health() {
				if !h.Healthy {
					t.Errorf("source %d unhealthy after answering not found: %+v", i, h)
				}
			}
		})
	}
}

func TestListStallMidBodyMovesOn(t *testing.T) {
	dir, files := testRepo(t)
	stalling := faultServer(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte(`{"channel":`))
		w.(http.Flusher).Flush()
		<-release
	})
	opts := testOptions()
	opts.IdleTimeout = 200 * time.Millisecond
	good := serveDir(t, dir)
	l, _ := newTestList(mustNew(t, stalling.URL, opts), mustNew(t, good.URL, opts))
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()

	const p = "channels/stable/head.json"
	got, src, err := l.ReadAll(ctx, p, 1<<10)
	if err != nil || src.String() != good.URL || !bytes.Equal(got, files[p]) {
		t.Fatalf("got %q from %v, %v; want the whole file from the second source", got, src, err)
	}
	if h := l.Health()[0]; h.Healthy || !strings.Contains(h.LastError, ErrStalled.Error()) {
		t.Errorf("stalling source health: %+v", h)
	}

	// With Open the caller reads; a stall still marks the source.
	l2, _ := newTestList(mustNew(t, stalling.URL, opts))
	rc, _, err := l2.Open(ctx, p, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrStalled) {
		t.Fatalf("read: got %v, want ErrStalled", err)
	}
	if h := l2.Health()[0]; h.Healthy || h.Failures != 1 || h.BytesRead != int64(len(`{"channel":`)) {
		t.Errorf("stalling source health after Open: %+v", h)
	}
}

func TestListRefusesBeforeAsking(t *testing.T) {
	dir, _ := testRepo(t)
	srv := newFlakyServer(t, dir, http.StatusOK)
	l, _ := newTestList(mustNew(t, srv.URL, testOptions()))

	if _, _, err := l.ReadAll(t.Context(), "../roots/1.json", 1<<10); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("escaping path: got %v, want ErrInvalidPath", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := l.Open(ctx, "roots/1.json", 1<<10); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
	if n := srv.requests.Load(); n != 0 {
		t.Errorf("the source got %d requests", n)
	}
	if h := l.Health()[0]; !h.Healthy {
		t.Errorf("the caller's cancellation marked the source failed: %+v", h)
	}
}

func TestHealthJSON(t *testing.T) {
	dir, _ := testRepo(t)
	l, _ := newTestList(mustNew(t, deadURL(t), testOptions()), mustNew(t, dir, testOptions()))
	if _, _, err := l.ReadAll(t.Context(), "roots/1.json", 1<<10); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(l.Health())
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"url", "healthy", "failures", "last_error", "last_error_at", "retry_at", "bytes_read"} {
		if _, ok := got[0][key]; !ok {
			t.Errorf("failed source JSON lacks %q: %s", key, b)
		}
	}
	for _, key := range []string{"last_error", "last_error_at", "retry_at"} {
		if _, ok := got[1][key]; ok {
			t.Errorf("healthy source JSON has %q: %s", key, b)
		}
	}
}
