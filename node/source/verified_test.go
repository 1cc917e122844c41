package source

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// TestReadVerifiedMovesOn: bytes a check refuses (a tampered copy on the first
// mirror) count as that source's failure, and the next source's good copy is used.
func TestReadVerifiedMovesOn(t *testing.T) {
	good, files := testRepo(t)
	// The smallest file, so the test does not depend on map order.
	var path string
	var want []byte
	for p, b := range files {
		if path == "" || len(b) < len(want) || (len(b) == len(want) && p < path) {
			path, want = p, b
		}
	}
	bad := t.TempDir()
	tampered := append([]byte(nil), want...)
	tampered[0] ^= 1
	if err := os.MkdirAll(filepath.Join(bad, filepath.Dir(filepath.FromSlash(path))), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, filepath.FromSlash(path)), tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	first := mustNew(t, serveDir(t, bad).URL, testOptions())
	second := mustNew(t, serveDir(t, good).URL, testOptions())
	l := NewList([]Source{first, second}, nil)
	t.Cleanup(func() { l.Close() })

	errTampered := errors.New("tampered")
	check := func(_ Source, b []byte) error {
		if !bytes.Equal(b, want) {
			return errTampered
		}
		return nil
	}
	got, src, err := l.ReadVerified(t.Context(), path, 1<<20, check)
	if err != nil {
		t.Fatalf("ReadVerified: %v", err)
	}
	if !bytes.Equal(got, want) || src != second {
		t.Fatalf("got %d bytes from %v, want the good copy from the second source", len(got), src)
	}
	h := l.Health()
	if h[0].Healthy || h[0].Failures != 1 || !h[1].Healthy {
		t.Fatalf("health after a refused copy: %+v", h)
	}

	// When every copy is refused, the error says so.
	_, _, err = l.ReadVerified(t.Context(), path, 1<<20, func(Source, []byte) error { return errTampered })
	if !errors.Is(err, errTampered) {
		t.Fatalf("all copies refused: got %v, want the check's error", err)
	}
}

// sized is a reader that announces a length, right or wrong.
type sized struct {
	io.Reader
	n int64
}

func (s sized) Size() int64 { return s.n }

func TestReadAllSized(t *testing.T) {
	data := bytes.Repeat([]byte("patchmesh"), 5000) // 45 000 bytes
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"no size", bytes.NewReader(data)},
		{"unknown size", sized{bytes.NewReader(data), -1}},
		{"exact", sized{iotest.OneByteReader(bytes.NewReader(data)), int64(len(data))}},
		{"announced shorter", sized{bytes.NewReader(data), 100}},
		{"announced longer", sized{bytes.NewReader(data), int64(len(data)) + 7}},
		{"announced over max", sized{bytes.NewReader(data), 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(tt.r, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, want the %d written", len(got), len(data))
			}
		})
	}
	// An error from the reader is returned with what was read.
	_, err := readAll(sized{iotest.TimeoutReader(bytes.NewReader(data)), int64(len(data))}, 1<<20)
	if !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
}
