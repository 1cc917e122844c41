package seed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRunStopsItsServers: once Run returned, neither listener accepts and no
// connection stays open, even one whose request is still in flight past the
// shutdown bound.
func TestRunStopsItsServers(t *testing.T) {
	repoDir := newRepo(t, release{channel: "stable", version: "1.0.0"})
	for _, tc := range []struct {
		name string
		// stall opens a connection to the API at addr that the seed is
		// still serving when it is stopped; nil: none.
		stall func(t *testing.T, addr string) net.Conn
	}{
		{"idle", nil},
		{"report body stalled", stalledReport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Repo: repoDir, ReportTokens: tokenFile(t), Listen: "127.0.0.1:0", API: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			// Short, so the stalled request outlives it at once.
			s.shutdownBound = 50 * time.Millisecond
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			select {
			case <-s.Ready():
			case err := <-done:
				t.Fatalf("Run: %v", err)
			}
			addrs := map[string]string{"repository": s.Addr(), "API": s.APIAddr()}
			for name, addr := range addrs {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatalf("%s listener before the stop: %v", name, err)
				}
				c.Close()
			}
			var stalled net.Conn
			if tc.stall != nil {
				stalled = tc.stall(t, s.APIAddr())
				defer stalled.Close()
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			for name, addr := range addrs {
				if c, err := net.Dial("tcp", addr); err == nil {
					c.Close()
					t.Errorf("%s listener still accepts after Run returned", name)
				}
			}
			if stalled != nil {
				// A hang guard, not a timing assert: the seed closed the
				// connection before Run returned, so the read ends at once.
				_ = stalled.SetReadDeadline(time.Now().Add(time.Minute))
				if _, err := io.ReadAll(stalled); errors.Is(err, os.ErrDeadlineExceeded) {
					t.Error("the stalled request's connection is still open after Run returned")
				}
			}
		})
	}
}

// stalledReport sends a report whose body stops short of its length, and
// returns the connection once the seed's handler waits for the rest: with
// "Expect: 100-continue" the server answers "100 Continue" when the handler
// first reads the body.
func stalledReport(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	req := fmt.Sprintf("POST /api/report HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n", addr, anyToken)
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, " 100 ") {
		c.Close()
		t.Fatalf("report with Expect: 100-continue: %q, %v; want 100 Continue", line, err)
	}
	if _, err := io.WriteString(c, `{"site":`); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}
