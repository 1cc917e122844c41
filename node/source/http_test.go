package source

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// TestHTTPKeepsConns: an http source keeps as many connections alive as
// Options.Conns, so a second round of that many requests at once opens none.
func TestHTTPKeepsConns(t *testing.T) {
	tests := []struct {
		name    string
		conns   int // Options.Conns; 0: the default
		at      int // requests at once, in each round
		wantNew int // connections opened by the second round
	}{
		{"more than the default", 100, 100, 0},
		{"the default", 0, 64, 0},
		{"past the default", 0, 80, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opened atomic.Int64
			var arrived sync.WaitGroup
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Hold every request of a round until all have arrived, so
				// the round needs that many connections at once.
				arrived.Done()
				arrived.Wait()
				w.Write([]byte("chunk"))
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					opened.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			src, err := New(srv.URL, Options{Conns: tt.conns})
			if err != nil {
				t.Fatal(err)
			}
			defer src.(io.Closer).Close()
			round := func() int64 {
				before := opened.Load()
				arrived.Add(tt.at)
				var wg sync.WaitGroup
				for range tt.at {
					wg.Go(func() {
						r, err := src.Open(context.Background(), "chunks/x", 1<<10)
						if err != nil {
							t.Error(err)
							return
						}
						io.Copy(io.Discard, r)
						r.Close()
					})
				}
				wg.Wait()
				return opened.Load() - before
			}
			if n := round(); n != int64(tt.at) {
				t.Fatalf("first round opened %d connections for %d requests at once", n, tt.at)
			}
			if n := round(); n != int64(tt.wantNew) {
				t.Errorf("second round opened %d connections, want %d", n, tt.wantNew)
			}
		})
	}
}
