package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// punchHole frees the disk blocks of n bytes at off in f, keeping its size.
// Bytes outside the range are untouched, whatever the block size. It is best
// effort: on a file system that cannot, GC frees the whole pack later.
func punchHole(f *os.File, off, n int64) {
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}
