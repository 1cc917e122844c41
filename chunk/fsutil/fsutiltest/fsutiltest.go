// Package fsutiltest has helpers for tests of code that works with the page
// cache.
package fsutiltest

import "testing"

// DiskDir returns a new temporary folder, and skips the test when the folder is
// on tmpfs: its files live in the page cache, so there is nothing to write back
// or drop.
func DiskDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	tmpfs, err := onTmpfs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tmpfs {
		t.Skip("tmpfs files live in the page cache: nothing to drop (set TMPDIR to a disk)")
	}
	return dir
}
