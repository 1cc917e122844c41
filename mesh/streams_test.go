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
			if err := chunk.Verify(c, data.raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	get(0, 20)
	if n := chunkStreams(asker.m, holder.m.pid); n != 1 {
		t.Errorf("after 20 requests in a row: %d chunk streams open, want 1 kept", n)
	}
	if got := servedChunks(holder.m, 20); got != 20 {
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
	if got := servedChunks(holder.m, 40); got != 40 {
		t.Errorf("holder served %d chunks, want 40", got)
	}
}

// servedChunks returns m's served-chunk count once it reaches want, or after
// a few seconds: the server counts a chunk after writing it, so the asker can
// hold the bytes a moment before the count moves (seen on a loaded host).
func servedChunks(m *Mesh, want int64) int64 {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := m.Stats().ServedChunks
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}
