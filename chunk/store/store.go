// Package store keeps a node's chunks, and a little of its own durable
// state: chunk bytes in pack files of its own, and the records that name
// them, with the rest, in a badger database.
//
// Chunks are verified against their CID before they are written, so a lying
// peer never gets bytes into the store. Chunk writes are not synced: packs
// are written through the page cache, and badger writes its records to its
// memory-mapped write-ahead log, both of which the kernel keeps when the
// process is killed (even with SIGKILL), so only a power loss or kernel
// crash can lose the last writes; such a chunk is just missing and fetched
// again. Neither packs nor badger check a chunk's bytes when they read them
// (badger cuts its newest value log short at a damaged entry when it opens,
// and the values past it then read as empty: chunks stored before packs
// are its values), so every read checks the chunk again: a damaged chunk is
// dropped (ErrCorrupt), never returned, and Scrub finds damage before anyone
// asks for the chunk. A read of the chunk checks it against its size and
// CID. A read of its stored form to serve it (GetWire, AppendWire) checks
// the bytes against a CRC-32C taken when they were written, after they were
// verified: damage is found as surely, for a twentieth of the work and
// without decompressing, and whoever is served checks the CID itself. (A
// distribution point serves every chunk to every member of its site.)
// Meta writes, which record what the node has promised (sequence numbers,
// release records), are synced before SetMeta returns.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

// ErrNotFound means the store holds no chunk, or no meta value, by that name.
var ErrNotFound = errors.New("not found")

// ErrCorrupt means a stored chunk's bytes did not match its CID or its
// recorded size, or could not be read: the disk damaged them. The store drops
// such a chunk as it finds it, so the error wraps ErrNotFound as well once
// the chunk is gone: a caller that fetches a missing chunk again heals it.
var ErrCorrupt = errors.New("stored chunk is damaged")

// corruptError is what a read of a damaged chunk returns.
type corruptError struct {
	cause   error // why its bytes were refused
	dropped bool  // the chunk is gone from the store
}

func (e *corruptError) Error() string {
	if e.dropped {
		return fmt.Sprintf("%v, dropped to be fetched again: %v", ErrCorrupt, e.cause)
	}
	return fmt.Sprintf("%v: %v", ErrCorrupt, e.cause)
}

func (e *corruptError) Unwrap() error { return e.cause }

func (e *corruptError) Is(target error) bool {
	return target == ErrCorrupt || (e.dropped && target == ErrNotFound)
}

// Options tune a Store. Every zero field takes the value DefaultOptions gives;
// the defaults keep badger's own memory to a few tens of MiB, so a node stays
// well under 150 MiB resident while it moves a 2 GiB release.
type Options struct {
	Logger *slog.Logger // nil: discard
	// Codec compresses the chunks Put and PutVerified store, and decodes
	// what Get reads. Zero: a new chunk.Codec at chunk.CompressDefault.
	Codec *chunk.Codec

	// MemTableSize is the size of one in-memory table of keys (0: 8 MiB).
	// Chunk bytes go to the value log, so memtables hold only keys and sizes.
	MemTableSize int64
	// NumMemtables is how many memtables may be held at once (0: 2).
	NumMemtables int
	// BlockCacheSize is the cache of table blocks (0: 8 MiB).
	BlockCacheSize int64
	// IndexCacheSize is the cache of table indexes and bloom filters (0: 4 MiB).
	IndexCacheSize int64
	// ValueLogFileSize is the size of one value-log file (0: 128 MiB). GC
	// gives space back one whole file at a time, and never the newest file.
	ValueLogFileSize int64
	// NumCompactors is how many goroutines compact tables (0: 2, badger's minimum).
	NumCompactors int
	// Damaged, if set, is told of every damaged chunk the store drops, by
	// a read or a scrub, with why it was refused. Nil: it is only logged.
	Damaged func(c cid.Cid, err error)
	// Reserve is the free space on the store's file system that chunk writes
	// leave for badger's own (a memtable flush, a compaction); below it the
	// store opens read-only (0: twice MemTableSize, plus 4 MiB). See ErrNoSpace.
	Reserve int64
}

// DefaultOptions returns the Options a node uses.
func DefaultOptions() Options {
	return Options{
		MemTableSize:     8 << 20,
		NumMemtables:     2,
		BlockCacheSize:   8 << 20,
		IndexCacheSize:   4 << 20,
		ValueLogFileSize: 128 << 20,
		NumCompactors:    2,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.MemTableSize == 0 {
		o.MemTableSize = d.MemTableSize
	}
	if o.NumMemtables == 0 {
		o.NumMemtables = d.NumMemtables
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = d.BlockCacheSize
	}
	if o.IndexCacheSize == 0 {
		o.IndexCacheSize = d.IndexCacheSize
	}
	if o.ValueLogFileSize == 0 {
		o.ValueLogFileSize = d.ValueLogFileSize
	}
	if o.NumCompactors == 0 {
		o.NumCompactors = d.NumCompactors
	}
	if o.Reserve == 0 {
		o.Reserve = 2*o.MemTableSize + 4<<20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Key layout. Chunk bytes and their sizes are kept under separate keys so
// that Size, Usage and ForEach read only the small LSM tree, never the value log.
// A chunk is kept raw, or, where that pays, as a zstd frame; its size record,
// always the raw size, then carries the encoding after the uvarint. Chunks
// stored since packs (pack.go) are in a pack file, and their size record
// names where after the encoding; chunks stored before are values of badger,
// under dataPrefix (raw) or zstdPrefix, and are read as they are. Stores
// written before compression hold only raw chunks, with bare uvarint sizes.
const (
	dataPrefix = "c/" // + binary CID: raw chunk bytes (before packs)
	zstdPrefix = "z/" // + binary CID: the chunk as a zstd frame (before packs)
	sizePrefix = "s/" // + binary CID: uvarint raw size [+ encoding byte [+ packLoc]]
	metaPrefix = "m/" // + caller's key: meta value
	gcPrefix   = "g/" // scratch key GC drops to flush and compact
)

// Encodings of a stored chunk, the byte after its size.
const (
	encRaw      byte = 0 // under dataPrefix; also a size record with no byte
	encZstd     byte = 1 // under zstdPrefix
	encPackRaw  byte = 2 // raw, in a pack
	encPackZstd byte = 3 // a zstd frame, in a pack
	// Since checksums: as encPackRaw and encPackZstd, and the record ends
	// with the CRC-32C (Castagnoli) of the pack bytes, little-endian.
	encPackRawSum  byte = 4
	encPackZstdSum byte = 5
)

// castagnoli is the CRC-32C table: computed in hardware on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is a parsed size record.
type record struct {
	size int64
	enc  byte
	loc  packLoc // where enc is a pack encoding
	sum  uint32  // where enc has a checksum
}

func (r record) inPack() bool {
	return r.enc == encPackRaw || r.enc == encPackZstd || r.summed()
}
func (r record) summed() bool { return r.enc == encPackRawSum || r.enc == encPackZstdSum }
func (r record) zstd() bool {
	return r.enc == encZstd || r.enc == encPackZstd || r.enc == encPackZstdSum
}

func (r record) append(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(r.size))
	if r.enc == encRaw {
		return b
	}
	b = append(b, r.enc)
	if r.inPack() {
		b = r.loc.append(b)
	}
	if r.summed() {
		b = binary.LittleEndian.AppendUint32(b, r.sum)
	}
	return b
}

// valueThreshold sends every chunk to the value log, whose files GC can
// drop, and keeps sizes and small meta values in the LSM tree.
const valueThreshold = 256

// Store is a chunk store. It is safe for concurrent use.
type Store struct {
	// dbMu guards db, which is nil while the store is shut for want of
	// space (space.go) and set by Recover: every use of db holds it shared.
	dbMu  sync.RWMutex
	db    *badger.DB
	packs *packs // chunk bytes; opened with db, and kept
	// legacy makes puts store chunk bytes as badger values, as stores did
	// before packs; tests set it to make such stores.
	legacy bool
	// noSum makes puts write pack records without checksums, as stores did
	// before them; tests set it to make such stores.
	noSum   bool
	opts    badger.Options
	reserve int64
	// fault is the first failure Probe found; every write returns it.
	fault  atomic.Pointer[error]
	folder folderID // the folder opened, as statFolder saw it

	log     *slog.Logger
	codec   *chunk.Codec
	damaged func(c cid.Cid, err error) // Options.Damaged

	// gate lets GC stop writes while it flushes: writers hold it shared.
	gate sync.RWMutex

	// Group commit of chunk puts (see commit).
	pmu        sync.Mutex
	pending    []*put
	committing bool

	chunks, bytes atomic.Int64
	// Damaged chunks dropped, and what scrubs have read.
	dropped, scrubChunks, scrubBytes, scrubPasses atomic.Int64

	// bufs holds MaxSize buffers for WriteTo, which copies a chunk out of
	// badger before writing it, so that a slow writer never holds a read of
	// the value log open.
	bufs sync.Pool

	// dir is the resolved store directory, as /proc/self/maps names it.
	dir string
	// moved counts chunk bytes put or read since the mapped value-log pages
	// were last trimmed (see trimMapped).
	moved atomic.Int64
}

// Open opens (creating if needed) the store in dir and counts what it holds.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	codec := opts.Codec
	if codec == nil {
		var err error
		if codec, err = chunk.NewCodec(chunk.CompressDefault); err != nil {
			return nil, fmt.Errorf("open chunk store %s: %w", dir, err)
		}
	}
	bo := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{opts.Logger}).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(opts.NumMemtables).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithNumCompactors(opts.NumCompactors).
		WithValueThreshold(valueThreshold).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithCompression(options.None). // keys are CIDs: random
		WithMetricsEnabled(false).
		WithSyncWrites(false)
	s := &Store{log: opts.Logger, codec: codec, damaged: opts.Damaged, dir: dir, opts: bo, reserve: opts.Reserve}
	if err := s.openBadger(); err != nil {
		return nil, fmt.Errorf("open chunk store %s: %w", dir, err)
	}
	s.noteFolder()
	if abs, err := filepath.Abs(dir); err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			s.dir = real
		}
	}
	s.bufs.New = func() any { b := make([]byte, 0, chunk.MaxSize); return &b }
	c, b := s.Usage()
	s.log.Info("chunk store open", "dir", dir, "chunks", c, "bytes", b)
	return s, nil
}

// recount rebuilds the in-memory usage from the size index.
func (s *Store) recount() error {
	var chunks, bytes int64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(sizePrefix), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			r, err := readRecord(it.Item())
			if err != nil {
				return err
			}
			chunks++
			bytes += r.size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("count chunks: %w", err)
	}
	s.chunks.Store(chunks)
	s.bytes.Store(bytes)
	return nil
}

// Close flushes and closes the store, within a bound: a store that cannot
// flush is left to the kernel, as after a kill (see close).
func (s *Store) Close() error { return s.close() }

// view runs fn in a read transaction.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return s.writeErr()
	}
	return s.db.View(fn)
}

func dataKey(c cid.Cid, enc byte) []byte {
	if enc == encZstd {
		return append([]byte(zstdPrefix), c.KeyString()...)
	}
	return append([]byte(dataPrefix), c.KeyString()...)
}
func sizeKey(c cid.Cid) []byte { return append([]byte(sizePrefix), c.KeyString()...) }

// readRecord reads a size record.
func readRecord(item *badger.Item) (record, error) {
	var r record
	err := item.Value(func(v []byte) error {
		n, k := binary.Uvarint(v)
		if k <= 0 {
			return fmt.Errorf("bad size record for key %x", item.Key())
		}
		r.size = int64(n)
		if len(v) == k {
			return nil
		}
		r.enc = v[k]
		switch {
		case r.enc == encRaw || r.enc == encZstd:
			if len(v) != k+1 {
				return fmt.Errorf("bad size record for key %x", item.Key())
			}
		case r.inPack():
			v := v[k+1:]
			if r.summed() {
				if len(v) < 4 {
					return fmt.Errorf("bad size record for key %x", item.Key())
				}
				r.sum = binary.LittleEndian.Uint32(v[len(v)-4:])
				v = v[:len(v)-4]
			}
			loc, err := parsePackLoc(v)
			if err != nil {
				return fmt.Errorf("size record for key %x: %w", item.Key(), err)
			}
			r.loc = loc
		default:
			return fmt.Errorf("size record for key %x: unknown encoding %d", item.Key(), r.enc)
		}
		return nil
	})
	return r, err
}

// update runs fn in a write transaction, again on a conflict with a
// concurrent one, so that the read-then-write in fn is atomic.
func (s *Store) update(ctx context.Context, fn func(txn *badger.Txn) error) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if err := s.writeErr(); err != nil {
		return err
	}
	for {
		err := s.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Put verifies data against c and stores it. Storing a chunk already held
// does nothing. Bytes that do not match c are refused with an error wrapping
// chunk.ErrMismatch (or chunk.ErrUnsupported, chunk.ErrTooLarge), and nothing
// is written.
func (s *Store) Put(ctx context.Context, c cid.Cid, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put chunk %s: %w", c, err)
	}
	if err := chunk.Verify(c, data); err != nil {
		return fmt.Errorf("put chunk: %w", err)
	}
	return s.PutVerified(ctx, c, data)
}

// PutVerified stores data, which the caller has just checked against c with
// chunk.Verify, without hashing it again: the node's fetch paths verify every
// chunk as it arrives, and a second SHA-256 per chunk was measurable CPU on a
// site of many nodes. Anything else uses Put. It compresses data where that
// pays; a caller holding the wire form already uses PutVerifiedWire.
func (s *Store) PutVerified(ctx context.Context, c cid.Cid, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put chunk %s: %w", c, err)
	}
	return s.PutVerifiedWire(ctx, c, data, s.codec.Encode(data))
}

// PutVerifiedWire stores the chunk raw, verified against c by the caller, in
// its wire form wire: the bytes raw was decoded from (chunk.Codec.Decode), or
// raw itself. The compressed form is kept when wire is a zstd frame shorter
// than raw, so a chunk from a repository or a peer is not compressed again.
func (s *Store) PutVerifiedWire(ctx context.Context, c cid.Cid, raw, wire []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put chunk %s: %w", c, err)
	}
	data, zstd := raw, false
	if len(wire) < len(raw) && chunk.IsFrame(wire) {
		data, zstd = wire, true
	}
	// Badger would fault, not fail, writing to a full disk (see ErrNoSpace).
	if err := s.room(int64(len(data)), s.reserve); err != nil {
		return fmt.Errorf("put chunk %s: %w", c, err)
	}
	p := &put{c: c, data: data, zstd: zstd, rawSize: len(raw), wake: make(chan struct{})}
	if err := s.commit(p); err != nil {
		return fmt.Errorf("put chunk %s: %w", c, err)
	}
	return nil
}

// put is one chunk waiting to be written by a group commit.
type put struct {
	c       cid.Cid
	data    []byte // as stored
	zstd    bool   // data is a zstd frame
	rawSize int
	// rec is the size record, set by the commit: in a pack, or not.
	rec record
	// held is set by the commit when the store held the chunk already.
	held bool
	// move, when set, makes the put a move of a held chunk out of an old
	// pack: its record is replaced only if it is still *move.
	move *record

	// Set by the commit that wrote it, before wake is closed.
	err  error
	lead bool // woken to lead the next commit instead
	wake chan struct{}
}

// maxGroup bounds the chunks of one group commit.
const maxGroup = 256

// commit writes p together with the puts that arrived meanwhile, in one
// transaction. Chunks arrive from many fetches at once; one transaction per
// chunk made badger encode every value-log write into a fresh buffer grown
// from empty, about as many bytes of garbage as the chunks themselves, and a
// commit's wait for badger's writer per chunk. The first caller to find no
// commit running leads: it commits everything pending, then hands the lead
// to the oldest put that arrived during its commit, so no caller commits
// for others for long.
func (s *Store) commit(p *put) error {
	s.pmu.Lock()
	s.pending = append(s.pending, p)
	if s.committing {
		s.pmu.Unlock()
		<-p.wake
		if !p.lead {
			return p.err
		}
		s.pmu.Lock()
	}
	s.committing = true
	n := min(len(s.pending), maxGroup)
	batch := s.pending[:n:n]
	s.pending = append([]*put(nil), s.pending[n:]...)
	s.pmu.Unlock()

	s.commitGroup(batch)

	s.pmu.Lock()
	if len(s.pending) > 0 {
		next := s.pending[0]
		next.lead = true
		close(next.wake)
	} else {
		s.committing = false
	}
	s.pmu.Unlock()
	for _, q := range batch {
		if q != p {
			close(q.wake)
		}
	}
	return p.err
}

// commitGroup writes the puts of batch: their bytes to the pack, then their
// records in one transaction, and sets each put's error.
func (s *Store) commitGroup(batch []*put) {
	if err := s.writePacks(batch); err != nil {
		for _, p := range batch {
			p.err = err
		}
		return
	}
	s.commitRecords(batch)
}

// writePacks marks the puts of batch whose chunk the store holds already, or
// that repeat one before them in batch, as held, and gives the others their
// records: their bytes appended to the current pack (as badger values in a
// legacy store). It is the one place a commit asks whether a chunk is held.
func (s *Store) writePacks(batch []*put) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if err := s.writeErr(); err != nil {
		return err
	}
	held := make(map[cid.Cid]bool, len(batch))
	err := s.db.View(func(txn *badger.Txn) error {
		for _, p := range batch {
			if _, err := txn.Get(sizeKey(p.c)); err == nil {
				held[p.c] = true
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range batch {
		if p.move == nil && held[p.c] {
			p.held = true
			continue
		}
		held[p.c] = true // twice in this batch: the first is written
		if s.legacy {
			p.rec = record{size: int64(p.rawSize), enc: encRaw}
			if p.zstd {
				p.rec.enc = encZstd
			}
			continue
		}
		loc, err := s.packs.append(p.data)
		if err != nil {
			return err
		}
		p.rec = record{size: int64(p.rawSize), enc: encPackRawSum, loc: loc, sum: crc32.Checksum(p.data, castagnoli)}
		if p.zstd {
			p.rec.enc = encPackZstdSum
		}
		if s.noSum {
			p.rec.enc, p.rec.sum = encPackRaw, 0
			if p.zstd {
				p.rec.enc = encPackZstd
			}
		}
	}
	return s.packs.flush()
}

// commitRecords commits the records of the puts of batch in one
// transaction, or in halves when badger finds it too big, and sets each
// put's error. A put writePacks found held is not written: only one commit
// runs at a time, so no other put can have stored its chunk since.
func (s *Store) commitRecords(batch []*put) {
	added := make([]bool, len(batch))
	// The puts are not bound to one caller's context: a commit is short,
	// and ends even if the caller that leads it gives up.
	err := s.update(context.Background(), func(txn *badger.Txn) error {
		clear(added)
		for i, p := range batch {
			if p.held {
				continue // held when its bytes would have been written
			}
			sk := sizeKey(p.c)
			if p.move != nil {
				item, err := txn.Get(sk)
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue // deleted meanwhile: its new bytes are dead
				} else if err != nil {
					return err
				}
				if r, err := readRecord(item); err != nil || r != *p.move {
					continue // deleted and put again meanwhile
				}
				if err := txn.Set(sk, p.rec.append(nil)); err != nil {
					return err
				}
				continue
			}
			if !p.rec.inPack() {
				if err := txn.Set(dataKey(p.c, p.rec.enc), p.data); err != nil {
					return err
				}
			}
			if err := txn.Set(sk, p.rec.append(nil)); err != nil {
				return err
			}
			added[i] = true
		}
		return nil
	})
	if errors.Is(err, badger.ErrTxnTooBig) && len(batch) > 1 {
		s.commitRecords(batch[:len(batch)/2])
		s.commitRecords(batch[len(batch)/2:])
		return
	}
	for i, p := range batch {
		p.err = err
		if err != nil {
			continue
		}
		if !p.rec.inPack() {
			s.account(len(p.data))
		}
		if added[i] {
			s.chunks.Add(1)
			s.bytes.Add(int64(p.rawSize))
			s.log.Debug("chunk stored", "cid", p.c, "size", p.rawSize, "stored", len(p.data))
		}
	}
}

// Has reports whether the store holds c.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	_, err := s.size(ctx, c)
	if err == badger.ErrKeyNotFound {
		// Not formatted: a node pulling a release into an empty store asks
		// this of every chunk.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("size of chunk %s: %w", c, err)
	}
	return true, nil
}

// Size returns the length of chunk c, or an error wrapping ErrNotFound.
func (s *Store) Size(ctx context.Context, c cid.Cid) (int64, error) {
	n, err := s.size(ctx, c)
	if err == badger.ErrKeyNotFound {
		err = ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("size of chunk %s: %w", c, err)
	}
	return n, nil
}

// size returns the length of chunk c, or badger.ErrKeyNotFound itself.
func (s *Store) size(ctx context.Context, c cid.Cid) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(sizeKey(c))
		if err != nil {
			return err
		}
		r, err := readRecord(item)
		n = r.size
		return err
	})
	return n, err
}

// Get returns a copy of chunk c, raw, checked against c. The error wraps
// ErrNotFound when c is absent, and ErrCorrupt (and ErrNotFound) when its
// stored bytes were damaged and it has been dropped.
func (s *Store) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	var out []byte
	err := s.read(ctx, c, nil, false, func(_, raw []byte) error {
		out = raw
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get chunk %s: %w", c, err)
	}
	return out, nil
}

// GetWire returns a copy of chunk c as stored: a zstd frame where that paid,
// else raw; chunk.Codec.Decode reads both. It is what peers and repository
// clients are served, so it is checked first, by its checksum (see the
// package comment) or, stored before checksums, against c: a damaged chunk
// is dropped, never served. Errors as Get's.
func (s *Store) GetWire(ctx context.Context, c cid.Cid) ([]byte, error) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	out, err := s.AppendWire(ctx, c, (*bp)[:0])
	if err != nil {
		return nil, err
	}
	return append(make([]byte, 0, len(out)), out...), nil
}

// AppendWire appends chunk c as stored to dst, checked as GetWire's, and
// returns the extended slice. A chunk stored with a checksum is read
// straight into dst's spare capacity where it fits (chunk.MaxSize of it
// always does), so that a server reading into its response buffer copies
// nothing. On error dst's contents are unchanged, its spare capacity may not
// be.
func (s *Store) AppendWire(ctx context.Context, c cid.Cid, dst []byte) ([]byte, error) {
	var out []byte
	err := s.read(ctx, c, dst[len(dst):], true, func(wire, _ []byte) error {
		if spare := dst[len(dst):cap(dst)]; len(wire) > 0 && len(spare) >= len(wire) && &spare[0] == &wire[0] {
			out = dst[:len(dst)+len(wire)]
		} else {
			out = append(dst, wire...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get chunk %s: %w", c, err)
	}
	return out, nil
}

// read calls fn with the stored bytes of c, valid only during the call, and
// with the chunk raw, decoded into buf (nil: a new slice of the chunk's size)
// and checked: of its recorded size and hashing to c. With wireOnly, only the
// stored bytes are wanted: where the record has a checksum they are read
// into buf and checked against it alone, and raw is nil. A chunk that fails
// a check, or whose bytes badger cannot read, is dropped, and read returns a
// *corruptError. Checking here, on every read, is the one place the bytes
// of the disk are trusted no further than a peer's: a damaged value log
// returns wrong bytes, or none, without an error.
func (s *Store) read(ctx context.Context, c cid.Cid, buf []byte, wireOnly bool, fn func(wire, raw []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var damage error
	var rec record
	err := s.view(func(txn *badger.Txn) error {
		si, err := txn.Get(sizeKey(c))
		if err != nil {
			return err
		}
		if rec, err = readRecord(si); err != nil {
			return err
		}
		if rec.inPack() {
			return nil // read below, outside the transaction
		}
		item, err := txn.Get(dataKey(c, rec.enc))
		if err != nil {
			return err
		}
		s.account(int(item.ValueSize()))
		verr := item.Value(func(v []byte) error {
			raw, err := s.decode(buf, v, rec.size, rec.zstd())
			if err == nil {
				err = chunk.Verify(c, raw)
			}
			if err != nil {
				damage = err
				return err
			}
			return fn(v, raw)
		})
		if verr != nil && damage == nil && !errors.Is(verr, badger.ErrDBClosed) {
			damage = verr // badger could not read the value log
		}
		return verr
	})
	if err == nil && rec.inPack() {
		var wbuf []byte // a compressed chunk's stored bytes, until fn returns
		if rec.zstd() && !(wireOnly && rec.summed()) {
			bp := s.bufs.Get().(*[]byte)
			defer s.bufs.Put(bp)
			wbuf = (*bp)[:0]
		}
		wire, raw, perr := s.readPack(c, rec, buf, wbuf, wireOnly)
		if perr != nil {
			damage = perr
		} else {
			err = fn(wire, raw)
		}
	}
	if damage != nil {
		return s.drop(ctx, c, &rec, damage)
	}
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	return err
}

// readPack reads chunk c, whose record is rec, from its pack: its stored
// bytes, into wbuf when compressed, and raw decoded into buf (nil: a new
// slice), checked against their checksum where the record has one and
// against c. With wireOnly and a checksum, the stored bytes alone are read,
// into buf, and checked against the checksum alone; raw is nil.
func (s *Store) readPack(c cid.Cid, rec record, buf, wbuf []byte, wireOnly bool) (wire, raw []byte, err error) {
	if rec.loc.n > 2*chunk.MaxSize {
		return nil, nil, fmt.Errorf("size record names %d bytes in a pack", rec.loc.n)
	}
	if !rec.zstd() && int64(rec.loc.n) != rec.size {
		return nil, nil, fmt.Errorf("size record names %d raw bytes for a chunk of %d", rec.loc.n, rec.size)
	}
	wireOnly = wireOnly && rec.summed()
	if !rec.zstd() || wireOnly {
		wbuf = buf // the stored bytes are what is returned
	}
	if wire, err = s.packs.read(rec.loc, wbuf); err != nil {
		return nil, nil, err
	}
	if rec.summed() && crc32.Checksum(wire, castagnoli) != rec.sum {
		return nil, nil, errors.New("pack bytes do not match their checksum")
	}
	if wireOnly {
		return wire, nil, nil
	}
	raw = wire
	if rec.zstd() {
		if raw, err = s.decode(buf, wire, rec.size, true); err != nil {
			return nil, nil, err
		}
	}
	return wire, raw, chunk.Verify(c, raw)
}

// decode appends chunk c, raw, to dst (nil: a new slice) from its stored
// bytes v, and checks its length against the recorded size.
func (s *Store) decode(dst, v []byte, size int64, zstd bool) ([]byte, error) {
	if size > chunk.MaxSize {
		return nil, fmt.Errorf("recorded size %d: %w", size, chunk.ErrTooLarge)
	}
	if dst == nil {
		dst = make([]byte, 0, size)
	}
	raw := dst
	if zstd {
		var err error
		if raw, err = s.codec.Decompress(dst, v, int(size)); err != nil {
			return nil, err
		}
	} else {
		raw = append(dst, v...)
	}
	if int64(len(raw)) != size {
		return nil, fmt.Errorf("%d bytes, recorded size %d", len(raw), size)
	}
	return raw, nil
}

// WriteTo writes chunk c, raw and checked against c, to w and returns the
// bytes written. Errors as Get's; on ErrNotFound nothing was written.
func (s *Store) WriteTo(ctx context.Context, c cid.Cid, w io.Writer) (int64, error) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	var out []byte
	// Decoded into the pooled buffer inside the read, written outside it,
	// so that a slow writer never holds a read of the value log open.
	err := s.read(ctx, c, (*bp)[:0], false, func(_, raw []byte) error {
		out = raw
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("write chunk %s: %w", c, err)
	}
	n, err := w.Write(out)
	if err != nil {
		return int64(n), fmt.Errorf("write chunk %s: %w", c, err)
	}
	return int64(n), nil
}

// Delete removes chunk c. Deleting a chunk the store does not hold does
// nothing. The space comes back on disk after GC.
func (s *Store) Delete(ctx context.Context, c cid.Cid) error {
	_, err := s.remove(ctx, c, nil)
	return err
}

// drop removes c, whose stored bytes were refused for cause, and returns the
// *corruptError the read reports.
func (s *Store) drop(ctx context.Context, c cid.Cid, rec *record, cause error) error {
	// Dropped even when the read's caller gave up meanwhile: the bytes are
	// bad whoever asks next. Only as read: deleted and put again since, the
	// chunk is elsewhere now.
	found, err := s.remove(context.WithoutCancel(ctx), c, rec)
	if err != nil {
		s.log.Error("chunk store: drop damaged chunk", "cid", c, "err", err, "damage", cause)
		return &corruptError{cause: cause}
	}
	if found { // not dropped already by a concurrent read
		s.dropped.Add(1)
		s.log.Warn("chunk store: damaged chunk dropped", "cid", c, "err", cause)
		if s.damaged != nil {
			s.damaged(c, cause)
		}
	}
	return &corruptError{cause: cause, dropped: true}
}

// remove deletes c, if its record is want (nil: whatever it is), and
// reports whether it did. A chunk in a pack gives its bytes' space back
// where the file system can punch holes.
func (s *Store) remove(ctx context.Context, c cid.Cid, want *record) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("delete chunk %s: %w", c, err)
	}
	var rec record
	var found bool
	err := s.update(ctx, func(txn *badger.Txn) error {
		found = false
		sk := sizeKey(c)
		item, err := txn.Get(sk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if rec, err = readRecord(item); err != nil {
			return err
		}
		if want != nil && rec != *want {
			return nil
		}
		found = true
		if !rec.inPack() {
			if err := txn.Delete(dataKey(c, rec.enc)); err != nil {
				return err
			}
		}
		return txn.Delete(sk)
	})
	if err != nil {
		return false, fmt.Errorf("delete chunk %s: %w", c, err)
	}
	if found {
		if rec.inPack() {
			s.packs.free(rec.loc)
		}
		s.chunks.Add(-1)
		s.bytes.Add(-rec.size)
		s.log.Debug("chunk deleted", "cid", c, "size", rec.size)
	}
	return found, nil
}

// trimEvery is how many chunk bytes may pass through badger's mapped value
// log between two trims: it bounds what they add to resident memory.
const trimEvery = 32 << 20

// account counts n bytes moved and trims the mapped value log now and then.
func (s *Store) account(n int) {
	if s.moved.Add(int64(n)) < trimEvery {
		return
	}
	s.moved.Store(0)
	if err := trimMapped(s.dir); err != nil {
		s.log.Warn("chunk store trim", "err", err)
	}
}

// Usage returns how many chunks the store holds and their total size.
func (s *Store) Usage() (chunks int64, bytes int64) {
	return s.chunks.Load(), s.bytes.Load()
}

// forEachBatch is how many chunks ForEach reads per transaction: fn runs
// outside any transaction, so it may call the Store and take its time.
const forEachBatch = 1024

// ForEach calls fn for every chunk the store holds, in CID byte order, with
// its size. It stops at, and returns, the first error of fn. Chunks put or
// deleted during the walk may or may not be seen.
func (s *Store) ForEach(ctx context.Context, fn func(c cid.Cid, size int64) error) error {
	type entry struct {
		c    cid.Cid
		size int64
	}
	seek := []byte(sizePrefix)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walk chunks: %w", err)
		}
		var batch []entry
		err := s.view(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(sizePrefix), PrefetchValues: false})
			defer it.Close()
			for it.Seek(seek); it.Valid() && len(batch) < forEachBatch; it.Next() {
				item := it.Item()
				k := item.Key()
				if len(batch) == 0 && len(seek) > len(sizePrefix) && string(k) == string(seek) {
					continue // the last key of the previous batch
				}
				c, err := cid.Cast(k[len(sizePrefix):])
				if err != nil {
					return fmt.Errorf("bad chunk key %x: %w", k, err)
				}
				r, err := readRecord(item)
				if err != nil {
					return err
				}
				batch = append(batch, entry{c, r.size})
				seek = item.KeyCopy(seek[:0])
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("walk chunks: %w", err)
		}
		for _, e := range batch {
			if err := fn(e.c, e.size); err != nil {
				return err
			}
		}
		if len(batch) < forEachBatch {
			return nil
		}
	}
}

// GetMeta returns the value stored under key, or an error wrapping ErrNotFound.
func (s *Store) GetMeta(key string) ([]byte, error) {
	var out []byte
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(metaPrefix + key))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get meta %q: %w", key, err)
	}
	return out, nil
}

// SetMeta stores val under key; it is on disk when SetMeta returns.
func (s *Store) SetMeta(key string, val []byte) error { return s.setMeta(key, val, true) }

// SetMetaLazy stores val under key like SetMeta, but leaves it to reach the
// disk with the rest of the store: a crash may lose it, not corrupt it. A sync
// writes out the whole value log, every chunk put since the last one: after a
// release, tens of MiB that nothing needs on disk at that moment.
func (s *Store) SetMetaLazy(key string, val []byte) error { return s.setMeta(key, val, false) }

func (s *Store) setMeta(key string, val []byte, sync bool) error {
	if key == "" {
		return errors.New("set meta: empty key")
	}
	if err := s.room(int64(len(val)), s.reserve/2); err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	err := s.update(context.Background(), func(txn *badger.Txn) error {
		return txn.Set([]byte(metaPrefix+key), val)
	})
	if err == nil && sync {
		err = s.sync()
	}
	if err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	return nil
}

// DeleteMeta removes key; removing a missing key does nothing. It is on
// disk when DeleteMeta returns.
func (s *Store) DeleteMeta(key string) error {
	err := s.update(context.Background(), func(txn *badger.Txn) error {
		return txn.Delete([]byte(metaPrefix + key))
	})
	if err == nil {
		err = s.sync()
	}
	if err != nil {
		return fmt.Errorf("delete meta %q: %w", key, err)
	}
	return nil
}

// ListMeta returns every meta key starting with prefix, with its value.
func (s *Store) ListMeta(prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	p := []byte(metaPrefix + prefix)
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[strings.TrimPrefix(string(it.Item().Key()), metaPrefix)] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list meta %q: %w", prefix, err)
	}
	return out, nil
}

// gcDiscardRatio is the share of a value-log file that must be dead before
// GC rewrites it.
const gcDiscardRatio = 0.5

// GC gives back the disk space of deleted chunks. Writes wait while it
// flushes the key tables; reads go on. It returns when no value-log file is
// worth rewriting, or when ctx is done.
func (s *Store) GC(ctx context.Context) error {
	if err := s.Writable(); err != nil {
		return fmt.Errorf("gc chunk store: %w", err)
	}
	if err := s.flush(); err != nil {
		return fmt.Errorf("gc chunk store: %w", err)
	}
	files := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("gc chunk store: %w", err)
		}
		err := s.runGC()
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			moved, err := s.compactPacks(ctx)
			if err != nil {
				return fmt.Errorf("gc chunk store: %w", err)
			}
			packs, err := s.removeUnusedPacks(ctx)
			if err != nil {
				return fmt.Errorf("gc chunk store: %w", err)
			}
			s.log.Info("chunk store gc done", "files", files, "packs removed", packs, "chunks moved", moved)
			return nil
		}
		if err != nil {
			return fmt.Errorf("gc chunk store: %w", err)
		}
		files++
	}
}

// removeUnusedPacks removes the packs, but the current one, that no chunk's
// record names, and returns how many.
func (s *Store) removeUnusedPacks(ctx context.Context) (int, error) {
	if !s.opened() {
		return 0, nil
	}
	keepFrom := s.packs.current()
	live := make(map[uint32]bool)
	err := s.packRecords(ctx, func(_ cid.Cid, r record) { live[r.loc.pack] = true })
	if err != nil {
		return 0, err
	}
	return s.packs.removeUnused(live, keepFrom)
}

// packRecords calls fn for every chunk kept in a pack, with its record.
func (s *Store) packRecords(ctx context.Context, fn func(c cid.Cid, r record)) error {
	return s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(sizePrefix), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := readRecord(it.Item())
			if err != nil {
				return err
			}
			if r.inPack() {
				c, err := cid.Cast(it.Item().Key()[len(sizePrefix):])
				if err != nil {
					return fmt.Errorf("bad chunk key %x: %w", it.Item().Key(), err)
				}
				fn(c, r)
			}
		}
		return nil
	})
}

// compactDead is the share of a closed pack that must be dead before GC
// moves its live chunks to the current pack, so that the pack can go. Where
// the file system punches holes, a deleted chunk's space came back already;
// elsewhere this is how it comes back.
const compactDead = 0.5

// compactPacks moves the live chunks of every closed pack that is mostly dead
// to the current pack, and returns how many it moved. removeUnusedPacks then
// removes the emptied packs. A chunk that fails its check on the way is
// dropped, as on any read.
func (s *Store) compactPacks(ctx context.Context) (int, error) {
	if !s.opened() {
		return 0, nil
	}
	keepFrom := s.packs.current()
	type held struct {
		c cid.Cid
		r record
	}
	byPack := make(map[uint32][]held)
	liveBytes := make(map[uint32]int64)
	err := s.packRecords(ctx, func(c cid.Cid, r record) {
		if r.loc.pack < keepFrom {
			byPack[r.loc.pack] = append(byPack[r.loc.pack], held{c, r})
			liveBytes[r.loc.pack] += int64(r.loc.n)
		}
	})
	if err != nil {
		return 0, err
	}
	moved := 0
	for n, chunks := range byPack {
		size, err := s.packs.size(n)
		if err != nil || float64(liveBytes[n]) > (1-compactDead)*float64(size) {
			continue
		}
		for _, h := range chunks {
			if err := ctx.Err(); err != nil {
				return moved, err
			}
			var wire []byte
			// Checked by its checksum where it has one: the move keeps its
			// bytes as they are, and gives the chunk a checksum otherwise.
			err := s.read(ctx, h.c, nil, true, func(w, _ []byte) error {
				wire = append([]byte(nil), w...)
				return nil
			})
			if err != nil {
				continue // dropped, or deleted meanwhile
			}
			if err := s.room(int64(len(wire)), s.reserve); err != nil {
				// The pack's space comes back only once it is moved: the
				// next GC tries again.
				s.log.Warn("chunk store gc: packs not compacted", "err", err)
				return moved, nil
			}
			r := h.r
			// Moved only while its record is still r, so wire is in r's encoding.
			p := &put{c: h.c, data: wire, zstd: r.zstd(), rawSize: int(r.size), move: &r, wake: make(chan struct{})}
			if err := s.commit(p); err != nil {
				return moved, fmt.Errorf("move chunk %s out of pack %s: %w", h.c, packName(n), err)
			}
			moved++
		}
	}
	return moved, nil
}

// flush writes the memtables out and compacts level 0. Badger learns which
// value-log bytes are dead only when compaction drops the keys that pointed
// at them; keys are small, so without this a memtable could hold deletions
// for a long time. Dropping a scratch prefix is the one public call that does
// both.
func (s *Store) flush() error {
	s.gate.Lock()
	defer s.gate.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(gcPrefix+"flush"), nil)
	}); err != nil {
		return err
	}
	return s.db.DropPrefix([]byte(gcPrefix))
}

// badgerLogger sends badger's log to slog: its info is our debug, its
// debug below that.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, f string, a []any) {
	if b.l.Enabled(context.Background(), level) {
		b.l.Log(context.Background(), level, "badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)))
	}
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug-4, f, a) }
