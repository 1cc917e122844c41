package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrNoSpace means the store's file system has too little free space for a
// write and the reserve.
//
// Badger writes its value log, write-ahead log and tables through shared
// memory maps of sparse files. A write to a map whose page the file system
// cannot allocate is no error but a SIGBUS, which kills the process; and a
// badger.Open on a full disk faults the same way. So the store checks the
// free space itself before every chunk write, keeps a reserve for what
// badger writes on its own (a memtable flush, a compaction, new file
// headers), and does not open badger at all while the disk is below the
// reserve: even a read-only open faults on tmpfs, where reading a hole of a
// shared map allocates a page.
var ErrNoSpace = errors.New("no space")

// ErrFailed marks a store whose folder was removed, replaced or made
// read-only under it: badger cannot write there again, so every write is
// refused at once instead of waiting on a flush that retries forever.
var ErrFailed = errors.New("chunk store failed")

// closeBound is how long Close waits for badger to flush and close.
const closeBound = 2500 * time.Millisecond

// Space reports the free bytes on the store's file system and the reserve
// the store keeps there.
func (s *Store) Space() (free, reserve int64, err error) {
	free, err = freeSpace(s.dir)
	return free, s.reserve, err
}

// SameFS reports whether dir is on the store's file system.
func (s *Store) SameFS(dir string) bool {
	a, err1 := statFolder(s.dir)
	b, err2 := statFolder(dir)
	return err1 == nil && err2 == nil && a.dev == b.dev
}

// room fails with ErrNoSpace unless n bytes and keep more fit on the disk.
func (s *Store) room(n, keep int64) error {
	if err := s.fault.Load(); err != nil {
		return *err
	}
	free, err := freeSpace(s.dir)
	if err != nil {
		return err
	}
	if free-n < keep {
		return fmt.Errorf("%w in %s: %d bytes to write, %d free, %d kept in reserve", ErrNoSpace, s.dir, n, free, keep)
	}
	return nil
}

// Writable returns nil when the store takes writes, else why not: an
// ErrNoSpace while it is shut for want of space (Recover may fix that), or
// an ErrFailed once Probe found its folder broken.
func (s *Store) Writable() error {
	if err := s.fault.Load(); err != nil {
		return *err
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.writeErr()
}

// writeErr is what a write meets before it reaches badger: a fault, or
// a store shut for want of space; nil when it may go on. The caller holds dbMu.
func (s *Store) writeErr() error {
	if err := s.fault.Load(); err != nil {
		return *err
	}
	if s.db == nil {
		free, _ := freeSpace(s.dir)
		return fmt.Errorf("%w in %s: the store stays shut with %d bytes free, below the %d-byte reserve it needs to open", ErrNoSpace, s.dir, free, s.reserve)
	}
	return nil
}

// openBadger opens the database, unless the disk is below the reserve:
// the store then stays shut, every call failing with ErrNoSpace, until
// Recover finds the space back.
func (s *Store) openBadger() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	free, err := freeSpace(s.dir)
	if err != nil {
		return err
	}
	if free < s.reserve {
		s.log.Error("chunk store shut: the disk is below the reserve; no chunk is stored or served until space returns",
			"dir", s.dir, "free", free, "reserve", s.reserve)
		return nil
	}
	db, err := badger.Open(s.opts)
	if err != nil {
		return err
	}
	if s.packs == nil {
		if s.packs, err = openPacks(s.dir); err != nil {
			db.Close()
			return fmt.Errorf("open packs: %w", err)
		}
	}
	s.db = db
	if err := s.recount(); err != nil {
		db.Close()
		s.db = nil
		return err
	}
	return nil
}

// Recover opens a store shut for want of space once the space is back. It
// does nothing to an open store.
func (s *Store) Recover() error {
	if s.fault.Load() != nil {
		return s.Writable()
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db != nil {
		return nil
	}
	if err := s.room(0, s.reserve); err != nil {
		return err
	}
	if err := s.openBadger(); err != nil {
		return fmt.Errorf("open chunk store %s: %w", s.dir, err)
	}
	c, b := s.Usage()
	s.log.Info("chunk store open again: space is back", "dir", s.dir, "chunks", c, "bytes", b)
	return nil
}

// Probe checks that the store's folder is still the one it opened, and its
// file system still writable. The first failure is kept: from then on every
// write fails at once with it (wrapping ErrFailed), and Close does not wait
// on badger, which would retry its flush forever.
func (s *Store) Probe() error {
	if err := s.fault.Load(); err != nil {
		return *err
	}
	var why string
	id, err := statFolder(s.dir)
	ro, fsErr := readOnlyFS(s.dir)
	switch {
	case err != nil:
		why = fmt.Sprintf("folder is gone (%v)", err)
	case id != s.folder:
		why = "folder was replaced"
	case fsErr != nil:
		why = "file system is gone"
	case ro:
		why = "file system turned read-only"
	case s.opened():
		if _, err := os.Stat(filepath.Join(s.dir, badger.ManifestFilename)); err != nil {
			why = fmt.Sprintf("files are gone (%v)", err)
		}
	}
	if why == "" {
		if werr := writeRefused(s.dir); werr != nil {
			why = fmt.Sprintf("file system refuses writes (%v)", werr)
		}
	}
	if why == "" {
		return nil
	}
	err = fmt.Errorf("%w: %s: its %s; no chunk is stored until the node restarts on a working folder", ErrFailed, s.dir, why)
	s.fault.CompareAndSwap(nil, &err)
	return *s.fault.Load()
}

// probeFile is the empty file Probe creates and removes in the store folder.
const probeFile = ".patchmesh-probe"

// writeRefused creates and removes an empty file in dir, and returns why
// that failed, if it did for another reason than a full disk (which room
// handles). Ext4 after an I/O error turns read-only without statfs saying
// so, while badger's writes to its maps still seem to succeed: only its
// flushes fail, and retry forever.
func writeRefused(dir string) error {
	p := filepath.Join(dir, probeFile)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err == nil {
		err = f.Close()
		if rerr := os.Remove(p); err == nil {
			err = rerr
		}
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return nil
	}
	return err
}

// noteFolder remembers which folder the store opened, for Probe.
func (s *Store) noteFolder() {
	if id, err := statFolder(s.dir); err == nil {
		s.folder = id
	}
}

// close closes badger within closeBound. A store that failed, or whose disk
// is below the reserve, is not closed at all: badger would retry a flush
// forever, or fault writing it. What it leaves is in its memory-mapped
// write-ahead and value logs, which the kernel keeps as after a kill, and
// the next Open replays it.
func (s *Store) close() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if err := s.fault.Load(); err != nil {
		return fmt.Errorf("close chunk store: left open: %w", *err)
	}
	if s.db == nil {
		return nil
	}
	if err := s.room(0, s.reserve/2); err != nil {
		return fmt.Errorf("close chunk store: left open, a flush could not be written: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.db.Close() }()
	select {
	case err := <-done:
		if perr := s.packs.close(); err == nil {
			err = perr
		}
		if err != nil {
			return fmt.Errorf("close chunk store: %w", err)
		}
		return nil
	case <-time.After(closeBound):
		return fmt.Errorf("close chunk store %s: not closed within %s; left to the kernel", s.dir, closeBound)
	}
}

// sync writes the store's logs out.
func (s *Store) sync() error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if err := s.writeErr(); err != nil {
		return err
	}
	return s.db.Sync()
}

// opened reports whether badger is open (not shut for want of space).
func (s *Store) opened() bool {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db != nil
}

// runGC rewrites one value-log file worth it.
func (s *Store) runGC() error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if err := s.writeErr(); err != nil {
		return err
	}
	return s.db.RunValueLogGC(gcDiscardRatio)
}
