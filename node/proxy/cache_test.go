package proxy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk/store"
)

// TestQuotaEvictsLeastRecentlyUsed: with room for two objects, storing a third
// evicts the least recently used, whose chunks leave the store, and keeps
// the other, which is still answered without asking upstream.
func TestQuotaEvictsLeastRecentlyUsed(t *testing.T) {
	bodies := map[string][]byte{}
	for i, p := range []string{"/a", "/b", "/c"} {
		b := make([]byte, 200<<10)
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		bodies[p] = b
	}
	var gets atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(bodies[r.URL.Path])
	}))
	defer up.Close()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	host := up.Listener.Addr().String()
	c, err := New(Options{Allow: []string{host}, Store: st, MaxBytes: 450 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := httptest.NewServer(c)
	defer srv.Close()
	pu, _ := url.Parse(srv.URL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	get := func(p string) {
		t.Helper()
		resp, err := client.Get(up.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, bodies[p]) {
			t.Fatalf("GET %s: %d bytes, want %d", p, len(got), len(bodies[p]))
		}
	}
	get("/a")
	get("/b")
	get("/a") // a hit: /b is now the least recently used
	get("/c")
	if s := c.Stats(); s.Objects != 2 || s.Bytes > 450<<10 {
		t.Fatalf("after a third object: %d objects of %d bytes, want 2 within the quota", s.Objects, s.Bytes)
	}
	n := gets.Load()
	get("/a")
	if gets.Load() != n {
		t.Errorf("the recently used object was evicted")
	}
	get("/b")
	if gets.Load() != n+1 {
		t.Errorf("the least recently used object was not evicted")
	}
	chunks, _ := st.Usage()
	var held int64
	_ = st.ForEach(t.Context(), func(id cid.Cid, _ int64) error {
		if !c.Holds(id) {
			t.Errorf("chunk %s in the store belongs to no object", id)
		}
		held++
		return nil
	})
	if held != chunks {
		t.Errorf("walked %d of %d chunks", held, chunks)
	}
}
