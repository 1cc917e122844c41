package repo

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

// benchTreeMiB is the size of the benchmarks' tree: PATCHMESH_BENCH_MIB, or 128.
func benchTreeMiB(b *testing.B) int {
	if s := os.Getenv("PATCHMESH_BENCH_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 4 {
			b.Fatalf("PATCHMESH_BENCH_MIB=%q: want a number of MiB, at least 4", s)
		}
		return n
	}
	return 128
}

// benchTree writes a release of about mib MiB: a few large binaries, some
// smaller ones and many text files, as an application's build output is.
func benchTree(b testing.TB, dir string, mib int) map[string][]byte {
	total := mib << 20
	files := make(map[string][]byte)
	seed := uint64(100)
	add := func(name string, data []byte) {
		files[name] = data
		total -= len(data)
		seed++
	}
	for i := 0; total > 0 && i < 4; i++ {
		add(fmt.Sprintf("bin/large-%d", i), pseudoRandom(seed, min(total, mib<<20*15/100)))
	}
	for i := 0; total > 0 && i < 40; i++ {
		add(fmt.Sprintf("lib/module-%02d.so", i), pseudoRandom(seed, min(total, mib<<20/200)))
	}
	for i := 0; total > 0; i++ {
		add(fmt.Sprintf("share/doc/%03d/page-%d.txt", i/50, i), text(seed, min(total, 64<<10)))
	}
	writeTree(b, dir, files)
	return files
}

// sha256Tree streams every file of the tree through SHA-256, one file at a time,
// as sha256sum does: the baseline of the brief's publishing target.
func sha256Tree(b *testing.B, dir string) {
	buf := make([]byte, 128<<10)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		_, err = io.CopyBuffer(h, f, buf)
		h.Sum(nil)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPublish publishes a mixed tree into a fresh repository (every chunk
// new, written and synced) and reports the time as a ratio of SHA-256 over the
// same files measured in the same run ("x-sha256"; the brief's target is 2).
func BenchmarkPublish(b *testing.B) {
	key := newKey(b)
	src := b.TempDir()
	benchTree(b, src, benchTreeMiB(b))
	entries, _, total, err := scanTree(src)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	sha256Tree(b, src) // warm the page cache for both sides
	var base, ours time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		t0 := time.Now()
		sha256Tree(b, src)
		base += time.Since(t0)
		repoDir := b.TempDir()
		b.StartTimer()

		t1 := time.Now()
		opts := PublishOptions{Channel: "stable", Version: "1.0.0", Keys: []manifest.PrivateKey{key}}
		if _, err := Publish(context.Background(), repoDir, src, opts); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(t1)

		b.StopTimer()
		os.RemoveAll(repoDir)
		b.StartTimer()
	}
	b.ReportMetric(float64(ours)/float64(base), "x-sha256")
	b.ReportMetric(float64(len(entries)), "files")
}

// BenchmarkPublishDelta publishes a tree, edits 1% of its bytes in 64 scattered
// places (half insertions, half overwrites) and publishes again. It reports the
// second publish's new chunk bytes and manifest size in percent of the tree.
func BenchmarkPublishDelta(b *testing.B) {
	key := newKey(b)
	mib := benchTreeMiB(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		src, repoDir := b.TempDir(), b.TempDir()
		files := benchTree(b, src, mib)
		opts := PublishOptions{Channel: "stable", Version: "1.0.0", Keys: []manifest.PrivateKey{key}}
		if _, err := Publish(context.Background(), repoDir, src, opts); err != nil {
			b.Fatal(err)
		}
		// Spread 64 edits over the binaries in proportion to their size.
		var binBytes int
		for name, data := range files {
			if filepath.Ext(name) != ".txt" {
				binBytes += len(data)
			}
		}
		treeBytes := int64(mib << 20)
		places := 0
		for name, data := range files {
			if filepath.Ext(name) == ".txt" {
				continue
			}
			n := max(1, 64*len(data)/binBytes)
			places += n
			edited := scatterEdit(data, uint64(len(name)), n, float64(treeBytes)/100/float64(binBytes))
			writeTree(b, src, map[string][]byte{name: edited})
		}
		b.StartTimer()
		opts.Version = "1.0.1"
		sum, err := Publish(context.Background(), repoDir, src, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(100*float64(sum.NewBytes)/float64(sum.Bytes), "%new")
		b.ReportMetric(100*float64(sum.ManifestBytes)/float64(sum.Bytes), "%manifest")
		b.ReportMetric(100*float64(sum.NewBytes+sum.ManifestBytes)/float64(sum.Bytes), "%wire")
		b.ReportMetric(float64(places), "edits")
	}
	b.SetBytes(int64(mib << 20))
}
