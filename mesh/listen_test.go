package mesh

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// nextPort walks loopback ports below the kernel's ephemeral range (32768 and
// up on Linux), from a place chosen by the process id, so no outgoing
// connection takes a port between a test choosing it and binding it.
var nextPort = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(int64(os.Getpid()*7919) % 12000)
	return &n
}()

// freePort returns a loopback port free for TCP and UDP now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 12000 {
		p := 20000 + int(nextPort.Add(1))%12000
		if portFree(p) {
			return p
		}
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return 0
}

// portFree reports whether p binds on loopback, TCP and UDP.
func portFree(p int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(p)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

func p2pAddr(port int) string { return "/ip4/127.0.0.1/tcp/" + strconv.Itoa(port) }

// listenConfig is a loopback Config on the given gossip and libp2p addresses;
// its delegate is never asked for anything.
func listenConfig(t *testing.T, gossip, p2p string) Config {
	cfg := loopbackConfig(siteKey(t), "listen")
	cfg.GossipAddr, cfg.P2PAddrs = gossip, []string{p2p}
	cfg.Delegate = &testDelegate{}
	return cfg
}

// TestListenPortTaken: a taken port fails Listen, which names the part, and
// leaves the other part's port free.
func TestListenPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name    string
		gossip  func(free int) string
		p2p     func(free int) string
		wantErr string
	}{
		{"gossip port taken",
			func(int) string { return taken.Addr().String() },
			func(free int) string { return p2pAddr(free) },
			"bind gossip on " + taken.Addr().String()},
		{"libp2p port taken",
			func(free int) string { return "127.0.0.1:" + strconv.Itoa(free) },
			func(int) string { return p2pAddr(takenPort) },
			"start libp2p host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			free := freePort(t)
			cfg := listenConfig(t, tc.gossip(free), tc.p2p(free))
			m, err := New(cfg, openStore(t))
			if err != nil {
				t.Fatal(err)
			}
			err = m.Listen()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("listen: %v, want an error saying %q", err, tc.wantErr)
			}
			if !portFree(free) {
				t.Errorf("port %d of the other part still bound after the failed listen", free)
			}
			_ = m.Close()
		})
	}
}

// TestListenThenRun: Listen binds both ports before Run, Run serves on them
// and releases them when it returns.
func TestListenThenRun(t *testing.T) {
	gossip, p2p := freePort(t), freePort(t)
	cfg := listenConfig(t, "127.0.0.1:"+strconv.Itoa(gossip), p2pAddr(p2p))
	m, err := New(cfg, openStore(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{gossip, p2p} {
		if portFree(p) {
			t.Errorf("port %d free after Listen, want it bound", p)
		}
	}
	if err := m.Listen(); err == nil {
		t.Error("a second Listen: no error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	if got, want := m.GossipAddr(), cfg.GossipAddr; got != want {
		t.Errorf("gossip at %s, want the address Listen bound, %s", got, want)
	}
	if got := m.P2PAddrs(); len(got) != 1 || got[0] != p2pAddr(p2p) {
		t.Errorf("libp2p at %v, want the address Listen bound, %s", got, p2pAddr(p2p))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, p := range []int{gossip, p2p} {
		if !portFree(p) {
			t.Errorf("port %d still bound after Run returned", p)
		}
	}
	if err := m.Close(); err != nil {
		t.Errorf("close after run: %v", err)
	}
}

// TestListenThenClose: Close releases what Listen bound when Run never runs,
// and a Run after it fails.
func TestListenThenClose(t *testing.T) {
	gossip, p2p := freePort(t), freePort(t)
	cfg := listenConfig(t, "127.0.0.1:"+strconv.Itoa(gossip), p2pAddr(p2p))
	m, err := New(cfg, openStore(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{gossip, p2p} {
		if !portFree(p) {
			t.Errorf("port %d still bound after Close", p)
		}
	}
	if err := m.Run(t.Context()); err == nil {
		t.Error("run after close: no error")
	}
}
