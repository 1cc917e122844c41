package chunk

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchCorpus is what BenchmarkCodec compresses: the regular files of
// $PATCHMESH_BENCH_DIR (release binaries, say an unpacked Debian package's
// usr/lib/postgresql/15/bin), else text-like bytes.
func benchCorpus(b *testing.B) []byte {
	dir := os.Getenv("PATCHMESH_BENCH_DIR")
	if dir == "" {
		return compressible(16 << 20)
	}
	var all []byte
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		all = append(all, data...)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return all
}

// BenchmarkCodec encodes the corpus's chunks at each level and reports the
// wire size as a percentage of the raw size, and encoding time as a ratio of
// SHA-256 over the same bytes (publish must stay near 1.5x sha256sum).
func BenchmarkCodec(b *testing.B) {
	data := benchCorpus(b)
	chunks := chunkAll(b, bytes.NewReader(data), DefaultParams())
	for _, level := range []Compression{CompressOff, CompressFastest, CompressBetter, CompressBest} {
		b.Run(level.String(), func(b *testing.B) {
			k := newTestCodec(b, level)
			b.SetBytes(int64(len(data)))
			var wire int
			var base, enc, dec time.Duration
			for b.Loop() {
				wire = 0
				t0 := time.Now()
				sha256.Sum256(data)
				t1 := time.Now()
				wires := make([][]byte, len(chunks))
				for i, c := range chunks {
					wires[i] = k.Encode(c)
					wire += len(wires[i])
				}
				t2 := time.Now()
				for i, w := range wires {
					if IsFrame(w) {
						if _, err := k.Decompress(nil, w, len(chunks[i])); err != nil {
							b.Fatal(err)
						}
					}
				}
				base += t1.Sub(t0)
				enc += t2.Sub(t1)
				dec += time.Since(t2)
			}
			b.ReportMetric(100*float64(wire)/float64(len(data)), "%wire")
			b.ReportMetric(float64(enc)/float64(base), "x-sha256-encode")
			b.ReportMetric(float64(dec)/float64(base), "x-sha256-decode")
		})
	}
}
