package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

// vlogs returns the store's value-log files, oldest first.
func vlogs(t *testing.T, dir string) []string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no value log in %s: %v", dir, err)
	}
	return logs
}

// storedFiles returns the files that hold chunk bytes: the packs, then
// badger's value logs (chunks stored before packs), oldest first.
func storedFiles(t *testing.T, dir string) []string {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(dir, packDir, "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return append(packs, vlogs(t, dir)...)
}

// flipStored flips 8 bytes of the file where want is stored, as a bad
// sector would, with the store closed.
func flipStored(t *testing.T, dir string, want []byte) {
	t.Helper()
	for _, p := range storedFiles(t, dir) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(data, want)
		if i < 0 {
			continue
		}
		for k := range 8 {
			data[i+len(want)/2+k] ^= 0xff
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("stored bytes not found in the store's files")
}

// truncateStored cuts the file holding want in the middle of it: for a pack,
// the newest, or the newest value log.
func truncateStored(t *testing.T, dir string, want []byte) {
	t.Helper()
	files := storedFiles(t, dir)
	for i := len(files) - 1; i >= 0; i-- {
		p := files[i]
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		k := bytes.Index(data, want)
		if k < 0 {
			continue
		}
		if err := os.Truncate(p, int64(k+len(want)/2)); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("stored bytes not found in the store's files")
}

// readers are the ways the store hands out a chunk.
var readers = []struct {
	name string
	read func(ctx context.Context, s *Store, c cid.Cid) ([]byte, error)
}{
	{"Get", func(ctx context.Context, s *Store, c cid.Cid) ([]byte, error) { return s.Get(ctx, c) }},
	{"GetWire", func(ctx context.Context, s *Store, c cid.Cid) ([]byte, error) {
		wire, err := s.GetWire(ctx, c)
		if err != nil {
			return nil, err
		}
		return s.codec.Decode(c, wire, 0)
	}},
	{"AppendWire", func(ctx context.Context, s *Store, c cid.Cid) ([]byte, error) {
		buf := append(make([]byte, 0, 3+chunk.MaxSize), "hdr"...)
		out, err := s.AppendWire(ctx, c, buf)
		if err != nil {
			if string(buf) != "hdr" {
				return nil, errors.New("AppendWire changed dst's contents on an error")
			}
			return nil, err
		}
		if string(out[:3]) != "hdr" {
			return nil, errors.New("AppendWire changed dst's contents")
		}
		return s.codec.Decode(c, out[3:], 0)
	}},
	{"WriteTo", func(ctx context.Context, s *Store, c cid.Cid) ([]byte, error) {
		var b bytes.Buffer
		n, err := s.WriteTo(ctx, c, &b)
		if err != nil && n != 0 {
			return nil, errors.New("WriteTo wrote bytes of a chunk it refused")
		}
		return b.Bytes(), err
	}},
}

// TestDamagedChunkIsDroppedNotReturned: bytes damaged on disk are never
// handed out by any read; the chunk is dropped, reported, and can be put
// again; the chunks around it read as before.
func TestDamagedChunkIsDroppedNotReturned(t *testing.T) {
	damages := []struct {
		name       string
		compressed bool
		legacy     bool // stored as badger values, as before packs
		noSum      bool // in packs, without checksums, as before them
		damage     func(t *testing.T, dir string, stored []byte)
	}{
		{"flipped raw", false, false, false, flipStored},
		{"flipped zstd", true, false, false, flipStored},
		{"pack truncated", false, false, false, truncateStored},
		{"flipped raw without checksum", false, false, true, flipStored},
		{"flipped zstd without checksum", true, false, true, flipStored},
		{"flipped raw badger value", false, true, false, flipStored},
		{"flipped zstd badger value", true, true, false, flipStored},
		{"newest value log truncated", false, true, false, truncateStored},
	}
	for _, d := range damages {
		for _, r := range readers {
			t.Run(d.name+"/"+r.name, func(t *testing.T) {
				ctx := context.Background()
				dir := t.TempDir()
				chunkFor := func(i int) []byte {
					if d.compressed {
						// Half random, half zeros: compressed, and too big for the key tables.
						return append(testChunk(100+i, 10000), make([]byte, 10000)...)
					}
					return testChunk(100+i, 20000)
				}
				var cids []cid.Cid
				s, err := Open(dir, Options{})
				if err != nil {
					t.Fatal(err)
				}
				s.legacy, s.noSum = d.legacy, d.noSum
				for i := range 3 {
					data := chunkFor(i)
					c := chunk.Sum(data)
					if err := s.Put(ctx, c, data); err != nil {
						t.Fatal(err)
					}
					cids = append(cids, c)
				}
				// The last chunk is damaged: so a truncation spares the others.
				bad := cids[2]
				stored, err := s.GetWire(ctx, bad)
				if err != nil {
					t.Fatal(err)
				}
				if chunk.IsFrame(stored) != d.compressed {
					t.Fatalf("stored compressed = %v, want %v", chunk.IsFrame(stored), d.compressed)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				d.damage(t, dir, stored)

				var mu sync.Mutex
				var told []cid.Cid
				s = openStore(t, dir, Options{Damaged: func(c cid.Cid, err error) {
					mu.Lock()
					told = append(told, c)
					mu.Unlock()
				}})
				got, err := r.read(ctx, s, bad)
				if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrNotFound) {
					t.Fatalf("%s of the damaged chunk = %d bytes, %v; want an error wrapping ErrCorrupt and ErrNotFound", r.name, len(got), err)
				}
				if has, err := s.Has(ctx, bad); has || err != nil {
					t.Errorf("Has(damaged) after the read = %v, %v; want dropped", has, err)
				}
				if n, _ := s.Usage(); n != 2 {
					t.Errorf("Usage = %d chunks, want 2", n)
				}
				if got := s.Integrity().Dropped; got != 1 {
					t.Errorf("Integrity().Dropped = %d, want 1", got)
				}
				if len(told) != 1 || told[0] != bad {
					t.Errorf("Damaged told of %v, want [%s]", told, bad)
				}
				for i, c := range cids[:2] {
					if got, err := r.read(ctx, s, c); err != nil || !bytes.Equal(got, chunkFor(i)) {
						t.Errorf("%s of undamaged chunk %d = %d bytes, %v", r.name, i, len(got), err)
					}
				}
				// Fetched again, it is stored and read as any other.
				if err := s.Put(ctx, bad, chunkFor(2)); err != nil {
					t.Fatal(err)
				}
				if got, err := r.read(ctx, s, bad); err != nil || !bytes.Equal(got, chunkFor(2)) {
					t.Errorf("%s after putting it again = %d bytes, %v", r.name, len(got), err)
				}
			})
		}
	}
}

// TestScrubDropsDamagedChunks: a scrub reads every chunk, drops exactly the
// damaged ones and counts what it read; a second pass finds nothing.
func TestScrubDropsDamagedChunks(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "packs", true: "badger values"}[legacy], func(t *testing.T) { testScrubDropsDamagedChunks(t, legacy) })
	}
}

func testScrubDropsDamagedChunks(t *testing.T, legacy bool) {
	ctx := context.Background()
	dir := t.TempDir()
	// Small value-log files, and the damage in the oldest: badger cuts the
	// newest file at its first damaged entry when it opens, which would take
	// every later chunk with it (that case is in the test above).
	opts := Options{ValueLogFileSize: 1 << 20}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.legacy = legacy
	var cids []cid.Cid
	var total int64
	data := func(i int) []byte { return testChunk(500+i, 100<<10+i) }
	for i := range 30 {
		c := chunk.Sum(data(i))
		if err := s.Put(ctx, c, data(i)); err != nil {
			t.Fatal(err)
		}
		cids = append(cids, c)
		total += int64(len(data(i)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(vlogs(t, dir)); legacy && n < 3 {
		t.Fatalf("%d value-log files, want at least 3", n)
	}
	bad := map[cid.Cid]bool{cids[2]: true, cids[5]: true}
	flipStored(t, dir, data(2))
	flipStored(t, dir, data(5))

	s = openStore(t, dir, opts)
	res, err := s.Scrub(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks != 30 || res.Bytes != total || res.Damaged != 2 {
		t.Errorf("Scrub = %d chunks, %d bytes, %d damaged; want 30, %d, 2", res.Chunks, res.Bytes, res.Damaged, total)
	}
	for _, c := range res.DamagedCIDs {
		if !bad[c] {
			t.Errorf("Scrub dropped %s, which was not damaged", c)
		}
	}
	if len(res.DamagedCIDs) != 2 {
		t.Errorf("Scrub listed %v, want the 2 damaged chunks", res.DamagedCIDs)
	}
	for _, c := range cids {
		if has, _ := s.Has(ctx, c); has == bad[c] {
			t.Errorf("Has(%s) = %v after the scrub; damaged: %v", c, has, bad[c])
		}
	}
	again, err := s.Scrub(ctx, 0)
	if err != nil || again.Chunks != 28 || again.Damaged != 0 {
		t.Errorf("second Scrub = %+v, %v; want 28 chunks, none damaged", again, err)
	}
	want := Integrity{Dropped: 2, ScrubChunks: 58, ScrubBytes: res.Bytes + again.Bytes, ScrubPasses: 2}
	if got := s.Integrity(); got != want {
		t.Errorf("Integrity = %+v, want %+v", got, want)
	}
}

// TestScrubPacedStopsOnCancel: a scrub held back by its rate ends as soon
// as its context does.
func TestScrubPacedStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := openStore(t, t.TempDir(), Options{})
	for i := range 3 {
		data := testChunk(900+i, 4096)
		if err := s.Put(ctx, chunk.Sum(data), data); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Scrub(ctx, 1) // one byte a second: waits after the first chunk
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Scrub = %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a cancelled scrub did not return")
	}
}
