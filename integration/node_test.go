package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/source/ftptest"
)

// TestNodeUpdatesAndRollsBack walks one node through a release's life: v1 applied
// at start, v2 fetched by `patchmesh update` costing only its changed chunks at
// the seed, a v3 whose health check fails rolled back while the node stays on v2,
// and a manual rollback.
func TestNodeUpdatesAndRollsBack(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 8, 1)
	s1 := pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	n := newNode(t, nodeOpts{Name: "n1", Trust: pub.Trust, Sources: []string{seed.URL}})
	n.WaitVersion(t, "1.0.0", 60*time.Second)
	sameTree(t, src, filepath.Join(n.Install, "current"))
	first := seed.Served(t).ChunkBytes
	if first < s1.NewBytes || float64(first) > 1.05*float64(s1.NewBytes) {
		t.Errorf("v1: seed served %d chunk bytes for %d unique bytes", first, s1.NewBytes)
	}

	editTree(t, src, 4)
	s2 := pub.Publish("1.1.0", src)
	if s2.NewBytes >= s2.Bytes/10 {
		t.Fatalf("v2 publish wrote %d new bytes of %d: not a delta", s2.NewBytes, s2.Bytes)
	}
	r := n.Update(t)
	if r.code != 0 || !strings.Contains(r.stdout, "applied") {
		t.Fatalf("update: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	n.WaitVersion(t, "1.1.0", 30*time.Second)
	sameTree(t, src, filepath.Join(n.Install, "current"))
	// The node holds v1, so it pulls the deltas publish made against it,
	// which rebuild every new chunk, and no chunk.
	served := seed.Served(t).ChunkBytes - first
	if s2.DeltaOutput != s2.NewBytes || served != s2.DeltaBytes {
		t.Errorf("v2: seed served %d chunk bytes; the release had %d new bytes, rebuilt by %d bytes of deltas from %d", served, s2.NewBytes, s2.DeltaBytes, s2.DeltaOutput)
	}

	// v3 ships a health check that fails: it must be rolled back, v2 stays.
	if err := os.WriteFile(filepath.Join(src, "health.sh"), []byte("#!/bin/sh\necho database unreachable >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pub.Publish("1.2.0", src, "--health-check", "health.sh")
	r = n.Update(t)
	if r.code != 3 || !strings.Contains(r.stdout, "rolled-back") {
		t.Fatalf("update to a failing release: exit %d (want 3): %s %s", r.code, r.stdout, r.stderr)
	}
	if v := n.Current(); v != "1.1.0" {
		t.Fatalf("after a failed health check the node runs %q, want 1.1.0", v)
	}
	if !n.HasError(t, "1.2.0", "database unreachable") {
		t.Errorf("status does not explain the rollback with the hook's output: %+v", n.Status(t).Errors)
	}
	st := n.Status(t)
	bad := false
	for _, rel := range st.Releases {
		if rel.Version == "1.2.0" && rel.State == "bad" {
			bad = true
		}
	}
	if !bad {
		t.Errorf("1.2.0 not marked bad: %+v", st.Releases)
	}
	// A bad release is not retried in a loop.
	r = n.Update(t)
	if r.code != 3 || !strings.Contains(r.stdout, "skipped-bad") {
		t.Errorf("second update of a bad release: exit %d: %s", r.code, r.stdout)
	}

	// Rollback by hand goes back to 1.0.0.
	r = pm(t, "rollback", "--api", n.API, "--reason", "test")
	if r.code != 0 {
		t.Fatalf("rollback: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if v := n.Current(); v != "1.0.0" {
		t.Errorf("after rollback the node runs %q, want 1.0.0", v)
	}
	out := mustPM(t, "releases", "--api", n.API, "--json")
	var rels []map[string]any
	if err := json.Unmarshal([]byte(out.stdout), &rels); err != nil || len(rels) < 3 {
		t.Errorf("releases --json: %v %s", err, out.stdout)
	}
}

// countingRepo is a real HTTP server over a repository folder that counts what it
// serves and can slow every chunk down, so a test can act in the middle of a fetch.
type countingRepo struct {
	*httptest.Server
	stats repo.Stats
	delay atomic.Int64 // per chunk, nanoseconds
	gets  sync.Map     // path -> *atomic.Int64: requests served per path
	// chunk requests being served, and the most at once
	inflight, peak atomic.Int64
}

// Gets returns how often path was requested.
func (c *countingRepo) Gets(path string) int64 {
	if n, ok := c.gets.Load(path); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func newCountingRepo(t *testing.T, dir string) *countingRepo {
	t.Helper()
	files, err := repo.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &countingRepo{}
	h := repo.NewHandler(files, repo.HandlerOptions{Stats: &c.stats})
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/chunks/") {
			n := c.inflight.Add(1)
			defer c.inflight.Add(-1)
			for p := c.peak.Load(); n > p; p = c.peak.Load() {
				if c.peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Duration(c.delay.Load()))
		}
		n, _ := c.gets.LoadOrStore(strings.TrimPrefix(r.URL.Path, "/"), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { c.Close(); files.Close() })
	return c
}

// TestNodeWidensFarFromSource: a node alone, whose source answers each chunk
// after a delay as one far away would, fetches more chunks at once than
// --concurrency, never more than --max-concurrency, and applies the release
// exactly. The delay stands for a far link's round trip: this kernel has no
// netem (scripts/bench-rtt.sh measures the same through a relay).
func TestNodeWidensFarFromSource(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 24, 9)
	pub.Publish("1.0.0", src)
	tests := []struct {
		name    string
		siteKey string
	}{
		{"outside a site", ""},
		// A site's one distribution point fetches everything itself.
		{"alone in its site", siteKey(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := newCountingRepo(t, pub.Repo)
			cr.delay.Store(int64(20 * time.Millisecond))
			n := newNode(t, nodeOpts{Name: "far", Trust: pub.Trust, Sources: []string{cr.URL}, SiteKey: tt.siteKey,
				Extra: []string{"--concurrency", "4", "--max-concurrency", "32"}})
			n.WaitVersion(t, "1.0.0", 120*time.Second)
			sameTree(t, src, filepath.Join(n.Install, "current"))
			if peak := cr.peak.Load(); peak <= 4 || peak > 32 {
				t.Errorf("at most %d chunk requests at once; want more than --concurrency 4, at most --max-concurrency 32", peak)
			}
			t.Logf("at most %d chunk requests at once", cr.peak.Load())
		})
	}
}

// TestNodeResumesAfterKill kills a node with SIGKILL in the middle of a large
// fetch; restarted, it finishes without fetching again the chunks it had verified.
func TestNodeResumesAfterKill(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 48, 2)
	s := pub.Publish("2.0.0", src)
	cr := newCountingRepo(t, pub.Repo)
	cr.delay.Store(int64(15 * time.Millisecond))
	n := newNode(t, nodeOpts{Name: "resume", Trust: pub.Trust, Sources: []string{cr.URL}, Extra: []string{"--concurrency", "8", "--max-concurrency", "8"}})
	waitFor(t, 60*time.Second, func() bool {
		st, err := n.status()
		return err == nil && st.Progress != nil && st.Progress.ChunksDone > st.Progress.ChunksTotal/3
	}, "a third of the chunks")
	n.Kill()
	before := cr.stats.ChunkBytes.Load()
	if before >= s.NewBytes {
		t.Fatalf("the fetch finished before the kill (%d of %d bytes); slow the repository down", before, s.NewBytes)
	}
	if _, err := os.Stat(filepath.Join(n.Install, "current")); err == nil {
		t.Fatal("a release is visible before the fetch finished")
	}
	cr.delay.Store(0)
	n.Restart()
	n.WaitVersion(t, "2.0.0", 90*time.Second)
	sameTree(t, src, filepath.Join(n.Install, "current"))
	total := cr.stats.ChunkBytes.Load()
	// At most the chunks in flight at the kill are fetched twice.
	slack := int64(8 * chunk.DefaultParams().Max)
	if total > s.NewBytes+slack {
		t.Errorf("served %d chunk bytes for a %d-byte release: the restart refetched verified chunks (slack %d)", total, s.NewBytes, slack)
	}
	t.Logf("release %d bytes; served before kill %d, in all %d (%.3fx)", s.NewBytes, before, total, float64(total)/float64(s.NewBytes))
}

// TestNodeSourceFallback: a dead first source falls back to a folder source.
func TestNodeSourceFallback(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 2, 3)
	pub.Publish("3.0.0", src)
	dead := "http://" + freeAddr(t)
	n := newNode(t, nodeOpts{Name: "fallback", Trust: pub.Trust, Sources: []string{dead, "file://" + pub.Repo}})
	n.WaitVersion(t, "3.0.0", 60*time.Second)
	sameTree(t, src, filepath.Join(n.Install, "current"))
	st := n.Status(t)
	if len(st.Sources) != 2 || st.Sources[0].Healthy || st.Sources[0].LastError == "" || !st.Sources[1].Healthy {
		t.Errorf("source health does not show the dead first source: %+v", st.Sources)
	}
}

// TestNodeRefusals: bad input is refused with the reason in the log and status,
// and none of it disturbs the running release.
func TestNodeRefusals(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 2, 4)
	pub.Publish("1.0.0", src)
	headV1, err := os.ReadFile(filepath.Join(pub.Repo, repo.HeadPath("stable")))
	if err != nil {
		t.Fatal(err)
	}
	seed := newSeed(t, pub.Repo)
	n := newNode(t, nodeOpts{Name: "refusals", Trust: pub.Trust, Sources: []string{seed.URL}})
	n.WaitVersion(t, "1.0.0", 60*time.Second)
	editTree(t, src, 2)
	pub.Publish("1.1.0", src)
	if r := n.Update(t); r.code != 0 {
		t.Fatalf("update to 1.1.0: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	headPath := filepath.Join(pub.Repo, repo.HeadPath("stable"))
	headV2, _ := os.ReadFile(headPath)

	other := newPublisher(t) // another key, unknown to the node

	tests := []struct {
		name  string
		setup func(t *testing.T)
		words []string // what the node's errors must say
	}{
		{
			name:  "replayed old head",
			setup: func(t *testing.T) { writeFile(t, headPath, headV1) },
			words: []string{"rollback"},
		},
		{
			name: "manifest signed by another key",
			setup: func(t *testing.T) {
				s := other.Publish("9.0.0", src, "--sequence", "50")
				copyFile(t, filepath.Join(other.Repo, filepath.FromSlash(s.ManifestPath)), filepath.Join(pub.Repo, filepath.FromSlash(s.ManifestPath)))
				copyFile(t, filepath.Join(other.Repo, repo.HeadPath("stable")), headPath)
			},
			words: []string{"head", "signature"},
		},
		{
			name: "expired head",
			setup: func(t *testing.T) {
				writeFile(t, headPath, headV2)
				pub.Publish("1.2.0", src, "--head-ttl", "1s")
				time.Sleep(2 * time.Second)
			},
			words: []string{"expired", "clock"},
		},
		{
			name: "release for another OS",
			setup: func(t *testing.T) {
				pub.Publish("1.3.0", src, "--os", "plan9", "--head-ttl", "1h")
			},
			words: []string{"1.3.0", "plan9"},
		},
		{
			name: "tampered chunk",
			setup: func(t *testing.T) {
				editTree(t, src, 9)
				before := chunkFiles(t, pub.Repo)
				pub.Publish("1.4.0", src)
				// Flip one byte of every new chunk of 1.4.0 in the repository.
				flipNewChunks(t, pub.Repo, before)
			},
			words: []string{"chunk", "do not match"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t)
			r := n.Update(t)
			if r.code == 0 {
				t.Errorf("update exit 0, want a refusal or failure: %s", r.stdout)
			}
			if v := n.Current(); v != "1.1.0" {
				t.Fatalf("node runs %q after %s, want 1.1.0", v, tt.name)
			}
			if !n.HasError(t, tt.words...) {
				t.Errorf("no error mentioning %q in status: %+v", tt.words, n.Status(t).Errors)
			}
			sameTreeExcept(t, n)
		})
	}
}

// sameTreeExcept checks the running release is whole: every file verifies.
func sameTreeExcept(t *testing.T, n *nodeProc) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(n.Install, "current", "bin", "app")); err != nil {
		t.Errorf("running release damaged: %v", err)
	}
}

// chunkFiles lists the chunk files of a repository.
func chunkFiles(t *testing.T, repoDir string) map[string]bool {
	t.Helper()
	out := make(map[string]bool)
	err := filepath.Walk(filepath.Join(repoDir, "chunks"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			out[p] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flipNewChunks flips one byte in every chunk file that is not in before.
func flipNewChunks(t *testing.T, repoDir string, before map[string]bool) {
	t.Helper()
	n := 0
	for p := range chunkFiles(t, repoDir) {
		if before[p] {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 1
		writeFile(t, p, data)
		n++
	}
	if n == 0 {
		t.Fatal("flipped no chunk")
	}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data)
}

// TestNodeFTPFallback: a dead first source falls back to a real FTP server.
func TestNodeFTPFallback(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 2, 5)
	pub.Publish("4.0.0", src)
	ftp := ftptest.Start(t, pub.Repo, "mirror", "s3cret")
	dead := "http://" + freeAddr(t)
	n := newNode(t, nodeOpts{Name: "ftp", Trust: pub.Trust, Sources: []string{dead, "ftp://mirror:s3cret@" + ftp + "/"}})
	n.WaitVersion(t, "4.0.0", 60*time.Second)
	sameTree(t, src, filepath.Join(n.Install, "current"))
	for _, s := range n.Status(t).Sources {
		if strings.Contains(s.URL, "s3cret") {
			t.Errorf("status reveals the FTP password: %s", s.URL)
		}
	}
}

// TestNodeHostileSources: sources that send endless bytes or stall are given up on
// within their bounds and the node gets the release from the next source.
func TestNodeHostileSources(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 6)
	pub.Publish("5.0.0", src)
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := bytes.Repeat([]byte("x"), 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	defer endless.Close()
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("{"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	}))
	defer stall.Close()
	n := newNode(t, nodeOpts{Name: "hostile", Trust: pub.Trust, Sources: []string{endless.URL, stall.URL, "file://" + pub.Repo},
		Extra: []string{"--idle-timeout", "2s", "--source-timeout", "3s"}})
	n.WaitVersion(t, "5.0.0", 60*time.Second)
	sameTree(t, src, filepath.Join(n.Install, "current"))
	st := n.Status(t)
	if len(st.Sources) != 3 {
		t.Fatalf("sources: %+v", st.Sources)
	}
	if e := st.Sources[0].LastError; !strings.Contains(e, "too large") && !strings.Contains(e, "over") {
		t.Errorf("endless source: last error %q, want a size refusal", e)
	}
	if e := st.Sources[1].LastError; !strings.Contains(e, "stalled") && !strings.Contains(e, "timeout") && !strings.Contains(e, "timed out") {
		t.Errorf("stalling source: last error %q, want a stall or timeout", e)
	}
}

// TestRenewHead: a head about to expire is renewed without a new release; a node
// refuses the expired head, then accepts the renewed one.
func TestRenewHead(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 8)
	pub.Publish("1.0.0", src, "--head-ttl", "3s")
	n := newNode(t, nodeOpts{Name: "renew", Trust: pub.Trust, Sources: []string{"file://" + pub.Repo}})
	n.WaitVersion(t, "1.0.0", 30*time.Second)
	waitFor(t, 30*time.Second, func() bool { return n.Update(t).code == 3 }, "the head to expire")
	if !n.HasError(t, "expired") {
		t.Errorf("no expiry refusal in status: %+v", n.Status(t).Errors)
	}
	out := mustPM(t, "renew", "--repo", pub.Repo, "--key", pub.Key, "--channel", "stable")
	if !strings.Contains(out.stdout, "renewed stable 1.0.0") {
		t.Errorf("renew said %q", out.stdout)
	}
	if r := n.Update(t); r.code != 0 || !strings.Contains(r.stdout, "up-to-date") {
		t.Errorf("after renew: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	mustPM(t, "verify", "--repo", pub.Repo, "--trust", pub.Trust)
}

// TestNodeRetriesFailedCheck: a node whose only source is down at start does not
// wait for its hourly schedule; it retries with backoff and gets the release once
// the source is back.
func TestNodeRetriesFailedCheck(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 9)
	pub.Publish("1.0.0", src)
	addr := freeAddr(t)
	n := newNode(t, nodeOpts{Name: "retry", Trust: pub.Trust, Sources: []string{"http://" + addr}})
	waitFor(t, 20*time.Second, func() bool {
		st, err := n.status()
		return err == nil && st.LastCheck != nil && st.LastCheck.Outcome == "failed"
	}, "the first check to fail")
	newSeedAt(t, pub.Repo, addr)
	n.WaitVersion(t, "1.0.0", 60*time.Second)
}

// TestNodeReadsChunksInBatches: a node asks a patchmesh seed for many chunks
// in one request, and a seed with --batch=false (as any static server) for
// one at a time. Either way the node installs the exact tree, and the seed
// serves each chunk once.
func TestNodeReadsChunksInBatches(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 8, 5)
	s1 := pub.Publish("1.0.0", src)
	if s1.NewChunks < 200 {
		t.Fatalf("the release has %d chunks; the test needs 200", s1.NewChunks)
	}
	tests := []struct {
		name    string
		flags   []string
		batches bool
	}{
		{"batches", nil, true},
		{"one at a time", []string{"--batch=false"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed := newSeedAt(t, pub.Repo, freeAddr(t), tt.flags...)
			n := newNode(t, nodeOpts{Name: "n", Trust: pub.Trust, Sources: []string{seed.URL}})
			n.WaitVersion(t, "1.0.0", 60*time.Second)
			sameTree(t, src, filepath.Join(n.Install, "current"))
			st := seed.Served(t)
			if st.Chunks != int64(s1.NewChunks) || st.ChunkBytes != s1.NewBytes {
				t.Errorf("seed served %d chunks of %d bytes; the release has %d of %d", st.Chunks, st.ChunkBytes, s1.NewChunks, s1.NewBytes)
			}
			// Besides chunks, a node reads the trust root, the head and the
			// manifest: a few requests.
			if batched := st.Requests < st.Chunks/4; batched != tt.batches {
				t.Errorf("seed answered %d requests for %d chunks; batches %v, want %v", st.Requests, st.Chunks, batched, tt.batches)
			}
			// Many fetches in flight cost a seed that batches little: the
			// node starts wide.
			log, _ := os.ReadFile(n.log)
			if wide := bytes.Contains(log, []byte("start=64")); wide != tt.batches {
				t.Errorf("node's fetch window started at 64: %v, want %v", wide, tt.batches)
			}
		})
	}
}
