package pipeline

import (
	"errors"
	"os"
	"unsafe"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
)

// stageBuf is the size of a stageWriter's buffer: each full buffer is one
// write, a direct one where the file system takes it.
const stageBuf = 1 << 20

// directAlign is the alignment of a direct write's memory, offset and length:
// a page, which is a multiple of every common block size.
const directAlign = 4096

// stageWriter writes one staged file from start to end through a buffer that
// a run reuses from file to file.
//
// Full buffers go to disk past the page cache (O_DIRECT on Linux) where the
// file system allows it. A node writes every byte of a release once, and
// nothing reads it back until the release is used; through the page cache,
// each byte cost a fresh page to copy into (the largest single share of a
// node's CPU in scripts/bench-node.sh) and evicted pages the machine's other
// programs were using. The tail shorter than a buffer, and every file on a
// file system that refuses direct writes, go through the page cache, their
// writeback started as they are written. The staging fsync makes both durable.
type stageWriter struct {
	buf []byte // aligned to directAlign, cap stageBuf
	f   *os.File
	off int64 // bytes of f written
	// wbStart is where the writeback of buffered writes was last started.
	wbStart int64
	direct  bool // O_DIRECT is set on f
	// noDirect is set once the file system refused a direct write: the
	// run's later files do not try again.
	noDirect bool
	// setDirect sets or clears O_DIRECT on f; tests replace it to refuse.
	setDirect func(f *os.File, on bool) error
}

func newStageWriter() *stageWriter {
	return &stageWriter{buf: alignedBuf(stageBuf, directAlign), setDirect: setDirect}
}

// alignedBuf returns an empty slice of capacity n whose memory starts at a
// multiple of align.
func alignedBuf(n, align int) []byte {
	b := make([]byte, n+align)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % uintptr(align)); r != 0 {
		skip = align - r
	}
	return b[skip : skip : skip+n]
}

// reset starts writing f from its beginning.
func (w *stageWriter) reset(f *os.File) {
	w.f, w.off, w.wbStart, w.direct = f, 0, 0, false
	w.buf = w.buf[:0]
}

func (w *stageWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
		if len(w.buf) == cap(w.buf) {
			if err := w.writeFull(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// writeFull writes the full buffer, directly unless the file system refused.
func (w *stageWriter) writeFull() error {
	if !w.direct && !w.noDirect {
		if w.setDirect(w.f, true) == nil {
			w.direct = true
		} else {
			w.noDirect = true
		}
	}
	if w.direct {
		n, err := w.f.Write(w.buf)
		w.off += int64(n)
		w.buf = w.buf[:copy(w.buf, w.buf[n:])]
		if err == nil || !errors.Is(err, errDirectRefused) {
			return err
		}
		// Some file systems take the flag but refuse the write (EINVAL):
		// write the rest through the page cache.
		w.noDirect = true
		if err := w.buffered(); err != nil {
			return err
		}
	}
	return w.writeBuffered()
}

// buffered clears O_DIRECT, if set, for the writes to come.
func (w *stageWriter) buffered() error {
	if !w.direct {
		return nil
	}
	w.direct = false
	return w.setDirect(w.f, false)
}

// writeBuffered writes the buffer through the page cache and starts the
// writeback of what was so written since it was last started. Staging fsyncs
// every file before the switch; starting the writeback as the file is written
// spreads that disk work over the download instead of leaving it all to the
// end (on a site sharing one disk, 20 nodes flushing 64 MiB each at the same
// moment took seconds).
func (w *stageWriter) writeBuffered() error {
	n, err := w.f.Write(w.buf)
	w.off += int64(n)
	w.buf = w.buf[:0]
	if w.off-w.wbStart >= writebackEvery || err != nil {
		fsutil.StartWriteback(w.f, w.wbStart, w.off-w.wbStart)
		w.wbStart = w.off
	}
	return err
}

// Flush writes what the buffer holds, through the page cache: a tail shorter
// than a block cannot be written directly.
func (w *stageWriter) Flush() error {
	if err := w.buffered(); err != nil {
		return err
	}
	if len(w.buf) == 0 {
		return nil
	}
	err := w.writeBuffered()
	if w.off > w.wbStart {
		fsutil.StartWriteback(w.f, w.wbStart, w.off-w.wbStart)
		w.wbStart = w.off
	}
	return err
}
