package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeNode is a test double of the node behind the API: it holds a Status and
// records the actions asked of it. The real node is covered by the integration
// tests; here the HTTP server, the handler and the client are real.
type fakeNode struct {
	mu         sync.Mutex
	st         Status
	checks     []bool // wait flag of each Check
	rollbacks  []string
	noPrevious bool
	waiting    bool // a staged release waits for a maintenance window
	applyNows  int
}

func newFakeNode() *fakeNode {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cur := ReleaseInfo{Name: "1.4.2-7", Version: "1.4.2", Sequence: 7, State: "current", Activated: t0, Files: 3, Bytes: 5 << 20, FromWAN: 1 << 20, FromLAN: 4 << 20}
	prev := ReleaseInfo{Name: "1.4.1-6", Version: "1.4.1", Sequence: 6, State: "previous", Activated: t0.Add(-time.Hour)}
	return &fakeNode{st: Status{
		Node:    NodeInfo{Name: "till-3", PeerID: "12D3KooWtill3", Site: "9f2c41ab", Role: "dp", Version: "0.1.0", Started: t0, UptimeSeconds: 3600, OS: "linux", Arch: "amd64", WANFetches: 48},
		Channel: "stable",
		Sources: []SourceState{
			{URL: "https://updates.example.com/repo", Healthy: true, BytesRead: 1 << 20},
			{URL: "ftp://mirror:hunter2-ftp-password@mirror.example.com/pm", Failures: 2,
				LastError: "dial ftp://mirror:hunter2-ftp-password@mirror.example.com/pm: i/o timeout"},
		},
		NextCheck: t0.Add(time.Hour),
		Current:   &cur,
		Previous:  &prev,
		Progress:  &Progress{Version: "1.5.0", Sequence: 8, Phase: "fetching", ChunksTotal: 40, ChunksDone: 10, BytesTotal: 4000, BytesDone: 1000, Started: t0},
		Releases:  []ReleaseInfo{cur, prev, {Name: "1.3.0-5", Version: "1.3.0", Sequence: 5, State: "bad", Reason: "health check failed"}},
		Bytes: Bytes{WAN: 1000, LAN: 3000, Served: 5000, SavingPercent: 75, ByPeer: map[string]int64{"till-1": 3000},
			History: []BytesSample{{Time: t0, WAN: 0, LAN: 0}, {Time: t0.Add(10 * time.Second), WAN: 1000, LAN: 3000}}},
		Peers: []Peer{
			{Name: "till-3", PeerID: "12D3KooWtill3", State: "alive", Self: true, Holding: 7},
			{Name: "till-1", PeerID: "12D3KooWtill1", State: "alive", Holding: 7, BytesFrom: 3000},
			{Name: "till-2", PeerID: "12D3KooWtill2", State: "suspect", Holding: 6},
			{Name: "till-9", PeerID: "12D3KooWtill9", State: "dead"},
		},
		Errors: []Event{{Time: t0, Kind: "refused", Message: "manifest 1.3.9 expired"}, {Time: t0, Kind: "source", Message: "mirror: timeout"}},
		Counters: Counters{ChunksFetchedWAN: 11, ChunksFetchedLAN: 33, ChunksServed: 44, VerifyFailures: 1, Applies: 3, Rollbacks: 1,
			Refusals: 2, SourceFailures: 2, Checks: 9, CheckSecondsTotal: 4.5,
			SourceFailuresByURL: map[string]int64{"ftp://mirror:hunter2-ftp-password@mirror.example.com/pm": 2}},
		Store: StoreInfo{Chunks: 120, Bytes: 6 << 20, QuotaBytes: 1 << 30},
		Caps:  &Caps{WAN: 250_000, SiteWAN: 1_250_000, WANThrottledSeconds: 12.5},
	}}
}

func (f *fakeNode) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeNode) Check(ctx context.Context, wait bool) (CheckResult, error) {
	f.mu.Lock()
	f.checks = append(f.checks, wait)
	f.mu.Unlock()
	if !wait {
		return CheckResult{Outcome: "queued"}, nil
	}
	return CheckResult{Outcome: "applied", Version: "1.5.0", Sequence: 8, Source: "https://updates.example.com/repo"}, nil
}

func (f *fakeNode) ApplyNow(ctx context.Context, channel string, wait bool) (CheckResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.waiting {
		return CheckResult{}, fmt.Errorf("apply now: %w", ErrNothingWaiting)
	}
	f.applyNows++
	return CheckResult{Outcome: "applied", Version: "1.5.0", Sequence: 8}, nil
}

func (f *fakeNode) Rollback(ctx context.Context, channel, reason string) (RollbackResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noPrevious {
		return RollbackResult{}, fmt.Errorf("rollback: %w", ErrNoPrevious)
	}
	f.rollbacks = append(f.rollbacks, reason)
	return RollbackResult{From: "1.4.2-7", To: "1.4.1-6"}, nil
}

func (f *fakeNode) Scrub(ctx context.Context) (ScrubResult, error) {
	return ScrubResult{Chunks: 3, Bytes: 3 << 14, Damaged: 1, DamagedCIDs: []string{"bafkreia"}, Refetched: 1}, nil
}

func (f *fakeNode) Retry(ctx context.Context, channel, version string) (RetryResult, error) {
	if version != "1.4.2" {
		return RetryResult{}, fmt.Errorf("retry %s: %w", version, ErrNotBad)
	}
	return RetryResult{Cleared: []string{"7-1.4.2"}}, nil
}

func (f *fakeNode) update(fn func(st *Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
}

func (f *fakeNode) actions() (checks int, rollbacks int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.checks), len(f.rollbacks)
}

// serve starts a real loopback HTTP server with the handler over f.
func serve(t *testing.T, f *fakeNode, opts Options, tune ...func(*handler)) (*httptest.Server, *handler) {
	t.Helper()
	h := newHandler(f, opts)
	for _, fn := range tune {
		fn(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

// call does one request and returns the status and body.
func call(t *testing.T, c *http.Client, method, url string, hdr map[string]string, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// actionHeader is what the dashboard and the CLI send with every POST.
func actionHeader() map[string]string { return map[string]string{"X-Patchmesh": "1"} }
