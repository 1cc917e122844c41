package fsutil

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "state.json")
	for i, data := range [][]byte{[]byte("first"), bytes.Repeat([]byte("second "), 1000)} {
		if err := WriteFile(name, data, 0o640, ".tmp-*"); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("write %d: read back %d bytes (%v), want %d", i, len(got), err, len(data))
		}
		if st, err := os.Stat(name); err != nil || st.Mode().Perm() != 0o640 {
			t.Fatalf("write %d: mode %v (%v), want 0640", i, st.Mode(), err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestWriteFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := WriteFile(name, []byte("old"), 0o644, ".tmp-*"); err != nil {
		t.Fatal(err)
	}
	// A rename onto a non-empty directory fails: the old content stays.
	if err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644, ".tmp-*"); err == nil {
		t.Fatal("write into a missing directory: no error")
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "d"), []byte("new"), 0o644, ".tmp-*"); err == nil {
		t.Fatal("write over a directory: no error")
	}
	if got, _ := os.ReadFile(name); string(got) != "old" {
		t.Fatalf("old file now %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestReadFileBound(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		max     int64
		tooLong bool
	}{{100, false}, {1000, false}, {99, true}, {0, true}}
	for _, tt := range tests {
		data, err := ReadFile(name, tt.max)
		if tt.tooLong != errors.Is(err, ErrTooLarge) {
			t.Errorf("max %d: err %v, want ErrTooLarge %v", tt.max, err, tt.tooLong)
		}
		if !tt.tooLong && (err != nil || len(data) != 100) {
			t.Errorf("max %d: %d bytes, %v", tt.max, len(data), err)
		}
	}
	if _, err := ReadFile(name+".none", 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
