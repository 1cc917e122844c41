package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/source"
)

// memStore is an in-memory Store. It fails the test if anything puts bytes
// that do not match their CID, and counts the Has calls per chunk.
type memStore struct {
	t    testing.TB
	mu   sync.Mutex
	m    map[cid.Cid][]byte
	has  map[cid.Cid]int
	gets int
	// writes counts WriteTo calls: the assembly's reads of the store.
	writes int
	lose   map[cid.Cid]bool // collected once WriteTo reaches them
}

func newMemStore(t testing.TB) *memStore {
	return &memStore{t: t, m: make(map[cid.Cid][]byte), has: make(map[cid.Cid]int), lose: make(map[cid.Cid]bool)}
}

func (s *memStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.has[c]++
	_, ok := s.m[c]
	return ok, nil
}

func (s *memStore) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	data, ok := s.m[c]
	if !ok {
		return nil, fmt.Errorf("get chunk %s: %w", c, store.ErrNotFound)
	}
	return bytes.Clone(data), nil
}

func (s *memStore) PutVerifiedWire(ctx context.Context, c cid.Cid, raw, _ []byte) error {
	return s.PutVerified(ctx, c, raw)
}

func (s *memStore) PutVerified(_ context.Context, c cid.Cid, data []byte) error {
	if err := chunk.Verify(c, data); err != nil {
		s.t.Errorf("stored bytes that do not match their CID: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[c] = bytes.Clone(data)
	return nil
}

func (s *memStore) WriteTo(_ context.Context, c cid.Cid, w io.Writer) (int64, error) {
	s.mu.Lock()
	s.writes++
	if s.lose[c] {
		delete(s.lose, c)
		delete(s.m, c)
	}
	data, ok := s.m[c]
	s.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("write chunk %s: %w", c, store.ErrNotFound)
	}
	n, err := w.Write(data)
	return int64(n), err
}

func (s *memStore) hasCalls(c cid.Cid) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.has[c]
}

// fakeSource serves chunks from a map and, as the Source contract asks,
// stores what it returns. It counts calls, and can fail or stall.
type fakeSource struct {
	st     *memStore
	origin chunk.Origin
	fail   error // every Fetch fails with it
	stall  func(cid.Cid) bool

	mu       sync.Mutex
	data     map[cid.Cid][]byte
	calls    map[cid.Cid]int
	inflight atomic.Int32
	started  chan struct{} // gets a value as each Fetch starts, if not full
}

func newFakeSource(st *memStore, data map[cid.Cid][]byte) *fakeSource {
	return &fakeSource{st: st, origin: chunk.Origin{WAN: true}, data: data, calls: make(map[cid.Cid]int), started: make(chan struct{}, 1)}
}

func (f *fakeSource) Fetch(ctx context.Context, c cid.Cid) ([]byte, chunk.Origin, error) {
	f.inflight.Add(1)
	defer f.inflight.Add(-1)
	select {
	case f.started <- struct{}{}:
	default:
	}
	f.mu.Lock()
	f.calls[c]++
	data, ok := f.data[c]
	f.mu.Unlock()
	if f.stall != nil && f.stall(c) {
		<-ctx.Done()
		return nil, chunk.Origin{}, ctx.Err()
	}
	if f.fail != nil {
		return nil, chunk.Origin{}, f.fail
	}
	if !ok {
		return nil, chunk.Origin{}, fmt.Errorf("chunk %s: %w", c, source.ErrNotFound)
	}
	if err := f.st.PutVerified(ctx, c, data); err != nil {
		return nil, chunk.Origin{}, err
	}
	return data, f.origin, nil
}

func (f *fakeSource) callsFor(c cid.Cid) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[c]
}

func (f *fakeSource) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, k := range f.calls {
		n += k
	}
	return n
}

// testChunkSize cuts test files into several chunks.
const testChunkSize = 1000

// regular returns a regular file of data, cut into chunks of testChunkSize,
// and adds the chunks to chunks.
func regular(path string, mode uint32, data []byte, chunks map[cid.Cid][]byte) manifest.File {
	sum := sha256.Sum256(data)
	f := manifest.File{Path: path, Mode: mode, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	for off := 0; off < len(data); off += testChunkSize {
		part := data[off:min(off+testChunkSize, len(data))]
		c := chunk.Sum(part)
		chunks[c] = part
		f.Chunks = append(f.Chunks, manifest.ChunkRef{CID: c, Size: uint32(len(part))})
	}
	return f
}

// randomBytes returns n bytes that differ by seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// edited returns data with one byte changed every step bytes from off.
func edited(data []byte, off, step int) []byte {
	out := bytes.Clone(data)
	for i := off; i < len(out); i += step {
		out[i] ^= 0xff
	}
	return out
}
