package mesh

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/chunk"
)

// TestCompressedTransfer moves a compressible chunk between two real libp2p
// hosts: it travels, and lands in the receiver's store, as a zstd frame.
func TestCompressedTransfer(t *testing.T) {
	w := newTestWAN(t)
	nodes := startSite(t, siteKey(t), w, 2, siteOpts{})
	holder, asker := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	raw := []byte(strings.Repeat("a chunk of a release that compresses well; ", 1000))
	c := chunk.Sum(raw)
	if err := holder.st.Put(ctx, c, raw); err != nil {
		t.Fatal(err)
	}
	stored, err := holder.st.GetWire(ctx, c)
	if err != nil || !chunk.IsFrame(stored) || len(stored) >= len(raw) {
		t.Fatalf("holder stored %d bytes for %d raw (%v): want a frame", len(stored), len(raw), err)
	}

	got, err := asker.m.request(ctx, holder.m.pid, c, flagStore)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.raw, raw) || !bytes.Equal(got.wire, stored) {
		t.Fatalf("received %d raw, %d wire bytes; want %d and %d", len(got.raw), len(got.wire), len(raw), len(stored))
	}
	if s := asker.m.Stats(); s.LANBytes != int64(len(stored)) {
		t.Errorf("LANBytes = %d, want the %d wire bytes", s.LANBytes, len(stored))
	}
	if servedChunks(holder.m, 1) != 1 {
		t.Errorf("holder served %d chunks, want 1", holder.m.Stats().ServedChunks)
	}
	if s := holder.m.Stats(); s.ServedBytes != int64(len(stored)) {
		t.Errorf("ServedBytes = %d, want the %d wire bytes", s.ServedBytes, len(stored))
	}

	// Through Fetch, the receiver stores the frame as it came.
	data, o, err := asker.m.Fetch(ctx, c)
	if err != nil || !bytes.Equal(data, raw) || o.Local() {
		t.Fatalf("Fetch: %d bytes from %+v, %v", len(data), o, err)
	}
	kept, err := asker.st.GetWire(ctx, c)
	if err != nil || !bytes.Equal(kept, stored) {
		t.Fatalf("receiver stored %d bytes, want the %d-byte frame (%v)", len(kept), len(stored), err)
	}
}

// TestCompressedFromWAN: a compressed repository chunk is stored and served
// to peers in the form it came in.
func TestCompressedFromWAN(t *testing.T) {
	w := newTestWAN(t)
	codec, err := chunk.NewCodec(chunk.CompressDefault)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(strings.Repeat("served by the repository as a zstd frame. ", 800))
	c := chunk.Sum(raw)
	wire := codec.Encode(raw)
	w.mu.Lock()
	w.chunks[c.String()] = wire
	w.mu.Unlock()
	nodes := startSite(t, siteKey(t), w, 2, siteOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range nodes {
		data, _, err := n.m.Fetch(ctx, c)
		if err != nil || !bytes.Equal(data, raw) {
			t.Fatalf("Fetch: %v", err)
		}
		kept, err := n.st.GetWire(ctx, c)
		if err != nil || !bytes.Equal(kept, wire) {
			t.Fatalf("stored %d bytes, want the %d-byte frame (%v)", len(kept), len(wire), err)
		}
	}
	var wan int64
	for _, n := range nodes {
		wan += n.d.wanBytes.Load()
	}
	if wan != int64(len(wire)) {
		t.Errorf("WAN bytes %d, want the frame's %d once", wan, len(wire))
	}
}
