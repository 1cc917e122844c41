package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchmesh/patchmesh/chunk"
)

// chunkStreams counts the chunk streams m opened to p that are still open.
func chunkStreams(m *Mesh, p peer.ID) int {
	n := 0
	for _, c := range m.host.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == ProtocolID && s.Stat().Direction == network.DirOutbound {
				n++
			}
		}
	}
	return n
}

// TestStreamsKept: requests one after another to a peer share one kept
// stream; when the peer drops the kept streams, the next request opens a new
// one without counting the drop against the peer.
func TestStreamsKept(t *testing.T) {
	w := newTestWAN(t)
	cids, _ := w.add(t, 40, 32<<10)
	nodes := startSite(t, siteKey(t), w, 2, siteOpts{})
	holder, asker := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range cids {
		if _, _, err := holder.m.Fetch(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	get := func(from int, to int) {
		t.Helper()
		for _, c := range cids[from:to] {
			data, err := asker.m.request(ctx, holder.m.pid, c, flagStore)
			if err != nil {
				t.Fatalf("request %s: %v", c, err)
			}
			if err := chunk.Verify(c, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	get(0, 20)
	if n := chunkStreams(asker.m, holder.m.pid); n != 1 {
		t.Errorf("after 20 requests in a row: %d chunk streams open, want 1 kept", n)
	}
	if got := holder.m.Stats().ServedChunks; got != 20 {
		t.Errorf("holder served %d chunks, want 20", got)
	}

	// The holder drops every chunk stream, as it does when one stays idle.
	for _, c := range holder.m.host.Network().ConnsToPeer(asker.m.pid) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == ProtocolID && s.Stat().Direction == network.DirInbound {
				_ = s.Reset()
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // let the resets arrive: the asker's kept stream is stale
	get(20, 40)
	if got := asker.m.Stats().PeerErrors; got != 0 {
		t.Errorf("asker counted %d peer errors for streams the peer dropped", got)
	}
	if asker.m.penalized(holder.m.pid) {
		t.Errorf("holder penalized for dropping idle streams")
	}
	if got := holder.m.Stats().ServedChunks; got != 40 {
		t.Errorf("holder served %d chunks, want 40", got)
	}
}

// TestStreamAnswersOutOfOrder: many requests to one peer share one stream,
// and a request the peer must first fetch from its WAN does not hold up the
// answers it can give from its store.
func TestStreamAnswersOutOfOrder(t *testing.T) {
	w := newTestWAN(t)
	stored, _ := w.add(t, 40, 32<<10)
	slow, _ := w.add(t, 1, 32<<10)
	nodes := startSite(t, siteKey(t), w, 2, siteOpts{})
	holder, asker := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range stored {
		if _, _, err := holder.m.Fetch(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	w.mu.Lock()
	w.delay = time.Second // the holder's WAN fetch of slow[0] takes this long
	w.mu.Unlock()

	type result struct {
		slow bool
		err  error
	}
	results := make(chan result, len(stored)+1)
	go func() {
		data, err := asker.m.request(ctx, holder.m.pid, slow[0], flagTakeover)
		if err == nil {
			err = chunk.Verify(slow[0], data)
		}
		results <- result{true, err}
	}()
	time.Sleep(100 * time.Millisecond) // let the slow request go first
	for _, c := range stored {
		go func() {
			data, err := asker.m.request(ctx, holder.m.pid, c, flagStore)
			if err == nil {
				err = chunk.Verify(c, data)
			}
			results <- result{false, err}
		}()
	}
	for i := range len(stored) + 1 {
		r := <-results
		if r.err != nil {
			t.Fatalf("answer %d: %v", i, r.err)
		}
		if r.slow && i != len(stored) {
			t.Errorf("the WAN fetch was answered %d-th of %d: store answers waited for it", i+1, len(stored)+1)
		}
	}
	if n := chunkStreams(asker.m, holder.m.pid); n != 1 {
		t.Errorf("%d chunk streams open to the holder, want 1", n)
	}
	if got := holder.m.Stats().ServedChunks; got != int64(len(stored)+1) {
		t.Errorf("holder served %d chunks, want %d", got, len(stored)+1)
	}
}
