package repo

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/delta"
	"github.com/patchmesh/patchmesh/manifest"
)

// textLike is compressible, as most of a real package is: numbered lines.
func textLike(lines int, salt string) []byte {
	var b bytes.Buffer
	for i := range lines {
		fmt.Fprintf(&b, "%06d %s the quick brown fox jumps over the lazy dog %d\n", i, salt, i*i%977)
	}
	return b.Bytes()
}

// TestDeltasCoverEveryNewChunk: for a changed file with a base in the
// previous release, the deltas make every new chunk, whether the base's chunk
// files are stored compressed or raw; a renamed versioned file finds its base.
func TestDeltasCoverEveryNewChunk(t *testing.T) {
	tests := []struct {
		name     string
		compress chunk.Compression
		rename   bool // v2 renames lib/libfoo.so.1.2.3 to lib/libfoo.so.1.2.4
	}{
		{"compressed chunk files", chunk.CompressDefault, false},
		{"raw chunk files", chunk.CompressOff, false},
		{"versioned name", chunk.CompressDefault, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := newKey(t)
			repoDir := t.TempDir()
			src := t.TempDir()
			v1 := textLike(20000, "v1")
			writeTree(t, src, map[string][]byte{"lib/libfoo.so.1.2.3": v1, "README": []byte("hello\n")})
			o1 := publishOpts("1.0.0", key)
			o1.Compress = tt.compress
			mustPublish(t, repoDir, src, o1)

			v2 := scatterEdit(v1, 3, 8, 0.01)
			name := "lib/libfoo.so.1.2.3"
			if tt.rename {
				removeAll(t, filepath.Join(src, "lib"))
				name = "lib/libfoo.so.1.2.4"
			}
			writeTree(t, src, map[string][]byte{name: v2})
			o2 := publishOpts("1.1.0", key)
			o2.Compress = tt.compress
			s2 := mustPublish(t, repoDir, src, o2)
			if s2.NewBytes == 0 || s2.DeltaOutput != s2.NewBytes {
				t.Fatalf("deltas make %d of the %d new bytes; want all", s2.DeltaOutput, s2.NewBytes)
			}
			// The edit writes len(v1)/100 random bytes: the deltas cost about that.
			if edited := int64(len(v1) / 100); s2.DeltaBytes > edited*3/2+1024 {
				t.Errorf("deltas weigh %d bytes for an edit of %d random bytes; want at most 1.5x that", s2.DeltaBytes, edited)
			}
		})
	}
}

func removeAll(t *testing.T, p string) {
	t.Helper()
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
}

// TestDeltaWindowByLevel: an unset window is the level's; a set one is kept,
// within the two bases a manifest allows.
func TestDeltaWindowByLevel(t *testing.T) {
	tests := []struct {
		level  delta.Level
		window int
		want   int
	}{
		{delta.Best, 0, 8 << 20},
		{delta.Better, 0, 2 << 20},
		{delta.Fast, 0, 1 << 20},
		{delta.Fast, 4 << 20, 4 << 20},
		{delta.Best, 1 << 20, 1 << 20},
		{delta.Best, 1 << 30, manifest.MaxDeltaBase / 2},
	}
	for _, tt := range tests {
		got := DeltaOptions{Level: tt.level, Window: tt.window}.withDefaults().Window
		if got != tt.want {
			t.Errorf("level %v, window %d: %d, want %d", tt.level, tt.window, got, tt.want)
		}
	}
}
