package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
)

// testParams cut small chunks so a tree of a few hundred KiB has hundreds of them.
var testParams = chunk.Params{Min: 256, Avg: 1024, Max: 4096}

// testNow is the fixed clock of most tests, so expiry cases are exact.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newKey(t testing.TB) manifest.PrivateKey {
	t.Helper()
	k, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRoot(t testing.TB, threshold int, keys ...manifest.PrivateKey) *manifest.TrustRoot {
	t.Helper()
	var pubs []manifest.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public())
	}
	r, err := manifest.NewTrustRoot(threshold, pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pseudoRandom returns n bytes that do not compress or repeat, reproducibly.
func pseudoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// text returns n bytes of line-structured text, as config files and scripts are.
func text(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	words := []string{"update", "chunk", "mesh", "node", "site", "release", "=", "true", "false", "# comment", "0x1f", "path/to/file"}
	var b bytes.Buffer
	for b.Len() < n {
		for range 1 + r.IntN(10) {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

// writeTree writes files (slash path -> content) under dir.
func writeTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for p, data := range files {
		name := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t testing.TB, target, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// scatterEdit changes about frac of data in places spots, half insertions and
// half overwrites, as the brief's delta test does.
func scatterEdit(data []byte, seed uint64, places int, frac float64) []byte {
	r := rand.New(rand.NewPCG(seed, 11))
	per := int(float64(len(data))*frac) / places
	if per < 1 {
		per = 1
	}
	stride := len(data) / places
	out := make([]byte, 0, len(data)+places*per)
	for i := range places {
		seg := data[i*stride : (i+1)*stride]
		if i == places-1 {
			seg = data[i*stride:]
		}
		at := r.IntN(len(seg) - per)
		patch := pseudoRandom(seed+uint64(i)+1000, per)
		out = append(out, seg[:at]...)
		if i%2 == 0 {
			out = append(out, patch...) // insertion
			out = append(out, seg[at:]...)
		} else {
			out = append(out, patch...) // overwrite
			out = append(out, seg[at+per:]...)
		}
	}
	return out
}

// publishOpts are the options of most tests: one key, small chunks, fixed clock.
func publishOpts(version string, keys ...manifest.PrivateKey) PublishOptions {
	return PublishOptions{
		Channel: "stable", Version: version, Keys: keys, Params: testParams,
		Now: func() time.Time { return testNow },
	}
}

func mustPublish(t testing.TB, repoDir, src string, opts PublishOptions) *Summary {
	t.Helper()
	sum, err := Publish(context.Background(), repoDir, src, opts)
	if err != nil {
		t.Fatalf("publish %s: %v", opts.Version, err)
	}
	return sum
}

// assemble rebuilds every regular file of m from the repository's chunk files,
// as a node does, and checks each against its whole-file digest.
func assemble(t testing.TB, repoDir string, m *manifest.Manifest) map[string][]byte {
	t.Helper()
	codec, err := chunk.NewCodec(chunk.CompressOff)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, f := range m.Files {
		if !f.IsRegular() {
			continue
		}
		var b bytes.Buffer
		for _, c := range f.Chunks {
			data, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(ChunkPath(c.CID))))
			if err != nil {
				t.Fatalf("file %s: %v", f.Path, err)
			}
			if data, err = codec.Decode(c.CID, data, int(c.Size)); err != nil {
				t.Fatalf("file %s: %v", f.Path, err)
			}
			b.Write(data)
		}
		d := sha256.Sum256(b.Bytes())
		if hex.EncodeToString(d[:]) != f.SHA256 {
			t.Fatalf("file %s: assembled bytes do not match the manifest's digest", f.Path)
		}
		out[f.Path] = b.Bytes()
	}
	return out
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publishedRelease publishes a release of 16 files into a fresh repository
// and returns the repository and the release's verified manifest.
func publishedRelease(t *testing.T) (string, *manifest.Manifest) {
	t.Helper()
	key := newKey(t)
	repoDir := t.TempDir()
	src, _ := releaseTree(t, 16)
	mustPublish(t, repoDir, src, publishOpts("1.0.0", key))
	_, _, m, _, err := LoadRelease(context.Background(), DirReader(repoDir), newRoot(t, 1, key), "stable", testNow)
	if err != nil {
		t.Fatal(err)
	}
	return repoDir, m
}
