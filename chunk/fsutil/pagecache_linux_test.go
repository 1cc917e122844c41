package fsutil

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchmesh/patchmesh/chunk/fsutil/fsutiltest"
)

// TestDropCache: the written back pages dropped are no longer cached, the
// others are, and reading brings the dropped ones back. Sizes are in MiB: the
// page cache holds a file in folios of up to a few MiB here, and a folio only
// partly in the range stays.
func TestDropCache(t *testing.T) {
	dir := fsutiltest.DiskDir(t)
	const mib = 1 << 20
	name := filepath.Join(dir, "f")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte{7}, 8*mib)); err != nil {
		t.Fatal(err)
	}
	StartWriteback(f, 0, 8*mib)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	DropCache(f, 0, 4*mib)
	cached := func() string {
		in, err := CachedPages(name)
		if err != nil {
			t.Fatal(err)
		}
		// One letter per MiB: "c" all cached, "." none, "p" some.
		perMiB := mib / os.Getpagesize()
		var b []byte
		for i := 0; i < len(in); i += perMiB {
			n := 0
			for _, c := range in[i:min(i+perMiB, len(in))] {
				if c {
					n++
				}
			}
			switch n {
			case 0:
				b = append(b, '.')
			case perMiB:
				b = append(b, 'c')
			default:
				b = append(b, 'p')
			}
		}
		return string(b)
	}
	if got, want := cached(), "....cccc"; got != want {
		t.Errorf("cached pages after dropping the first 4: %s, want %s", got, want)
	}
	if _, err := f.ReadAt(make([]byte, 8*mib), 0); err != nil {
		t.Fatal(err)
	}
	if got, want := cached(), "cccccccc"; got != want {
		t.Errorf("cached pages after reading it all: %s, want %s", got, want)
	}
}
