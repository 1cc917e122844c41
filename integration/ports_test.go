package integration

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodeRunPortTaken: a node started with one of its ports taken (the
// API, the gossip or the libp2p port) exits 1 at once, names the part, the
// address and the cause, and leaves none of its other ports listening or
// bound: every listener, the mesh's too, is bound before anything starts.
func TestNodeRunPortTaken(t *testing.T) {
	pub := newPublisher(t)
	for _, tc := range []struct {
		name  string
		taken string // which port is taken: "api", "gossip" or "p2p"
		want  string // what stderr says, with ADDR for the taken address
	}{
		{"api", "api", "api: listen ADDR"},
		{"gossip", "gossip", "mesh: listen mesh: bind gossip on ADDR"},
		{"p2p", "p2p", "mesh: listen mesh: start libp2p host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ports := map[string]string{"api": freeAddr(t), "repo": freeAddr(t), "gossip": freeAddr(t), "p2p": freeAddr(t)}
			taken, err := net.Listen("tcp", ports[tc.taken])
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			_, p2pPort, _ := net.SplitHostPort(ports["p2p"])
			dir := t.TempDir()
			// A hang guard, not a timing assert: a node that started would run an hour.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "node", "run", "--name", "taken", "--data", filepath.Join(dir, "data"),
				"--install-dir", filepath.Join(dir, "app"), "--trust", pub.Trust, "--source", pub.Repo,
				"--api", ports["api"], "--serve-repo", ports["repo"], "--check-interval", "1h",
				"--site-key", siteKey(t), "--gossip", ports["gossip"], "--p2p", "/ip4/127.0.0.1/tcp/"+p2pPort)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err = cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("node on a taken %s port still running after 2 minutes; stderr:\n%s", tc.taken, stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("node on a taken %s port: %v, want exit 1; stderr:\n%s", tc.taken, err, stderr.String())
			}
			for _, want := range []string{strings.ReplaceAll(tc.want, "ADDR", ports[tc.taken]), "address already in use"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "node running") || strings.Contains(stderr.String(), "mesh up") {
				t.Errorf("the node started parts before failing:\n%s", stderr.String())
			}
			// Every other port is free again: bind each.
			for name, addr := range ports {
				if name == tc.taken {
					continue
				}
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Errorf("%s port of the failed node still taken: %v", name, err)
					continue
				}
				ln.Close()
			}
		})
	}
}
