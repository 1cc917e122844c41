package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
)

// TestChunkFileReadsAndSeeks: a file read chunk by chunk, from any offset,
// gives the file's bytes, fetching each chunk only when a read reaches it.
func TestChunkFileReadsAndSeeks(t *testing.T) {
	var whole []byte
	var refs []manifest.ChunkRef
	byCID := map[cid.Cid][]byte{}
	for i, n := range []int{1000, 1, 4096, 777} {
		b := bytes.Repeat([]byte{byte('a' + i)}, n)
		c := chunk.Sum(b)
		refs = append(refs, manifest.ChunkRef{CID: c, Size: uint32(n)})
		byCID[c] = b
		whole = append(whole, b...)
	}
	fetched := 0
	fetch := func(_ context.Context, c cid.Cid) ([]byte, error) {
		fetched++
		b, ok := byCID[c]
		if !ok {
			return nil, fmt.Errorf("no chunk %s", c)
		}
		return b, nil
	}
	tests := []struct {
		off, n int64
	}{{0, int64(len(whole))}, {0, 10}, {999, 3}, {1000, 1}, {1001, 4800}, {int64(len(whole)) - 1, 1}, {500, 4000}}
	for _, tt := range tests {
		f := newChunkFile(context.Background(), refs, fetch)
		if _, err := f.Seek(tt.off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.LimitReader(f, tt.n))
		if err != nil {
			t.Fatalf("read %d at %d: %v", tt.n, tt.off, err)
		}
		if want := whole[tt.off : tt.off+tt.n]; !bytes.Equal(got, want) {
			t.Errorf("read %d at %d: got %d bytes not matching the file", tt.n, tt.off, len(got))
		}
	}
	f := newChunkFile(context.Background(), refs, fetch)
	if end, _ := f.Seek(0, io.SeekEnd); end != int64(len(whole)) {
		t.Errorf("size %d, want %d", end, len(whole))
	}
	fetched = 0
	f = newChunkFile(context.Background(), refs, fetch)
	if _, err := io.ReadAll(io.LimitReader(f, 1000)); err != nil || fetched != 1 {
		t.Errorf("reading the first chunk fetched %d chunks (%v), want 1", fetched, err)
	}
	// A chunk of another size than the manifest's is an error, not data.
	bad := newChunkFile(context.Background(), []manifest.ChunkRef{{CID: refs[0].CID, Size: 999}}, fetch)
	if _, err := io.ReadAll(bad); err == nil {
		t.Error("a chunk longer than the manifest says was read")
	}
}
