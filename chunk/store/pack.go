package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
)

// Chunk bytes are kept in pack files of the store's own, beside badger, which
// keeps only each chunk's size record naming where its bytes are. Badger
// would copy every value into a memory-mapped value log: a fault that zeroes
// a fresh page and then a copy, all in badger's one writer goroutine, which
// every fetch waits on. That was 30% of a node's CPU while it pulled a
// release (scripts/RESULTS-node.md). A pack is written with plain writes,
// appended to by one group commit at a time, and read with plain reads.
//
// A pack's bytes are written before the records that point at them are
// committed, so a record never names bytes not yet written; bytes written by
// a commit that then failed, or whose process was killed before it
// committed, are dead space that nothing names. Every read checks the chunk
// against its CID, as for badger's values, so a damaged, truncated or lost
// pack makes its chunks dropped, never returned.
//
// A deleted chunk's bytes are freed at once where the file system punches
// holes (Linux). GC removes the packs no record names, after moving the live
// chunks of closed packs that are mostly dead to the current one, which is
// how space comes back elsewhere.

// packDir is the folder of the pack files, inside the store's.
const packDir = "packs"

// packSize is the size past which a pack is closed and the next begun: the
// unit in which GC moves live chunks and removes packs.
const packSize = 256 << 20

// A pack's bytes leave the page cache once they are well behind its end: the
// writeback of each writebackEvery bytes is started as they are written, and
// the clean pages more than cacheBehind behind the end are dropped. Peers and
// the assembly read back the chunks written last, not the whole release.
// Cached, a 2 GiB release took 2 GiB of page cache from the host's programs;
// and on a virtual machine that hands free memory back to its host, every
// fresh page costs a fault there: copying into the page cache was a quarter
// of a node's CPU samples while it pulled a release, and dropping the pages
// behind cut the node's CPU time by a fifth (scripts/RESULTS-node.md).
const (
	writebackEvery = 8 << 20
	cacheBehind    = 64 << 20
)

// packLoc is where a chunk's stored bytes are: pack number, offset, length.
type packLoc struct {
	pack uint32
	off  int64
	n    int
}

func (l packLoc) append(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(l.pack))
	b = binary.AppendUvarint(b, uint64(l.off))
	return binary.AppendUvarint(b, uint64(l.n))
}

// parsePackLoc reads a packLoc from b, which it must fill exactly.
func parsePackLoc(b []byte) (packLoc, error) {
	var v [3]uint64
	for i := range v {
		x, k := binary.Uvarint(b)
		if k <= 0 {
			return packLoc{}, errors.New("bad pack location")
		}
		v[i], b = x, b[k:]
	}
	if len(b) != 0 || v[0] > 1<<31 || v[1] > 1<<62 || v[2] > 1<<31 {
		return packLoc{}, errors.New("bad pack location")
	}
	return packLoc{pack: uint32(v[0]), off: int64(v[1]), n: int(v[2])}, nil
}

// packs is the store's set of pack files. Appends come from one group commit
// at a time (Store.commit), reads and deletes from anywhere.
type packs struct {
	dir   string
	limit int64 // packSize; tests lower it

	mu    sync.RWMutex
	files map[uint32]*os.File // opened so far, read-write
	cur   uint32              // the pack appended to
	end   int64               // its length, with the pending bytes

	// pending are the chunks appended since the last flush, to be written
	// at pendOff in one call. Chunk by chunk, each write left the end of a
	// fresh page-cache page to be zeroed, and then filled by the next.
	pending [][]byte
	pendOff int64

	// What settle did to the current pack: where the writeback was last
	// started, and up to where the page cache was dropped. prev is the pack
	// before it, whose last bytes settle drops once the current pack's own
	// are dropped; zero: none.
	wbOff, dropOff int64
	prev           uint32
	prevEnd        int64
	behind         int64 // cacheBehind; tests lower it
}

// openPacks opens the pack folder in storeDir, creating it if needed, and
// appends after the newest pack's end: bytes past the last committed record
// are dead, never overwritten.
func openPacks(storeDir string) (*packs, error) {
	dir := filepath.Join(storeDir, packDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &packs{dir: dir, limit: packSize, behind: cacheBehind, files: make(map[uint32]*os.File)}
	nums, err := p.list()
	if err != nil {
		return nil, err
	}
	cur := uint32(1)
	if len(nums) > 0 {
		cur = nums[len(nums)-1]
	}
	if err := p.begin(cur); err != nil {
		return nil, err
	}
	return p, nil
}

// begin makes pack n, created if missing, the one appended to, after its
// end.
func (p *packs) begin(n uint32) error {
	f, err := p.file(n, true)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if p.end > 0 && n != p.cur {
		// The pack closed: its last bytes go to disk now, and settle drops
		// them from the cache later.
		if old, err := p.file(p.cur, false); err == nil {
			fsutil.StartWriteback(old, p.wbOff, p.end-p.wbOff)
		}
		p.prev, p.prevEnd = p.cur, p.end
	}
	p.mu.Lock()
	p.cur, p.end, p.pendOff = n, fi.Size(), fi.Size()
	p.mu.Unlock()
	p.wbOff, p.dropOff = p.end, p.end
	return nil
}

func packName(n uint32) string { return fmt.Sprintf("%08d.pack", n) }

// list returns the numbers of the pack files, in order.
func (p *packs) list() ([]uint32, error) {
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, err
	}
	var nums []uint32
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".pack")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil || n == 0 {
			continue
		}
		nums = append(nums, uint32(n))
	}
	return nums, nil // ReadDir sorts by name, and the names are zero-padded
}

// file returns pack n, opened; create makes it if missing.
func (p *packs) file(n uint32, create bool) (*os.File, error) {
	p.mu.RLock()
	f := p.files[n]
	p.mu.RUnlock()
	if f != nil {
		return f, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.files[n]; f != nil {
		return f, nil
	}
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(filepath.Join(p.dir, packName(n)), flags, 0o600)
	if err != nil {
		return nil, err
	}
	p.files[n] = f
	return f, nil
}

// append adds data at the end of the current pack, first beginning a new
// pack when this one is full, and returns where it goes. The caller is the
// one group commit running; it keeps data unchanged and calls flush before
// it commits the records.
func (p *packs) append(data []byte) (packLoc, error) {
	if p.end >= p.limit {
		if err := p.flush(); err != nil {
			return packLoc{}, err
		}
		if err := p.begin(p.cur + 1); err != nil {
			return packLoc{}, fmt.Errorf("new pack: %w", err)
		}
	}
	loc := packLoc{pack: p.cur, off: p.end, n: len(data)}
	p.pending = append(p.pending, data)
	p.end += int64(len(data))
	return loc, nil
}

// flush writes the pending chunks. On an error they are dead bytes, never
// reused.
func (p *packs) flush() error {
	if len(p.pending) == 0 {
		return nil
	}
	f, err := p.file(p.cur, true)
	if err == nil {
		err = writeAt(f, p.pending, p.pendOff)
	}
	clear(p.pending)
	p.pending, p.pendOff = p.pending[:0], p.end
	if err == nil {
		p.settle(f)
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("write pack %s: %w in %s: %w", packName(p.cur), ErrNoSpace, p.dir, err)
	}
	if err != nil {
		return fmt.Errorf("write pack %s: %w", packName(p.cur), err)
	}
	return nil
}

// settle starts the writeback of the current pack's bytes every
// writebackEvery bytes, and drops from the page cache what is more than
// behind bytes behind its end, and then what the previous pack kept. Neither
// waits for the disk; both are best effort.
func (p *packs) settle(f *os.File) {
	if p.end-p.wbOff < writebackEvery {
		return
	}
	fsutil.StartWriteback(f, p.wbOff, p.end-p.wbOff)
	p.wbOff = p.end
	to := p.end - p.behind
	if to <= p.dropOff {
		return
	}
	fsutil.DropCache(f, p.dropOff, to-p.dropOff)
	p.dropOff = to
	if p.prev != 0 {
		// Looked up by number: GC may have removed it meanwhile.
		if pf, err := p.file(p.prev, false); err == nil {
			fsutil.DropCache(pf, 0, p.prevEnd)
		}
		p.prev = 0
	}
}

// read reads the bytes at l into buf, which it grows if needed.
func (p *packs) read(l packLoc, buf []byte) ([]byte, error) {
	f, err := p.file(l.pack, false)
	if err != nil {
		return nil, fmt.Errorf("read pack %s: %w", packName(l.pack), err)
	}
	if cap(buf) < l.n {
		buf = make([]byte, l.n)
	}
	buf = buf[:l.n]
	if _, err := f.ReadAt(buf, l.off); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read pack %s at %d: %w", packName(l.pack), l.off, err)
	}
	return buf, nil
}

// size returns the length of pack n.
func (p *packs) size(n uint32) (int64, error) {
	f, err := p.file(n, false)
	if err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// free gives back the disk space of the bytes at l where the file system can
// punch holes; elsewhere GC removes the pack once none of it is used.
func (p *packs) free(l packLoc) {
	f, err := p.file(l.pack, false)
	if err != nil {
		return
	}
	punchHole(f, l.off, int64(l.n))
}

func (p *packs) current() uint32 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cur
}

// removeUnused removes every pack before keepFrom that live does not name,
// and returns how many. keepFrom is the current pack as it was before live
// was gathered: no record can name an earlier pack and not be in live.
func (p *packs) removeUnused(live map[uint32]bool, keepFrom uint32) (int, error) {
	nums, err := p.list()
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, n := range nums {
		if live[n] || n >= keepFrom {
			continue
		}
		p.mu.Lock()
		if f := p.files[n]; f != nil {
			f.Close()
			delete(p.files, n)
		}
		err := os.Remove(filepath.Join(p.dir, packName(n)))
		p.mu.Unlock()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// close closes the pack files.
func (p *packs) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for n, f := range p.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
		delete(p.files, n)
	}
	return first
}
