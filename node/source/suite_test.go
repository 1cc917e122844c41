package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// bigPath is a generated file larger than smallBody, so its reads run under
// the idle timeout rather than the whole-request one.
const bigPath = "chunks/bb/bafkreibigbigbigbig"

// testRepo copies testdata/repo into a fresh folder, adds a generated 3 MiB
// file and a secret beside (outside) the repository, and returns the folder
// and the repository's files by path.
func testRepo(t testing.TB) (dir string, files map[string][]byte) {
	t.Helper()
	tmp := t.TempDir()
	dir = filepath.Join(tmp, "repo")
	if err := os.CopyFS(dir, os.DirFS("testdata/repo")); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{'p', 'm'}))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if err := os.MkdirAll(filepath.Join(dir, "chunks/bb"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(bigPath)), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "outside.txt"), []byte("secret outside the repository"), 0o644); err != nil {
		t.Fatal(err)
	}
	files = map[string][]byte{bigPath: big}
	for _, p := range []string{
		"channels/stable/head.json",
		"manifests/stable/7.json",
		"roots/1.json",
		"chunks/af/bafkreiafzzzexample",
		"chunks/af/bafkrei file with space",
	} {
		b, err := os.ReadFile(filepath.Join("testdata/repo", filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	return dir, files
}

func readFile(ctx context.Context, s Source, path string, max int64) ([]byte, error) {
	rc, err := s.Open(ctx, path, max)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// runSourceSuite is the behaviour every kind of source shares. newSource
// returns a source serving the repository in dir.
func runSourceSuite(t *testing.T, newSource func(t *testing.T, dir string) Source) {
	dir, files := testRepo(t)
	src := newSource(t, dir)
	ctx := t.Context()

	t.Run("good bytes", func(t *testing.T) {
		for p, want := range files {
			t.Run(p, func(t *testing.T) {
				// A bound equal to the size is allowed.
				got, err := readFile(ctx, src, p, int64(len(want)))
				if err != nil {
					t.Fatalf("read %s: %v", p, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("read %s: got %d bytes, want the %d bytes on disk", p, len(got), len(want))
				}
			})
		}
	})

	t.Run("missing file", func(t *testing.T) {
		for _, p := range []string{"chunks/zz/bafkreinothere", "manifests/beta/1.json"} {
			rc, err := src.Open(ctx, p, 1<<20)
			if !errors.Is(err, ErrNotFound) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("open %s: got %v, want ErrNotFound", p, err)
			}
		}
	})

	t.Run("too large", func(t *testing.T) {
		tests := []struct {
			path string
			max  int64
		}{
			{"channels/stable/head.json", 10},
			{bigPath, int64(len(files[bigPath])) - 1},
		}
		for _, tt := range tests {
			got, err := readFile(ctx, src, tt.path, tt.max)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("read %s with max %d: got %v, want ErrTooLarge", tt.path, tt.max, err)
			}
			if int64(len(got)) > tt.max {
				t.Errorf("read %s with max %d: returned %d bytes", tt.path, tt.max, len(got))
			}
		}
	})

	t.Run("path escape refused", func(t *testing.T) {
		for _, p := range []string{
			"../outside.txt", "chunks/../../outside.txt", "/etc/passwd", "", ".", "chunks//af",
			"chunks/af/", `..\outside.txt`, "c:/outside.txt", "roots/1.json\r\nDELE roots/1.json", "roots/\x00",
		} {
			rc, err := src.Open(ctx, p, 1<<20)
			if rc != nil {
				b, _ := io.ReadAll(rc)
				rc.Close()
				t.Errorf("open %q: returned %q", p, b)
			}
			if !errors.Is(err, ErrInvalidPath) {
				t.Errorf("open %q: got %v, want ErrInvalidPath", p, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "roots/1.json")); err != nil {
			t.Errorf("a refused path changed the repository: %v", err)
		}
	})

	t.Run("concurrent opens", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for _, p := range []string{bigPath, "channels/stable/head.json", "chunks/zz/bafkreinothere"} {
					got, err := readFile(ctx, src, p, 4<<20)
					want, ok := files[p]
					switch {
					case !ok && !errors.Is(err, ErrNotFound):
						t.Errorf("worker %d: read %s: got %v, want ErrNotFound", i, p, err)
					case ok && err != nil:
						t.Errorf("worker %d: read %s: %v", i, p, err)
					case ok && !bytes.Equal(got, want):
						t.Errorf("worker %d: read %s: wrong bytes", i, p)
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("context cancel", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if rc, err := src.Open(cancelled, bigPath, 4<<20); !errors.Is(err, context.Canceled) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("open with a cancelled context: got %v, want context.Canceled", err)
		}

		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		rc, err := src.Open(rctx, bigPath, 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		cancel()
		n, err := io.Copy(io.Discard, rc)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: got %v, want context.Canceled", err)
		}
		if 1024+n >= int64(len(files[bigPath])) {
			t.Errorf("read after cancel: the whole file arrived")
		}
		// The source still serves other callers.
		if _, err := readFile(ctx, src, "roots/1.json", 1<<10); err != nil {
			t.Errorf("read after a cancelled transfer: %v", err)
		}
	})
}
