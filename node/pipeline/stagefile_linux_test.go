package pipeline

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
)

// directWorks reports whether the file system of dir takes direct writes.
func directWorks(t *testing.T, dir string) bool {
	t.Helper()
	fd, err := unix.Open(filepath.Join(dir, "probe"), unix.O_CREAT|unix.O_WRONLY|unix.O_DIRECT, 0o600)
	if errors.Is(err, unix.EINVAL) {
		t.Logf("%s takes no direct writes: the page cache is not checked", dir)
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	return true
}

// cachedPages returns how many of name's pages are in the page cache, and
// how many it has.
func cachedPages(t *testing.T, name string) (cached, pages int) {
	t.Helper()
	in, err := fsutil.CachedPages(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range in {
		if c {
			cached++
		}
	}
	return cached, len(in)
}
