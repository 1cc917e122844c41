package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/delta"
	"github.com/patchmesh/patchmesh/manifest"
)

// A release's deltas are worth fetching when the node holds their base: a
// file, named by its sha256, of a release it keeps. A delta replaces the
// fetch of the chunks it makes; when it cannot be had, does not decode, or
// decodes to bytes that do not match the chunk CIDs, those chunks are fetched
// as chunks. Nothing a delta makes is stored before it matches its CID.

// maxDeltaDecodes bounds the deltas decoded at once: each holds its base
// (up to manifest.MaxDeltaBase) and its output in memory.
const maxDeltaDecodes = 2

// deltaJob is one delta the node will try.
type deltaJob struct {
	d    *manifest.Delta
	base *manifest.File // a held file whose sha256 is the delta's base; nil: none needed
	jobs []int          // the plan jobs it makes, in output order
	size []int          // their sizes
}

// heldBases indexes the regular files of the releases this node keeps by
// sha256, from their verified manifests in the store.
func (n *Node) heldBases() map[string]*manifest.File {
	out := make(map[string]*manifest.File)
	keep := make(map[string]bool)
	for _, r := range n.inst.Releases() {
		keep[r.Name] = true
	}
	root := n.trustRoot()
	for name, rec := range n.records() {
		if !keep[name] {
			continue
		}
		env, err := n.store.GetMeta(manifestKey(rec.Channel, rec.Sequence))
		if err != nil {
			continue
		}
		m, err := root.VerifyManifest(env, time.Now())
		if err != nil {
			continue
		}
		for i := range m.Files {
			if f := &m.Files[i]; !f.IsLink() && f.Size > 0 {
				out[f.SHA256] = f
			}
		}
	}
	return out
}

// planDeltas picks the deltas of m this node can use: those whose base it
// holds, each chunk job made by one delta at most. covered marks those jobs.
func planDeltas(m *manifest.Manifest, p *releasePlan, held map[string]*manifest.File) (jobs []deltaJob, covered []bool) {
	covered = make([]bool, len(p.jobs))
	if len(m.Deltas) == 0 {
		return nil, covered
	}
	files := make(map[string]*manifest.File, len(m.Files))
	for i := range m.Files {
		files[m.Files[i].Path] = &m.Files[i]
	}
	for i := range m.Deltas {
		d := &m.Deltas[i]
		j := deltaJob{d: d}
		if d.Base != (manifest.BaseRange{}) {
			b := held[d.Base.SHA256]
			if b == nil || d.Base.Offset+d.Base.Size > b.Size {
				continue
			}
			j.base = b
		}
		f := files[d.Path]
		free := true
		for _, r := range d.Runs {
			for _, c := range f.Chunks[r.First : r.First+r.Count] {
				k := int(p.index[c.CID])
				free = free && !covered[k]
				j.jobs = append(j.jobs, k)
				j.size = append(j.size, int(c.Size))
			}
		}
		if !free {
			continue
		}
		for _, k := range j.jobs {
			covered[k] = true
		}
		jobs = append(jobs, j)
	}
	return jobs, covered
}

// runDeltas fetches and decodes the delta jobs, limit at a time, and returns
// the plan jobs of those that failed, to be fetched as chunks.
func (n *Node) runDeltas(ctx context.Context, p *releasePlan, djobs []deltaJob, ready *readiness, limit int, count func(Origin, int64), rebuilt *atomic.Int64) ([]int, error) {
	var fallback []int
	var mu sync.Mutex
	decodes := make(chan struct{}, maxDeltaDecodes)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, j := range djobs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			left, err := n.runDelta(gctx, p, j, ready, decodes, count, rebuilt)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				n.log.Info("delta not used; fetching its chunks", "delta", j.d.Object.CID, "path", j.d.Path, "err", err)
				mu.Lock()
				fallback = append(fallback, left...)
				mu.Unlock()
			}
			return nil
		})
	}
	err := g.Wait()
	return fallback, err
}

// runDelta makes the chunks of one delta. On an error it returns the jobs it
// did not make.
func (n *Node) runDelta(ctx context.Context, p *releasePlan, j deltaJob, ready *readiness, decodes chan struct{}, count func(Origin, int64), rebuilt *atomic.Int64) ([]int, error) {
	var missing []int
	for _, k := range j.jobs {
		if ok, err := n.store.Has(ctx, p.jobs[k].c); err == nil && ok {
			o, _ := n.stored.take(p.jobs[k].c)
			count(o, p.jobs[k].size)
			n.progressAdd(1, p.jobs[k].size)
			ready.mark(k)
			continue
		}
		missing = append(missing, k)
	}
	if len(missing) == 0 {
		return nil, nil
	}
	obj, o, err := n.fetchChunk(ctx, j.d.Object.CID)
	if err != nil {
		return missing, fmt.Errorf("fetch delta: %w", err)
	}
	if so, ok := n.stored.take(j.d.Object.CID); ok && !o.WAN && o.Peer == "" {
		o = so
	}
	count(o, int64(len(obj)))

	select {
	case decodes <- struct{}{}:
	case <-ctx.Done():
		return missing, ctx.Err()
	}
	defer func() { <-decodes }()
	var dict []byte
	if j.base != nil {
		if dict, err = n.readBase(ctx, j.base, j.d.Base.Offset, j.d.Base.Size); err != nil {
			return missing, err
		}
	}
	total := 0
	for _, s := range j.size {
		total += s
	}
	out, err := delta.Decode(obj, dict, total, nil)
	if err != nil {
		n.verifyFailed(fmt.Sprintf("delta %s for %s: %v", j.d.Object.CID, j.d.Path, err))
		return missing, err
	}
	var bad []int
	for i, k := range j.jobs {
		data := out[:j.size[i]]
		out = out[j.size[i]:]
		if ready.isDone(k) {
			continue
		}
		c := p.jobs[k].c
		if err := chunk.Verify(c, data); err != nil {
			n.verifyFailed(fmt.Sprintf("delta %s for %s: %v", j.d.Object.CID, j.d.Path, err))
			bad = append(bad, k)
			continue
		}
		if err := n.store.PutVerified(ctx, c, data); err != nil {
			return append(bad, j.jobs[i:]...), err
		}
		rebuilt.Add(int64(len(data)))
		n.progressAdd(1, int64(len(data)))
		ready.mark(k)
	}
	if len(bad) > 0 {
		return bad, fmt.Errorf("%d chunks did not match their CID: %w", len(bad), chunk.ErrMismatch)
	}
	return nil, nil
}

// readBase reads size bytes at off of a held file from the store.
func (n *Node) readBase(ctx context.Context, f *manifest.File, off, size int64) ([]byte, error) {
	return f.ReadRange(off, size, func(c manifest.ChunkRef) ([]byte, error) { return n.store.Get(ctx, c.CID) })
}

// deltaObjects adds the CIDs of m's delta objects to set.
func deltaObjects(set map[cid.Cid]bool, m *manifest.Manifest) {
	for _, d := range m.Deltas {
		set[d.Object.CID] = true
	}
}
