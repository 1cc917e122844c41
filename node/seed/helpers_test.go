package seed

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

// testParams cut small chunks so a tree of tens of KiB has dozens of them.
var testParams = chunk.Params{Min: 256, Avg: 1024, Max: 4096}

// pseudoRandom returns n bytes that do not repeat, reproducibly.
func pseudoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeTree writes files (slash path -> content) under a new folder.
func writeTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for p, data := range files {
		name := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// release describes one publish into the test repository.
type release struct {
	channel, version string
	headTTL          time.Duration // zero: repo's default, 7 days
	age              time.Duration // publish as if this long ago
}

// newRepo publishes releases into a new repository folder and returns it.
func newRepo(t *testing.T, rels ...release) string {
	t.Helper()
	key, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(t.TempDir(), "repo")
	for i, r := range rels {
		src := writeTree(t, map[string][]byte{
			"bin/agent":        pseudoRandom(uint64(i+1), 24<<10),
			"etc/agent.conf":   []byte("channel = " + r.channel + "\nversion = " + r.version + "\n"),
			"share/signatures": pseudoRandom(99, 16<<10), // the same in every release
		})
		published := time.Now().Add(-r.age)
		_, err := repo.Publish(context.Background(), repoDir, src, repo.PublishOptions{
			Channel: r.channel, Version: r.version, Keys: []manifest.PrivateKey{key},
			Params: testParams, HeadTTL: r.headTTL, Workers: 1,
			Now: func() time.Time { return published },
		})
		if err != nil {
			t.Fatalf("publish %s %s: %v", r.channel, r.version, err)
		}
	}
	return repoDir
}

// start runs a seed over repoDir until the test ends.
func start(t *testing.T, cfg Config, tune ...func(*Seed)) *Seed {
	t.Helper()
	s, _ := runSeed(t, cfg, tune...)
	return s
}

// runSeed runs a seed with cfg (on loopback, unless cfg says where) until
// stop or the test's end. stop returns once Run has: every request's log line
// is written by then.
func runSeed(t *testing.T, cfg Config, tune ...func(*Seed)) (s *Seed, stop func()) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.API == "" {
		cfg.API = "127.0.0.1:0"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range tune {
		fn(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return s, stop
}

// call does one request and returns the status, body and headers. hdr "Host"
// sets the Host header; the connection still goes to url's loopback address.
func call(t *testing.T, c *http.Client, method, url string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
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
		c = &http.Client{Timeout: 10 * time.Second}
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

// chunkFiles lists the repository paths of every chunk under repoDir.
func chunkFiles(t *testing.T, repoDir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(repoDir, "chunks"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoDir, p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = info.Size()
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("the test repository has no chunk")
	}
	return out
}
