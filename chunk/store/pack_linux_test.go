package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
	"github.com/patchmesh/patchmesh/chunk/fsutil/fsutiltest"
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

// residentMiB returns, for each MiB of the file at path, how many of its
// pages are in the page cache.
func residentMiB(t *testing.T, path string) []int {
	t.Helper()
	cached, err := fsutil.CachedPages(path)
	if err != nil {
		t.Fatal(err)
	}
	perMiB := (1 << 20) / os.Getpagesize()
	out := make([]int, (len(cached)+perMiB-1)/perMiB)
	for i, in := range cached {
		if in {
			out[i/perMiB]++
		}
	}
	return out
}

// TestPacksLeavePageCache: a pack's bytes leave the page cache once they are
// more than the bound behind the end, and so does the previous pack's tail;
// the last ones written stay, and every chunk still reads back.
func TestPacksLeavePageCache(t *testing.T) {
	dir := fsutiltest.DiskDir(t)
	s := openStore(t, dir, Options{})
	s.packs.limit = 32 << 20
	s.packs.behind = 8 << 20
	m := &chunkMaker{base: testChunk(34, 1<<20)}
	all := make(map[cid.Cid][]byte)
	for range 48 {
		for c, d := range putChunks(t, s, m, 1) {
			all[c] = d
		}
		// Written back before the next put, so the drops in it find clean
		// pages: the kernel's writeback, started by the store, takes its time.
		for _, p := range packFiles(t, dir) {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	// Pack 1 holds 32 MiB, pack 2 16 MiB. Writeback starts every 8 MiB: at
	// pack 2's 16 MiB, its first 8 MiB and all of pack 1 were dropped.
	first := residentMiB(t, filepath.Join(dir, packDir, packName(1)))
	second := residentMiB(t, filepath.Join(dir, packDir, packName(2)))
	t.Logf("pages cached per MiB: pack 1 %v, pack 2 %v", first, second)
	if len(first) != 32 || len(second) != 16 {
		t.Fatalf("packs of %d and %d MiB, want 32 and 16", len(first), len(second))
	}
	for i, n := range first {
		if n != 0 {
			t.Errorf("pack 1, MiB %d: %d pages cached, want none", i, n)
		}
	}
	for i, n := range second[:8] {
		if n != 0 {
			t.Errorf("pack 2, MiB %d: %d pages cached, want none", i, n)
		}
	}
	// What was written last is what peers and the assembly read back.
	if n := second[15]; n == 0 {
		t.Errorf("pack 2, last MiB: no page cached, want it kept")
	}
	checkChunks(t, s, all)
}

// TestConsumed: after a short write, writeAt goes on from the byte after the
// last one written, inside a buffer or at its end, past empty ones.
func TestConsumed(t *testing.T) {
	bufs := [][]byte{[]byte("abc"), {}, []byte("de"), []byte("fgh")}
	tests := []struct {
		n    int
		want string // the bytes left, buffers separated by "|"
	}{
		{0, "abc||de|fgh"},
		{1, "bc||de|fgh"},
		{3, "|de|fgh"},
		{4, "e|fgh"},
		{5, "fgh"},
		{7, "h"},
		{8, ""},
	}
	for _, tt := range tests {
		left := consumed(bufs, tt.n)
		var parts []string
		for _, b := range left {
			parts = append(parts, string(b))
		}
		if got := strings.Join(parts, "|"); got != tt.want {
			t.Errorf("consumed(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	if string(bufs[0]) != "abc" || len(bufs) != 4 {
		t.Errorf("consumed changed its argument: %q", bufs)
	}
}
