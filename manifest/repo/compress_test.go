package repo

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
)

// chunkFileBytes returns the total size of m's distinct chunk files and of
// the chunks they hold.
func chunkFileBytes(t *testing.T, repoDir string, m *manifest.Manifest) (files, raw int64) {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			p := ChunkPath(c.CID)
			if seen[p] {
				continue
			}
			seen[p] = true
			st, err := os.Stat(filepath.Join(repoDir, filepath.FromSlash(p)))
			if err != nil {
				t.Fatal(err)
			}
			files += st.Size()
			raw += int64(c.Size)
		}
	}
	return files, raw
}

func TestPublishCompressesChunkFiles(t *testing.T) {
	key := newKey(t)
	root := newRoot(t, 1, key)
	files := map[string][]byte{
		"share/doc/guide.txt": text(3, 256<<10),
		"bin/agent":           pseudoRandom(4, 128<<10),
	}
	tests := []struct {
		name     string
		compress chunk.Compression
		smaller  bool
	}{
		{"default", chunk.CompressDefault, true},
		{"best", chunk.CompressBest, true},
		{"off", chunk.CompressOff, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, repoDir := t.TempDir(), t.TempDir()
			writeTree(t, src, files)
			opts := publishOpts("1.0.0", key)
			opts.Compress = tt.compress
			mustPublish(t, repoDir, src, opts)
			m := checkRelease(t, repoDir, root, "1.0.0", files)
			onDisk, raw := chunkFileBytes(t, repoDir, m)
			if smaller := onDisk < raw*3/4; smaller != tt.smaller {
				t.Errorf("chunk files hold %d bytes for %d raw; want compressed: %v", onDisk, raw, tt.smaller)
			}
			rep, err := Verify(context.Background(), repoDir, root, VerifyOptions{Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 0 || rep.ChunkBytes != raw {
				t.Fatalf("verify: %d raw bytes checked (want %d), problems %+v", rep.ChunkBytes, raw, rep.Problems)
			}
		})
	}
}

func TestPublishKeepsRawChunkFiles(t *testing.T) {
	// A repository written before compression keeps its raw chunk files: a
	// new publish reuses them, and readers take both forms side by side.
	key := newKey(t)
	root := newRoot(t, 1, key)
	src, repoDir := t.TempDir(), t.TempDir()
	files := map[string][]byte{"share/doc/guide.txt": text(5, 128<<10)}
	writeTree(t, src, files)
	opts := publishOpts("1.0.0", key)
	opts.Compress = chunk.CompressOff
	mustPublish(t, repoDir, src, opts)

	files["share/doc/new.txt"] = text(6, 64<<10)
	writeTree(t, src, files)
	sum := mustPublish(t, repoDir, src, publishOpts("1.0.1", key))
	if sum.ReusedBytes != 128<<10 {
		t.Errorf("reused %d bytes of raw chunk files, want %d", sum.ReusedBytes, 128<<10)
	}
	m := checkRelease(t, repoDir, root, "1.0.1", files)
	onDisk, raw := chunkFileBytes(t, repoDir, m)
	if onDisk <= 128<<10 || onDisk >= raw {
		t.Errorf("chunk files hold %d bytes for %d raw: want the old raw ones and new compressed ones", onDisk, raw)
	}
	rep, err := Verify(context.Background(), repoDir, root, VerifyOptions{Now: testNow})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
}
