package chunk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

const benchSize = 64 << 20

// BenchmarkChunker measures the gear loop alone.
func BenchmarkChunker(b *testing.B) {
	data := pseudoRandom(1, benchSize)
	p := DefaultParams()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		c, err := NewChunker(bytes.NewReader(data), p)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := c.Next(); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSum measures naming one default-sized chunk.
func BenchmarkSum(b *testing.B) {
	data := pseudoRandom(2, DefaultParams().Avg)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Sum(data)
	}
}

// chunkAndSum is what the publisher does to a file: cut it and name every chunk.
func chunkAndSum(tb testing.TB, data []byte, p Params) int {
	c, err := NewChunker(bytes.NewReader(data), p)
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for {
		ch, err := c.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			tb.Fatal(err)
		}
		Sum(ch)
		n++
	}
}

// BenchmarkPublish measures chunking plus naming, and reports its time as a
// ratio of plain SHA-256 over the same bytes, measured in the same run (the
// brief's target: within 2x sha256sum).
func BenchmarkPublish(b *testing.B) {
	data := pseudoRandom(3, benchSize)
	for _, p := range benchParams() {
		b.Run(name(p), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var base, ours time.Duration
			for b.Loop() {
				t0 := time.Now()
				sha256.Sum256(data)
				t1 := time.Now()
				chunkAndSum(b, data, p)
				base += t1.Sub(t0)
				ours += time.Since(t1)
			}
			b.ReportMetric(float64(ours)/float64(base), "x-sha256")
		})
	}
}

func benchParams() []Params {
	return []Params{
		{Min: 4 << 10, Avg: 8 << 10, Max: 32 << 10},
		{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10},
		{Min: 8 << 10, Avg: 16 << 10, Max: 64 << 10},
		{Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10},
		{Min: 8 << 10, Avg: 32 << 10, Max: 128 << 10},
		{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10},
	}
}

func name(p Params) string {
	return fmt.Sprintf("min%dK-avg%dK-max%dK", p.Min>>10, p.Avg>>10, p.Max>>10)
}

// manifestBytesPerChunk is what one chunk costs in a manifest (brief: ~75 bytes).
const manifestBytesPerChunk = 75

// scatteredEdit returns a copy of data with 1% of its size changed in 64
// places spread over it: even places get fresh bytes inserted, odd places
// overwritten. It is the brief's delta test.
func scatteredEdit(data []byte, seed uint64) []byte {
	const places = 64
	per := len(data) / 100 / places
	fresh := pseudoRandom(seed, per*places)
	jitter := pseudoRandom(seed+1, places*8)
	out := make([]byte, 0, len(data)+per*places/2)
	pos := 0
	for i := 0; i < places; i++ {
		span := len(data) / places
		j := int(uint64(jitter[i*8])|uint64(jitter[i*8+1])<<8|uint64(jitter[i*8+2])<<16) % (span - per)
		at := i*span + j
		out = append(out, data[pos:at]...)
		f := fresh[i*per : (i+1)*per]
		out = append(out, f...)
		if i%2 == 0 {
			pos = at // insertion: keep the old bytes after the new ones
		} else {
			pos = at + per // overwrite: skip as many old bytes
		}
	}
	return append(out, data[pos:]...)
}

// BenchmarkDedupe measures, for several Params, what a 1% scattered edit of a
// 256 MiB file costs: the bytes of new chunks, and with the manifest, as a
// percent of the file's size. Run with -benchtime=1x; it needs ~1 GiB of RAM.
func BenchmarkDedupe(b *testing.B) {
	const size = 256 << 20
	old := pseudoRandom(4, size)
	edited := scatteredEdit(old, 5)
	for _, p := range benchParams() {
		b.Run(name(p), func(b *testing.B) {
			have := map[[32]byte]bool{}
			eachChunk(b, old, p, func(c []byte) { have[sha256.Sum256(c)] = true })
			b.SetBytes(int64(len(edited)))
			b.ResetTimer()
			var newBytes, chunks int
			for b.Loop() {
				newBytes, chunks = 0, 0
				eachChunk(b, edited, p, func(c []byte) {
					chunks++
					if !have[sha256.Sum256(c)] {
						newBytes += len(c)
					}
				})
			}
			pct := 100 * float64(newBytes) / float64(size)
			man := 100 * float64(chunks*manifestBytesPerChunk) / float64(size)
			b.ReportMetric(pct, "%new")
			b.ReportMetric(man, "%manifest")
			b.ReportMetric(pct+man, "%wire")
			b.ReportMetric(float64(len(edited))/float64(chunks), "B/chunk")
		})
	}
}

func eachChunk(tb testing.TB, data []byte, p Params, fn func([]byte)) {
	c, err := NewChunker(bytes.NewReader(data), p)
	if err != nil {
		tb.Fatal(err)
	}
	for {
		ch, err := c.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			tb.Fatal(err)
		}
		fn(ch)
	}
}
