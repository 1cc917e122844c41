package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

// benchChunkSize is about the mean chunk of chunk.DefaultParams.
const benchChunkSize = 20 << 10

// chunkMaker makes distinct chunks from one random buffer by stamping a counter in it.
type chunkMaker struct {
	base []byte
	n    uint64
}

func (m *chunkMaker) next() (cid.Cid, []byte) {
	d := append([]byte(nil), m.base...)
	binary.LittleEndian.PutUint64(d, m.n)
	m.n++
	return chunk.Sum(d), d
}

func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, b.TempDir(), Options{})
	m := &chunkMaker{base: testChunk(1, benchChunkSize)}
	b.SetBytes(benchChunkSize)
	for b.Loop() {
		b.StopTimer()
		c, d := m.next()
		b.StartTimer()
		if err := s.Put(ctx, c, d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, b.TempDir(), Options{})
	m := &chunkMaker{base: testChunk(2, benchChunkSize)}
	var cids []cid.Cid
	for range 4096 { // 80 MiB
		c, d := m.next()
		if err := s.Put(ctx, c, d); err != nil {
			b.Fatal(err)
		}
		cids = append(cids, c)
	}
	b.SetBytes(benchChunkSize)
	i := 0
	for b.Loop() {
		if _, err := s.WriteTo(ctx, cids[i%len(cids)], io.Discard); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkMoveRelease puts then reads back 1 GiB of chunks, as a node does
// with a release, and reports the process's peak resident memory and how
// much of it is file pages (badger's memory-mapped files).
func BenchmarkMoveRelease(b *testing.B) {
	const size = 1 << 30
	ctx := context.Background()
	for b.Loop() {
		s := openStore(b, b.TempDir(), Options{})
		m := &chunkMaker{base: testChunk(3, benchChunkSize)}
		var cids []cid.Cid
		for range size / benchChunkSize {
			c, d := m.next()
			if err := s.Put(ctx, c, d); err != nil {
				b.Fatal(err)
			}
			cids = append(cids, c)
		}
		for _, c := range cids {
			if _, err := s.WriteTo(ctx, c, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(2 * size)
		st := procStatus(b)
		b.ReportMetric(float64(st["VmHWM"])/1024, "MiB-peak-rss")
		b.ReportMetric(float64(st["RssAnon"])/1024, "MiB-anon")
		b.ReportMetric(float64(st["RssFile"])/1024, "MiB-file")
		s.Close()
	}
}

// procStatus returns the kB fields of /proc/self/status.
func procStatus(tb testing.TB) map[string]int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Skip("no /proc/self/status")
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if fields := strings.Fields(v); ok && len(fields) == 2 && fields[1] == "kB" {
			out[k], _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return out
}
