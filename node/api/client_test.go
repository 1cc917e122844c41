package api

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestClient(t *testing.T) {
	const token = "client-token"
	f := newFakeNode()
	srv, _ := serve(t, f, Options{Token: token})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, addr := range []string{srv.URL, strings.TrimPrefix(srv.URL, "http://"), srv.URL + "/"} {
		c := NewClient(addr, token)
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatalf("Status via %q: %v", addr, err)
		}
		if st.Current.Version != "1.4.2" || st.Node.Name != "till-3" {
			t.Errorf("Status via %q = %+v", addr, st)
		}
	}

	c := NewClient(srv.URL, token)
	rels, err := c.Releases(ctx)
	if err != nil || len(rels) != 3 || rels[2].State != "bad" || rels[2].Reason != "health check failed" {
		t.Errorf("Releases = %+v, %v", rels, err)
	}
	peers, err := c.Peers(ctx)
	if err != nil || len(peers) != 4 {
		t.Errorf("Peers = %+v, %v", peers, err)
	}
	res, err := c.Check(ctx, false)
	if err != nil || res.Outcome != "queued" {
		t.Errorf("Check(no wait) = %+v, %v", res, err)
	}
	res, err = c.Check(ctx, true)
	if err != nil || res.Outcome != "applied" || res.Version != "1.5.0" {
		t.Errorf("Check(wait) = %+v, %v", res, err)
	}
	if _, err := c.ApplyNow(ctx, "", true); !errors.Is(err, ErrNothingWaiting) {
		t.Errorf("ApplyNow with nothing waiting: %v, want ErrNothingWaiting", err)
	}
	f.mu.Lock()
	f.waiting = true
	f.mu.Unlock()
	if res, err := c.ApplyNow(ctx, "", true); err != nil || res.Outcome != "applied" {
		t.Errorf("ApplyNow = %+v, %v", res, err)
	}
	f.mu.Lock()
	if f.applyNows != 1 {
		t.Errorf("node saw %d apply-now, want 1", f.applyNows)
	}
	f.mu.Unlock()
	rb, err := c.Rollback(ctx, "", "bad build")
	if err != nil || rb.From != "1.4.2-7" || rb.To != "1.4.1-6" {
		t.Errorf("Rollback = %+v, %v", rb, err)
	}
	sr, err := c.Scrub(ctx)
	if err != nil || sr.Chunks != 3 || sr.Damaged != 1 || sr.Refetched != 1 || len(sr.DamagedCIDs) != 1 {
		t.Errorf("Scrub = %+v, %v", sr, err)
	}
	f.mu.Lock()
	waits, reasons := f.checks, f.rollbacks
	f.noPrevious = true
	f.mu.Unlock()
	if len(waits) != 2 || waits[0] || !waits[1] || len(reasons) != 1 || reasons[0] != "bad build" {
		t.Errorf("node saw checks %v and rollbacks %q", waits, reasons)
	}

	if _, err := c.Rollback(ctx, "", "again"); !errors.Is(err, ErrNoPrevious) {
		t.Errorf("Rollback with nothing to go back to: %v, want ErrNoPrevious", err)
	}
	var se *StatusError
	if _, err := c.Rollback(ctx, "", "again"); !errors.As(err, &se) || se.StatusCode != 409 {
		t.Errorf("Rollback error %v is not a StatusError 409", err)
	}
	if _, err := NewClient(srv.URL, "wrong").Status(ctx); !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnreachable) {
		t.Errorf("Status with a wrong token: %v, want ErrUnauthorized", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	// A port nobody listens on: bind one, then close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewClient(addr, "")
	if _, err := c.Status(ctx); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Status of a stopped node: %v, want ErrUnreachable", err)
	}
	if _, err := c.Check(ctx, true); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Check of a stopped node: %v, want ErrUnreachable", err)
	}

	// A node that accepts but never answers: the caller's deadline ends it.
	stall, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stall.Close() })
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := NewClient(stall.Addr().String(), "").Status(short); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Status of a stalled node: %v, want ErrUnreachable", err)
	}
}
