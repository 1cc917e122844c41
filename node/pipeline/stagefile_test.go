package pipeline

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeStaged writes data to a new file in dir through w, in pieces of the
// sizes a chunker makes, and returns the file's name.
func writeStaged(t *testing.T, w *stageWriter, dir string, data []byte) string {
	t.Helper()
	name := filepath.Join(dir, "f")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w.reset(f)
	rng := rand.New(rand.NewPCG(1, 2))
	for p := data; len(p) > 0; {
		n := min(len(p), 1+rng.IntN(40<<10))
		if k, err := w.Write(p[:n]); err != nil || k != n {
			t.Fatalf("write: %d of %d bytes: %v", k, n, err)
		}
		p = p[n:]
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestStageWriter writes files of sizes around the buffer's and checks their
// bytes, and on Linux where the file system takes direct writes, that the full
// buffers went past the page cache and the tail through it.
func TestStageWriter(t *testing.T) {
	sizes := []int{0, 1, directAlign - 1, stageBuf - 1, stageBuf, stageBuf + 1, 3*stageBuf + 12345}
	direct := directWorks(t, t.TempDir())
	w := newStageWriter() // one writer for every file, as a run has
	for _, size := range sizes {
		data := make([]byte, size)
		fillRandom(data, uint64(size))
		name := writeStaged(t, w, t.TempDir(), data)
		if direct {
			// Before anything reads the file: direct bytes are not cached,
			// only the tail, written through the cache, is.
			tail := size % stageBuf
			cached, pages := cachedPages(t, name)
			want := (tail + directAlign - 1) / directAlign
			if cached != want {
				t.Errorf("%d bytes: %d of %d pages in the page cache, want %d (the tail of %d bytes)", size, cached, pages, want, tail)
			}
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: the file differs from what was written (%d bytes)", size, len(got))
		}
	}
}

// TestStageWriterRefused checks the fallbacks: a file system that refuses the
// flag, and one that takes it but refuses the write. The file's bytes are
// exact either way, and the writer stops trying.
func TestStageWriterRefused(t *testing.T) {
	data := make([]byte, 3*stageBuf+777)
	fillRandom(data, 3)
	t.Run("flag refused", func(t *testing.T) {
		// A fake: no local file system here refuses O_DIRECT.
		w := newStageWriter()
		w.setDirect = func(*os.File, bool) error { return errors.ErrUnsupported }
		checkStaged(t, w, data)
	})
	t.Run("write refused", func(t *testing.T) {
		// A buffer one byte off alignment: a real direct write refuses it
		// with EINVAL, as a device wanting larger blocks would.
		w := newStageWriter()
		w.buf = alignedBuf(stageBuf+1, directAlign)[1 : 1 : stageBuf+1]
		checkStaged(t, w, data)
	})
}

func checkStaged(t *testing.T, w *stageWriter, data []byte) {
	t.Helper()
	for range 2 { // the second file, after the refusal
		name := writeStaged(t, w, t.TempDir(), data)
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("the file differs from what was written (%d bytes of %d)", len(got), len(data))
		}
		if !w.noDirect {
			t.Fatal("the writer did not note the refusal")
		}
	}
}

func fillRandom(b []byte, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}
