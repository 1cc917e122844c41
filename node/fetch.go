package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/source"
)

// wanSource fetches chunks from the update sources in order; a source that sends
// bytes not matching the CID is counted as failed and the next one is asked.
// It holds what it needs, not the node: the mesh reaches it through the
// node's mesh.Delegate, the pipeline as a Source.
type wanSource struct {
	list      *source.List
	codec     *chunk.Codec // decodes compressed chunk files
	st        *store.Store
	followers []*follower // to find manifests by CID; fixed after New
	site      bool        // peers may ask for manifests this node has not seen
	// verifyFailed records a source's bytes that did not match their CID
	// in the node's status.
	verifyFailed func(msg string)
	// The node's WAN counters, kept here where the bytes move: wire bytes
	// and number of the verified chunks read from the sources.
	bytes, chunks atomic.Int64
	// docs maps the CIDs of documents moved like chunks (manifests) to their
	// references in the head.
	docs sync.Map
}

// FetchChunk gets a verified chunk from the sources without storing it, and
// the wire form it was read in (a compressed chunk file, or raw); the mesh
// uses it when this node owns a chunk.
func (w *wanSource) FetchChunk(ctx context.Context, c cid.Cid) (raw, wire []byte, err error) {
	return w.fetchChunk(ctx, c, false)
}

// fetchChunk is FetchChunk; with batch, the chunk may travel in a batch read
// (see read).
func (w *wanSource) fetchChunk(ctx context.Context, c cid.Cid, batch bool) (raw, wire []byte, err error) {
	path, isDoc := repo.ChunkPath(c), false
	if r, ok := w.docs.Load(c); ok {
		data, err := w.readDoc(ctx, c, r.(manifest.Ref))
		if err != nil {
			return nil, nil, fmt.Errorf("fetch manifest %s: %w", c, err)
		}
		return data, data, nil
	}
	raw, wire, err = w.read(ctx, c, path, batch)
	if errors.Is(err, source.ErrNotFound) && !isDoc {
		// A peer may ask us, the owner, for a manifest before our own check
		// reached it: the verified head names it.
		if r, ok := w.manifestRef(ctx, c); ok {
			isDoc = true
			raw, err = w.readDoc(ctx, c, r)
			wire = raw
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fetch chunk %s: %w", c, err)
	}
	if !isDoc {
		w.bytes.Add(int64(len(wire))) // the bytes that moved
		w.chunks.Add(1)
	}
	return raw, wire, nil
}

// read gets path from the sources in order, accepting only bytes that decode
// to c (chunk files may be compressed; documents are read as they are). With
// batch, a chunk may travel in a batch read (source.List.ReadChunk): only for
// the node's own release. A peer's request to its owner may be withdrawn
// while its chunk is in a batch in flight, and the batch brings it anyway:
// in a site whose WAN is slow, TestDashboardInBrowser's seed served a few
// chunks more than the nodes took.
func (w *wanSource) read(ctx context.Context, c cid.Cid, path string, batch bool) (raw, wire []byte, err error) {
	readFn := w.list.ReadVerified
	if batch {
		readFn = w.list.ReadChunk
	}
	wire, _, err = readFn(ctx, path, chunk.MaxSize, func(s source.Source, data []byte) error {
		r, err := w.codec.Decode(c, data, 0)
		if err != nil {
			w.verifyFailed(fmt.Sprintf("chunk %s from %s: %v", c, s, err))
			return err
		}
		raw = r
		return nil
	})
	return raw, wire, err
}

// readDoc reads the manifest r names, as c, in its smallest form the sources have.
func (w *wanSource) readDoc(ctx context.Context, c cid.Cid, r manifest.Ref) ([]byte, error) {
	if ch, seq, ok := repo.ParseManifestPath(r.Path); ok && r.Size <= chunk.MaxSize {
		f := w.followers[0] // a peer's channel: no delta base here, the compressed form may do
		for _, o := range w.followers {
			if o.channel == ch {
				f = o
			}
		}
		if env := f.compactManifest(ctx, ch, seq, r.Size, func(env []byte) bool { return chunk.Verify(c, env) == nil }); env != nil {
			return env, nil
		}
	}
	raw, _, err := w.read(ctx, c, r.Path, false)
	return raw, err
}

// manifestRef reports whether c names the manifest of the current head of a
// channel this node follows (read from the sources and verified) or one of
// its compact forms, and its reference. It is asked only for CIDs this node
// has not seen, which are rare: a peer's manifest request.
func (w *wanSource) manifestRef(ctx context.Context, c cid.Cid) (manifest.Ref, bool) {
	if !w.site {
		return manifest.Ref{}, false
	}
	for _, f := range w.followers {
		h, _, _, err := f.fetchHead(ctx)
		if err != nil {
			continue
		}
		refs := []manifest.Ref{h.Manifest}
		for _, cr := range h.Compact {
			refs = append(refs, cr.Ref())
		}
		for _, r := range refs {
			if rc, err := refCID(r); err == nil && rc.Equals(c) {
				w.docs.Store(c, r)
				return r, true
			}
		}
	}
	return manifest.Ref{}, false
}

// Fetch implements pipeline.Source for a node without a mesh: its chunks
// travel in batches from a source that answers them.
func (w *wanSource) Fetch(ctx context.Context, c cid.Cid) ([]byte, chunk.Origin, error) {
	data, wire, err := w.fetchChunk(ctx, c, true)
	if err != nil {
		return nil, chunk.Origin{}, err
	}
	if err := w.st.PutVerifiedWire(ctx, c, data, wire); err != nil { // fetchChunk verified it
		return nil, chunk.Origin{}, err
	}
	return data, chunk.Origin{WAN: true}, nil
}

// storedOrigins remembers where the chunks the mesh stored came from, until a
// release's fetch claims them. As an owner, a node fetches chunks from its
// WAN for peers ahead of it, often before its own check reaches them; its
// fetch then finds them stored, and the release's record counted them as
// held already. Past maxStoredOrigins unclaimed chunks, more are not noted.
type storedOrigins struct {
	mu sync.Mutex
	m  map[cid.Cid]chunk.Origin
}

const maxStoredOrigins = 1 << 16

func (s *storedOrigins) note(c cid.Cid, o chunk.Origin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[cid.Cid]chunk.Origin)
	}
	if len(s.m) < maxStoredOrigins {
		s.m[c] = o
	}
}

// take returns, and forgets, where the mesh got c, if it noted it.
func (s *storedOrigins) take(c cid.Cid) (chunk.Origin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.m[c]
	if ok {
		delete(s.m, c)
	}
	return o, ok
}
