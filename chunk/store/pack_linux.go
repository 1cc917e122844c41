package store

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// punchHole frees the disk blocks of n bytes at off in f, keeping its size.
// Bytes outside the range are untouched, whatever the block size. It is best
// effort: on a file system that cannot, GC frees the whole pack later.
func punchHole(f *os.File, off, n int64) {
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// iovMax is the most buffers one pwritev takes (IOV_MAX).
const iovMax = 1024

// writeAt writes bufs, one after the other, at off in f: in one call, short
// of a short write or more buffers than a call takes.
func writeAt(f *os.File, bufs [][]byte, off int64) error {
	for {
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return nil
		}
		n, err := unix.Pwritev(int(f.Fd()), bufs[:min(len(bufs), iovMax)], off)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		bufs = consumed(bufs, n)
	}
}

// consumed returns what is left of bufs once n of their bytes are written:
// a short write may end inside a buffer. bufs itself is left as it was.
func consumed(bufs [][]byte, n int) [][]byte {
	for n > 0 && len(bufs) > 0 {
		if n < len(bufs[0]) {
			return append([][]byte{bufs[0][n:]}, bufs[1:]...)
		}
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	return bufs
}
