//go:build linux

package repo

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWritebackStartsBeforeTheBarrier(t *testing.T) {
	tests := []struct {
		name   string
		writes []int
		early  bool // at least one syncfs before the barrier
	}{
		{"none", nil, false},
		{"below the step", []int{writebackEvery / 2, writebackEvery/2 - 1}, false},
		{"reaching the step", []int{writebackEvery / 2, writebackEvery / 2}, true},
		{"one large write", []int{3 * writebackEvery}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &chunkWriter{repoDir: t.TempDir()}
			if err := w.startWriteback(); err != nil {
				t.Fatal(err)
			}
			fl := w.flush
			for _, n := range tt.writes {
				w.wrote(n)
			}
			if err := w.syncChunks(); err != nil {
				t.Fatal(err)
			}
			if got := fl.syncs > 0; got != tt.early {
				t.Fatalf("early syncfs calls: %d, want some: %v", fl.syncs, tt.early)
			}
			if w.flush != nil {
				t.Fatal("the barrier left the flusher running")
			}
			w.stopWriteback() // after the barrier: nothing to stop, no panic
		})
	}
}

func TestPublishChunkFilesReadableWhateverTheUmask(t *testing.T) {
	// Chunk files in a fresh shard folder are created under their final
	// name; a web server must still read them under a strict umask.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	repoDir, src := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string][]byte{"a.bin": pseudoRandom(1, 300<<10)})
	mustPublish(t, repoDir, src, publishOpts("1.0.0", newKey(t)))
	n := 0
	err := filepath.WalkDir(filepath.Join(repoDir, chunksDir), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", p, info.Mode().Perm())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("%d chunk files, want several", n)
	}
}
