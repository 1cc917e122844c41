package integration

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNodeRunPortTaken: a node started on an API port that is taken exits 1
// at once, names the flag, the address and the cause, and leaves none of its
// other ports (repository, gossip, libp2p) listening or bound.
func TestNodeRunPortTaken(t *testing.T) {
	pub := newPublisher(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	repoAddr, gossip, p2p := freeAddr(t), freeAddr(t), freePort(t)
	// A hang guard, not a timing assert: a node that started would run an hour.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "node", "run", "--name", "taken", "--data", filepath.Join(dir, "data"),
		"--install-dir", filepath.Join(dir, "app"), "--trust", pub.Trust, "--source", pub.Repo,
		"--api", taken.Addr().String(), "--serve-repo", repoAddr, "--check-interval", "1h",
		"--site-key", siteKey(t), "--gossip", gossip, "--p2p", "/ip4/127.0.0.1/tcp/"+strconv.Itoa(p2p))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("node on a taken API port still running after 2 minutes; stderr:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("node on a taken API port: %v, want exit 1; stderr:\n%s", err, stderr.String())
	}
	for _, want := range []string{"api: listen " + taken.Addr().String(), "address already in use"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "node running") || strings.Contains(stderr.String(), "mesh up") {
		t.Errorf("the node started parts before failing:\n%s", stderr.String())
	}
	// Every other port is free again: bind each.
	for _, addr := range []string{repoAddr, gossip, "127.0.0.1:" + strconv.Itoa(p2p)} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("port of the failed node still taken: %v", err)
			continue
		}
		ln.Close()
	}
}
