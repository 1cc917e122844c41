package node

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

// testConfig is a node with an empty folder as its source, no site, and its
// API and repository on free loopback ports.
func testConfig(t *testing.T) Config {
	t.Helper()
	key, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	root, err := manifest.NewTrustRoot(1, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	env, err := root.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	trust := filepath.Join(dir, "root.json")
	if err := os.WriteFile(trust, env, 0o600); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	if err := os.Mkdir(repo, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.InstallDir = filepath.Join(dir, "install")
	cfg.Trust = trust
	cfg.Sources = []string{"file://" + repo}
	addrs := freeAddrs(t, 2)
	cfg.API, cfg.ServeRepo = addrs[0], addrs[1]
	return cfg
}

// freeAddrs returns n distinct loopback addresses nothing listens on now. They
// are held open together while chosen, so two of them are never the same port.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// takeAddr listens on a free loopback port until the test ends.
func takeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// running is a node's Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	exited chan struct{} // closed when Run returned
	err    error         // what Run returned, once exited
}

// runNode runs n until the test ends.
func runNode(t *testing.T, n *Node) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, exited: make(chan struct{})}
	go func() {
		defer close(r.exited)
		r.err = n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if _, ok := r.wait(stopBound + 5*time.Second); !ok {
			t.Errorf("Run did not return within %s of the stop", stopBound+5*time.Second)
		}
	})
	return r
}

// wait returns Run's error, or false if Run is still running after d.
func (r *running) wait(d time.Duration) (error, bool) {
	select {
	case <-r.exited:
		return r.err, true
	case <-time.After(d):
		return nil, false
	}
}

// TestRunFailsOnTakenPort: a node whose port is taken stops at once with an
// error naming the flag and the address, and leaves nothing listening: not
// the listeners bound before the taken one, and not the store (a new node
// opens it).
func TestRunFailsOnTakenPort(t *testing.T) {
	tests := []struct {
		name  string
		taken string // "api" or "serve-repo"
	}{
		{"api", "api"},
		// The API is bound first; it must not stay serving.
		{"serve-repo", "serve-repo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			taken, free := &cfg.API, &cfg.ServeRepo
			if tt.taken == "serve-repo" {
				taken, free = free, taken
			}
			*taken = takeAddr(t)
			n, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err, ok := runNode(t, n).wait(10 * time.Second)
			if !ok {
				t.Fatal("Run still running 10s after starting on a taken port")
			}
			if err == nil {
				t.Fatal("Run returned nil on a taken port")
			}
			if want := tt.taken + ": listen " + *taken; !strings.Contains(err.Error(), want) {
				t.Errorf("Run: %v, want it to say %q", err, want)
			}
			if listening(*free) {
				t.Errorf("%s still listening after Run returned", *free)
			}
			n2, err := New(cfg)
			if err != nil {
				t.Fatalf("open the node again: %v", err)
			}
			n2.close()
		})
	}
}

// TestRunStopsItsServers: once Run returns after a stop, the API and the
// repository no longer answer, even to a client that held a connection open.
func TestRunStopsItsServers(t *testing.T) {
	cfg := testConfig(t)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := runNode(t, n)
	client := &http.Client{Timeout: 10 * time.Second}
	var resp *http.Response
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err = client.Get("http://" + cfg.API + "/api/status")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: %s", resp.Status)
	}
	r.cancel()
	if err, ok := r.wait(stopBound + 5*time.Second); !ok {
		t.Fatal("Run did not return after the stop")
	} else if err != nil {
		t.Fatalf("Run after a stop: %v", err)
	}
	for _, addr := range []string{cfg.API, cfg.ServeRepo} {
		if listening(addr) {
			t.Errorf("%s still listening after Run returned", addr)
		}
	}
	if _, err := client.Get("http://" + cfg.API + "/api/status"); err == nil {
		t.Error("the API answered after Run returned")
	}
}
