package store

import (
	"context"
	"syscall"
	"testing"

	"github.com/ipfs/go-cid"
)

// TestDeleteFreesPackSpace: a deleted chunk's blocks are given back at once
// where the file system punches holes, and the chunks beside it are intact.
func TestDeleteFreesPackSpace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	m := &chunkMaker{base: testChunk(33, 1<<20)}
	var cids []cid.Cid
	all := make(map[cid.Cid][]byte)
	for range 3 {
		for c, d := range putChunks(t, s, m, 1) {
			cids = append(cids, c)
			all[c] = d
		}
	}
	blocks := func() int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(packFiles(t, dir)[0], &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	before := blocks()
	if err := s.Delete(ctx, cids[1]); err != nil {
		t.Fatal(err)
	}
	delete(all, cids[1])
	after := blocks()
	t.Logf("pack blocks: %d bytes before, %d after deleting a 1 MiB chunk", before, after)
	if before-after < 1<<20-2*8192 {
		t.Errorf("deleting a 1 MiB chunk freed %d bytes of the pack, want about 1 MiB", before-after)
	}
	checkChunks(t, s, all)
}
