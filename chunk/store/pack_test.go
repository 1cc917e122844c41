package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

// putChunks puts n chunks of size bytes made by m and returns them.
func putChunks(t *testing.T, s *Store, m *chunkMaker, n int) map[cid.Cid][]byte {
	t.Helper()
	out := make(map[cid.Cid][]byte, n)
	for range n {
		c, d := m.next()
		if err := s.Put(context.Background(), c, d); err != nil {
			t.Fatal(err)
		}
		out[c] = d
	}
	return out
}

func checkChunks(t *testing.T, s *Store, want map[cid.Cid][]byte) {
	t.Helper()
	for c, d := range want {
		got, err := s.Get(context.Background(), c)
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("Get(%s) = %d bytes, %v; want the %d bytes put", c, len(got), err, len(d))
		}
	}
}

func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, packDir, "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestPacksKeepChunksOutOfBadger: chunk bytes go to packs, not to badger's
// value log; reopened, the store reads them and appends after them.
func TestPacksKeepChunksOutOfBadger(t *testing.T) {
	dir := t.TempDir()
	m := &chunkMaker{base: testChunk(31, 20<<10)}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := putChunks(t, s, m, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for c, d := range first {
		for _, p := range vlogs(t, dir) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, d[:4096]) {
				t.Fatalf("chunk %s is in the value log %s", c, filepath.Base(p))
			}
		}
		break
	}
	before := packFiles(t, dir)
	if len(before) != 1 {
		t.Fatalf("packs %v, want one", before)
	}
	fi, err := os.Stat(before[0])
	if err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, Options{})
	checkChunks(t, s, first)
	second := putChunks(t, s, m, 50)
	checkChunks(t, s, first)
	checkChunks(t, s, second)
	if n, _ := s.Usage(); n != 100 {
		t.Errorf("Usage = %d chunks, want 100", n)
	}
	old, err := os.ReadFile(before[0])
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(old)) != fi.Size()+50*20<<10 {
		t.Errorf("pack is %d bytes after 50 more chunks of 20 KiB; want %d", len(old), fi.Size()+50*20<<10)
	}
}

// threePacks opens a store whose packs hold 1 MiB, and fills three of them
// with 16 chunks of 64 KiB each, made from seed; order lists the chunks as
// put.
func threePacks(t *testing.T, seed int) (s *Store, dir string, order []cid.Cid, all map[cid.Cid][]byte) {
	t.Helper()
	dir = t.TempDir()
	s = openStore(t, dir, Options{})
	s.packs.limit = 1 << 20
	m := &chunkMaker{base: testChunk(seed, 64<<10)}
	all = make(map[cid.Cid][]byte)
	for range 48 {
		c, d := m.next()
		if err := s.Put(context.Background(), c, d); err != nil {
			t.Fatal(err)
		}
		order = append(order, c)
		all[c] = d
	}
	return s, dir, order, all
}

// TestPacksRotateAndGC: a full pack is followed by a new one; once none of a
// pack's chunks is held, GC removes it, and only it.
func TestPacksRotateAndGC(t *testing.T) {
	ctx := context.Background()
	s, dir, order, all := threePacks(t, 32)
	if n := len(packFiles(t, dir)); n != 3 {
		t.Fatalf("%d packs for 3 MiB with 1 MiB packs, want 3", n)
	}
	for _, c := range order[:16] { // the first pack's
		if err := s.Delete(ctx, c); err != nil {
			t.Fatal(err)
		}
		delete(all, c)
	}
	if err := s.Delete(ctx, order[20]); err != nil { // one of the second's
		t.Fatal(err)
	}
	delete(all, order[20])
	if err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	packs := packFiles(t, dir)
	if len(packs) != 2 || filepath.Base(packs[0]) != packName(2) {
		t.Fatalf("packs after GC %v, want the second and third", packs)
	}
	checkChunks(t, s, all)
	if n, _ := s.Usage(); n != 31 {
		t.Errorf("Usage = %d chunks, want 31", n)
	}
}

// TestStoreBeforePacksStillRead: a store whose chunks are badger values, as
// every store was before packs, is read as it is; new chunks go to packs,
// and the old ones are deleted and collected as before.
func TestStoreBeforePacksStillRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.legacy = true
	m := &chunkMaker{base: testChunk(34, 20<<10)}
	old := putChunks(t, s, m, 20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(packFiles(t, dir)); n != 1 {
		t.Fatalf("%d packs, want one, empty", n)
	}
	s = openStore(t, dir, Options{})
	checkChunks(t, s, old)
	fresh := putChunks(t, s, m, 20)
	checkChunks(t, s, fresh)
	for c := range old {
		if err := s.Delete(ctx, c); err != nil {
			t.Fatal(err)
		}
		if has, _ := s.Has(ctx, c); has {
			t.Fatalf("Has(%s) after Delete", c)
		}
	}
	if err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	checkChunks(t, s, fresh)
	if n, b := s.Usage(); n != 20 || b != 20*20<<10 {
		t.Errorf("Usage = %d chunks, %d bytes; want 20, %d", n, b, 20*20<<10)
	}
}

// TestPacksCompact: GC moves the live chunks of a closed pack that is mostly
// dead to the current pack and removes it; a pack mostly alive stays. That
// is how space comes back where holes cannot be punched.
func TestPacksCompact(t *testing.T) {
	ctx := context.Background()
	s, dir, order, all := threePacks(t, 35)
	// The first pack 3/4 dead, the second 1/4.
	for _, i := range append([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 16, 17, 18, 19) {
		if err := s.Delete(ctx, order[i]); err != nil {
			t.Fatal(err)
		}
		delete(all, order[i])
	}
	if err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	packs := packFiles(t, dir)
	if len(packs) != 3 || filepath.Base(packs[0]) != packName(2) {
		t.Fatalf("packs after GC %v, want the second, the third and a fourth", packs)
	}
	checkChunks(t, s, all)
	if n, b := s.Usage(); n != 32 || b != 32*64<<10 {
		t.Errorf("Usage = %d chunks, %d bytes; want 32, %d", n, b, 32*64<<10)
	}
	// Reopened, the moved chunks are where their records say.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{})
	checkChunks(t, s, all)
}

// TestPackWriteAt: writeAt lays its buffers back to back, empty ones and
// more than one call takes included.
func TestPackWriteAt(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var bufs [][]byte
	var want []byte
	for i := range 2500 {
		b := testChunk(i, i%7*3)
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	if err := writeAt(f, bufs, 5); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[5:], want) || len(got) != 5+len(want) {
		t.Errorf("file holds %d bytes after offset 5, want the %d bytes of %d buffers in order", len(got)-5, len(want), len(bufs))
	}
}

// TestPacksCompactCompressed: GC moves chunks stored as zstd frames as they
// are, and they read back whole, before and after the store reopens. Chunks
// stored before checksums get one as they move.
func TestPacksCompactCompressed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	s.packs.limit = 1 << 20
	s.noSum = true
	var order []cid.Cid
	all := make(map[cid.Cid][]byte)
	for i := range 200 {
		d := append(testChunk(40+i, 20000), make([]byte, 20000)...) // compresses to about half
		c := chunk.Sum(d)
		if err := s.PutVerifiedWire(ctx, c, d, s.codec.Encode(d)); err != nil {
			t.Fatal(err)
		}
		order = append(order, c)
		all[c] = d
	}
	before := len(packFiles(t, dir))
	// Stored raw, the 8 MB of chunks would take 8 packs.
	if before < 3 || before > 5 {
		t.Fatalf("%d packs for 200 chunks of ~20 KB compressed in 1 MiB packs, want 3 to 5", before)
	}
	for _, c := range order[:150] {
		if err := s.Delete(ctx, c); err != nil {
			t.Fatal(err)
		}
		delete(all, c)
	}
	s.noSum = false
	if n := summedRecords(t, s); n != 0 {
		t.Fatalf("%d records with checksums before GC, want none", n)
	}
	if err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if after := len(packFiles(t, dir)); after >= before {
		t.Errorf("%d packs after GC, as many as the %d before: nothing compacted", after, before)
	}
	if n := summedRecords(t, s); n == 0 {
		t.Errorf("no record has a checksum after GC moved chunks")
	}
	checkChunks(t, s, all)
	if n, b := s.Usage(); n != 50 || b != 50*40000 {
		t.Errorf("Usage = %d chunks, %d bytes; want 50, %d", n, b, 50*40000)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{})
	checkChunks(t, s, all)
}

// summedRecords counts the pack records with checksums.
func summedRecords(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.packRecords(context.Background(), func(_ cid.Cid, r record) {
		if r.summed() {
			n++
		}
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
