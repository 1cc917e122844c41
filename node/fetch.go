package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/mesh"
	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/source"
)

// ChunkSource is where the node gets a chunk it lacks. The update sources (WAN)
// and the site mesh are the two implementations; the mesh falls back to the WAN.
type ChunkSource interface {
	// Fetch returns the verified bytes of c, already in the store, and where they came from.
	Fetch(ctx context.Context, c cid.Cid) ([]byte, Origin, error)
}

// Origin says where a chunk came from.
type Origin struct {
	WAN  bool   // from an update source
	Peer string // from this site member
}

// wanSource fetches chunks from the update sources in order; a source that sends
// bytes not matching the CID is counted as failed and the next one is asked.
type wanSource struct {
	list  *source.List
	node  *Node
	codec *chunk.Codec // decodes compressed chunk files
	// docs maps the CIDs of documents moved like chunks (manifests) to their
	// references in the head.
	docs sync.Map
}

// FetchChunk gets a verified chunk from the sources without storing it, and
// the wire form it was read in (a compressed chunk file, or raw); the mesh
// uses it when this node owns a chunk.
func (w *wanSource) FetchChunk(ctx context.Context, c cid.Cid) (raw, wire []byte, err error) {
	path, isDoc := repo.ChunkPath(c), false
	if r, ok := w.docs.Load(c); ok {
		data, err := w.readDoc(ctx, c, r.(manifest.Ref))
		if err != nil {
			return nil, nil, fmt.Errorf("fetch manifest %s: %w", c, err)
		}
		return data, data, nil
	}
	raw, wire, err = w.read(ctx, c, path)
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
		w.node.countWAN(int64(len(wire))) // the bytes that moved
	}
	return raw, wire, nil
}

// read gets path from the sources in order, accepting only bytes that decode
// to c (chunk files may be compressed; documents are read as they are).
func (w *wanSource) read(ctx context.Context, c cid.Cid, path string) (raw, wire []byte, err error) {
	wire, _, err = w.list.ReadVerified(ctx, path, chunk.MaxSize, func(s source.Source, data []byte) error {
		r, err := w.codec.Decode(c, data, 0)
		if err != nil {
			w.node.verifyFailed(fmt.Sprintf("chunk %s from %s: %v", c, s, err))
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
		if env := w.node.compactManifest(ctx, ch, seq, r.Size, func(env []byte) bool { return chunk.Verify(c, env) == nil }); env != nil {
			return env, nil
		}
	}
	raw, _, err := w.read(ctx, c, r.Path)
	return raw, err
}

// manifestRef reports whether c names the manifest of the channel's current
// head (read from the sources and verified) or one of its compact forms, and
// its reference. It is asked
// only for CIDs this node has not seen, which are rare: a peer's manifest request.
func (w *wanSource) manifestRef(ctx context.Context, c cid.Cid) (manifest.Ref, bool) {
	if w.node.mesh == nil {
		return manifest.Ref{}, false
	}
	h, _, _, err := w.node.fetchHead(ctx)
	if err != nil {
		return manifest.Ref{}, false
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
	return manifest.Ref{}, false
}

// Fetch implements ChunkSource for a node without a mesh.
func (w *wanSource) Fetch(ctx context.Context, c cid.Cid) ([]byte, Origin, error) {
	data, wire, err := w.FetchChunk(ctx, c)
	if err != nil {
		return nil, Origin{}, err
	}
	if err := w.node.store.PutVerifiedWire(ctx, c, data, wire); err != nil { // FetchChunk verified it
		return nil, Origin{}, err
	}
	return data, Origin{WAN: true}, nil
}

// meshSource asks the site first; the mesh itself falls back to our WAN source.
type meshSource struct{ m *mesh.Mesh }

// Owned reports, for a release's chunks, which this node owns in its site.
func (s *meshSource) Owned() func(cid.Cid) bool { return s.m.Owned() }

func (s *meshSource) Fetch(ctx context.Context, c cid.Cid) ([]byte, Origin, error) {
	data, o, err := s.m.Fetch(ctx, c)
	if err != nil {
		return nil, Origin{}, err
	}
	return data, Origin{WAN: o.WAN, Peer: o.Peer}, nil
}

// fetchRelease gets every chunk of the plan the store lacks, many at once, in
// plan order, marks each in ready once stored, and fills the record's bytes by
// origin. Verified chunks stay stored whatever happens next, so a restart
// resumes where this left off.
func (n *Node) fetchRelease(ctx context.Context, m *manifest.Manifest, p *releasePlan, ready *readiness, rec *releaseRecord) error {
	prog := &api.Progress{Version: m.Version, Sequence: m.Sequence, Phase: "fetching", ChunksTotal: len(p.jobs), BytesTotal: p.total, Started: time.Now()}
	n.mu.Lock()
	n.stat.progress = prog
	n.mu.Unlock()

	// Chunks this node owns go in a lane of their own: fetched from the WAN
	// ahead of the site's requests, they keep the WAN link full however
	// slowly the LAN requests, which all walk the release in the same order,
	// move along.
	djobs, covered := planDeltas(m, p, n.heldBases())
	var own, others []int
	owned := func(cid.Cid) bool { return false }
	if o, ok := n.chunks.(interface{ Owned() func(cid.Cid) bool }); ok {
		owned = o.Owned()
	}
	for i, j := range p.jobs {
		if covered[i] {
			continue
		}
		if owned(j.c) {
			own = append(own, i)
		} else {
			others = append(others, i)
		}
	}
	var wan, lan, local atomic.Int64
	count := func(o Origin, size int64) {
		switch {
		case o.Peer != "":
			lan.Add(size)
		case o.WAN:
			wan.Add(size)
		default:
			local.Add(size)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	lane := func(jobs []int, limit int) error {
		lg, lctx := errgroup.WithContext(gctx)
		lg.SetLimit(limit)
		for _, i := range jobs {
			if lctx.Err() != nil {
				break
			}
			j := p.jobs[i]
			if ok, err := n.store.Has(lctx, j.c); err == nil && ok {
				o, _ := n.stored.take(j.c)
				count(o, j.size)
				n.progressAdd(1, j.size)
				ready.mark(i)
				continue
			}
			lg.Go(func() error {
				data, o, err := n.fetchChunk(lctx, j.c)
				if err != nil {
					return err
				}
				// Stored meanwhile for a peer: the mesh noted where from.
				if so, ok := n.stored.take(j.c); ok && !o.WAN && o.Peer == "" {
					o = so
				}
				ready.mark(i)
				count(o, int64(len(data)))
				n.progressAdd(1, int64(len(data)))
				return nil
			})
		}
		return lg.Wait()
	}
	var rebuilt atomic.Int64
	g.Go(func() error {
		// A delta that cannot be used leaves its chunks to be fetched as chunks.
		return n.runDeltas(gctx, p, djobs, ready, max(2, n.cfg.Concurrency/2), count, &rebuilt,
			func(_ context.Context, jobs []int) error { return lane(jobs, n.cfg.Concurrency) })
	})
	g.Go(func() error { return lane(own, max(2, n.cfg.Concurrency/8)) })
	g.Go(func() error { return lane(others, n.cfg.Concurrency) })
	err := g.Wait()
	rec.FromWAN, rec.FromLAN, rec.FromLocal, rec.Rebuilt = wan.Load(), lan.Load(), local.Load(), rebuilt.Load()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// storedOrigins remembers where the chunks the mesh stored came from, until a
// release's fetch claims them. As an owner, a node fetches chunks from its
// WAN for peers ahead of it, often before its own check reaches them; its
// fetch then finds them stored, and the release's record counted them as
// held already. Past maxStoredOrigins unclaimed chunks, more are not noted.
type storedOrigins struct {
	mu sync.Mutex
	m  map[cid.Cid]Origin
}

const maxStoredOrigins = 1 << 16

func (s *storedOrigins) note(c cid.Cid, o Origin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[cid.Cid]Origin)
	}
	if len(s.m) < maxStoredOrigins {
		s.m[c] = o
	}
}

// take returns, and forgets, where the mesh got c, if it noted it.
func (s *storedOrigins) take(c cid.Cid) (Origin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.m[c]
	if ok {
		delete(s.m, c)
	}
	return o, ok
}

// fetchChunk tries the chunk source a few times: a failed attempt (a dead peer, a
// source that timed out) is often fixed by the next, which may go elsewhere.
func (n *Node) fetchChunk(ctx context.Context, c cid.Cid) ([]byte, Origin, error) {
	var last error
	for attempt := range 4 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			case <-ctx.Done():
				return nil, Origin{}, ctx.Err()
			}
		}
		data, o, err := n.chunks.Fetch(ctx, c)
		if err == nil {
			if o.Peer != "" {
				n.countLAN(o.Peer, int64(len(data)))
			}
			return data, o, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, Origin{}, ctx.Err()
		}
		if errors.Is(err, source.ErrNotFound) {
			break
		}
		n.log.Debug("chunk fetch failed", "cid", c, "attempt", attempt+1, "err", err)
	}
	return nil, Origin{}, last
}

func (n *Node) progressAdd(chunks int, bytes int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.stat.progress; p != nil {
		p.ChunksDone += chunks
		p.BytesDone += bytes
	}
}

func (n *Node) setPhase(phase string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.stat.progress; p != nil {
		p.Phase = phase
	}
}
