// Package fsutil holds the few file-system helpers every layer of patchmesh
// needs, written once: a write that readers and crashes see whole or not at
// all, the directory sync that makes it durable, a bounded read, and what
// keeps a large write from filling the page cache.
//
// It is a leaf: it imports nothing of patchmesh, so chunk, manifest, mesh and
// node can all use it.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrTooLarge means a file is larger than the caller's bound.
var ErrTooLarge = errors.New("file larger than allowed")

// WriteFile writes data to name so that a reader or a crash sees the old
// content or the new, never a mix: a temporary file in the same directory
// (named by pattern, as os.CreateTemp, so that callers can recognise and
// clean up leftovers), fsync, the mode perm, rename, then a sync of the
// directory. The directory must exist.
func WriteFile(name string, data []byte, perm os.FileMode, pattern string) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	ok = true
	return SyncDir(dir)
}

// ReadFile reads name whole, refusing with an error wrapping ErrTooLarge a
// file over max bytes, without reading more than max+1 of it.
func ReadFile(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", name, max, ErrTooLarge)
	}
	return data, nil
}
