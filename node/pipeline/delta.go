package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/delta"
	"github.com/patchmesh/patchmesh/manifest"
)

// A release's deltas are worth fetching when the node can read their bases:
// files, named by their sha256, of a release it keeps, or files of the release
// itself listed before the delta's file, which it assembles first. A delta
// replaces the fetch of the chunks it makes; when it cannot be had, does not
// decode, or decodes to bytes that do not match the chunk CIDs, those chunks
// are fetched as chunks at once (a later delta may wait for them as its base).
// Nothing a delta makes is stored before it matches its CID.
//
// Deltas run in manifest order and a base in the release always lies in an
// earlier file, whose chunks come from the chunk lanes or from earlier deltas:
// so the earliest delta still running never waits on a later one.

// maxDeltaDecodes bounds the deltas decoded at once: each holds its base
// (up to manifest.MaxDeltaBase) and its output in memory. With two, a node
// updating libclamav12+clamav peaked at 142 MiB of RSS; with one, 94 MiB.
// Decoding is not what a node waits for: fetching is.
const maxDeltaDecodes = 1

// deltaJob is one delta the node will try.
type deltaJob struct {
	d     *manifest.Delta
	bases []deltaBase
	jobs  []int // the plan jobs it makes, in output order
	size  []int // their sizes
}

// deltaBase is where the node reads one base range of a delta.
type deltaBase struct {
	file *manifest.File
	r    manifest.BaseRange
	wait []int // plan jobs to await first: the range's chunks, for a file of this release
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
	index := make(map[string]int, len(m.Files)) // a release file's position, by sha256
	for i := range m.Files {
		if f := &m.Files[i]; len(f.Chunks) > 0 {
			if _, ok := index[f.SHA256]; !ok {
				index[f.SHA256] = i
			}
		}
	}
	pos := make(map[string]int, len(m.Files))
	for i := range m.Files {
		pos[m.Files[i].Path] = i
	}
deltas:
	for i := range m.Deltas {
		d := &m.Deltas[i]
		j := deltaJob{d: d}
		for _, r := range d.Bases {
			b := deltaBase{file: held[r.SHA256], r: r}
			if b.file == nil {
				k, ok := index[r.SHA256]
				if !ok || k >= pos[d.Path] {
					continue deltas // neither held nor assembled before this file
				}
				b.file = &m.Files[k]
				b.wait = rangeJobs(p, b.file, r)
			}
			if r.Offset+r.Size > b.file.Size {
				continue deltas
			}
			j.bases = append(j.bases, b)
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

// rangeJobs returns the plan jobs of the chunks of f, a file of the release,
// that overlap r.
func rangeJobs(p *releasePlan, f *manifest.File, r manifest.BaseRange) []int {
	var out []int
	var at int64
	for _, c := range f.Chunks {
		end := at + int64(c.Size)
		if end > r.Offset && at < r.Offset+r.Size {
			out = append(out, int(p.index[c.CID]))
		}
		at = end
	}
	return out
}

// maxDeltaBytesAhead bounds the delta objects fetched and not yet decoded,
// by their size in the manifest.
const maxDeltaBytesAhead = 8 << 20

// runDeltas fetches and decodes the delta jobs in order. Fetching runs ahead
// of decoding, fetchLimit at a time and up to maxDeltaBytesAhead, so that the
// site's WAN link stays busy while deltas wait for a decode slot or their
// bases; decoding runs limit at a time. The chunks of a delta that fails are
// fetched by fallback, at once.
func (r *run) runDeltas(ctx context.Context, djobs []deltaJob, fetchLimit, limit int, fallback func(ctx context.Context, jobs []int) error) error {
	// The decode slots: each keeps a decoder and its buffers for the run,
	// so a release of many deltas does not make the garbage of each.
	decodes := make(chan *decodeSlot, maxDeltaDecodes)
	for range maxDeltaDecodes {
		decodes <- new(decodeSlot)
	}
	defer func() {
		for range maxDeltaDecodes {
			(<-decodes).dec.Close()
		}
	}()
	futures := make([]chan fetchedDelta, len(djobs))
	for i := range futures {
		futures[i] = make(chan fetchedDelta, 1)
	}
	ahead := semaphore.NewWeighted(maxDeltaBytesAhead)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		fg, fctx := errgroup.WithContext(gctx)
		fg.SetLimit(fetchLimit)
		for i, j := range djobs {
			// In order, so that what decoding awaits next is fetched first.
			if err := ahead.Acquire(fctx, int64(j.d.Object.Size)); err != nil {
				break
			}
			fg.Go(func() error {
				futures[i] <- r.fetchDelta(fctx, j)
				return nil
			})
		}
		return fg.Wait()
	})
	g.Go(func() error {
		dg, dctx := errgroup.WithContext(gctx)
		dg.SetLimit(limit)
		for i, j := range djobs {
			if dctx.Err() != nil {
				break
			}
			dg.Go(func() error {
				var f fetchedDelta
				select {
				case f = <-futures[i]:
				case <-dctx.Done():
					return dctx.Err()
				}
				left, err := r.decodeDelta(dctx, j, f, decodes)
				ahead.Release(int64(j.d.Object.Size))
				if err == nil {
					return nil
				}
				if dctx.Err() != nil {
					return dctx.Err()
				}
				r.p.opts.Logger.Info("delta not used; fetching its chunks", "delta", j.d.Object.CID, "path", j.d.Path, "err", err)
				return fallback(dctx, left)
			})
		}
		return dg.Wait()
	})
	return g.Wait()
}

// fetchedDelta is a delta's object, or why it is not to be used, and the
// chunks it is to make that the store lacks.
type fetchedDelta struct {
	missing []int
	obj     []byte
	err     error
}

// fetchDelta gets the object of a delta whose chunks the store lacks.
func (r *run) fetchDelta(ctx context.Context, j deltaJob) fetchedDelta {
	var f fetchedDelta
	seen := make(map[int]bool, len(j.jobs))
	for _, k := range j.jobs {
		if seen[k] {
			continue // a chunk the file uses twice
		}
		seen[k] = true
		if !r.held(ctx, k) {
			f.missing = append(f.missing, k)
		}
	}
	if len(f.missing) == 0 {
		return f
	}
	obj, o, err := r.fetchChunk(ctx, j.d.Object.CID)
	if err != nil {
		f.err = fmt.Errorf("fetch delta: %w", err)
		return f
	}
	r.count(o, int64(len(obj)))
	f.obj = obj
	return f
}

// decodeDelta makes the chunks of one fetched delta. On an error it returns
// the jobs it did not make, which the store lacks.
func (r *run) decodeDelta(ctx context.Context, j deltaJob, f fetchedDelta, decodes chan *decodeSlot) ([]int, error) {
	missing, obj := f.missing, f.obj
	if f.err != nil || len(missing) == 0 {
		return missing, f.err
	}

	// Await bases of this release before taking a decode slot: the deltas
	// that make them need one.
	for _, b := range j.bases {
		for _, k := range b.wait {
			if err := r.ready.await(ctx, k); err != nil {
				return missing, err
			}
		}
	}
	var slot *decodeSlot
	select {
	case slot = <-decodes:
	case <-ctx.Done():
		return missing, ctx.Err()
	}
	defer func() { decodes <- slot }()
	dict, err := slot.dictFor(ctx, r, j.bases)
	if err != nil {
		return missing, err
	}
	total := 0
	for _, s := range j.size {
		total += s
	}
	out, err := slot.dec.Decode(obj, dict, total, slot.out[:0])
	if err == nil {
		slot.out = out
	}
	if err != nil {
		r.verifyFailed(fmt.Sprintf("delta %s for %s: %v", j.d.Object.CID, j.d.Path, err))
		return missing, err
	}
	var bad []int
	for i, k := range j.jobs {
		data := out[:j.size[i]]
		out = out[j.size[i]:]
		if r.ready.isDone(k) {
			continue
		}
		// The one place the pipeline verifies a chunk: sources return theirs
		// verified and stored (see Source); what a delta makes is checked
		// here, once, before any of it is stored.
		c := r.plan.jobs[k].c
		if err := chunk.Verify(c, data); err != nil {
			r.verifyFailed(fmt.Sprintf("delta %s for %s: %v", j.d.Object.CID, j.d.Path, err))
			bad = append(bad, k)
			continue
		}
		// Kept raw: compressing what was just decompressed, to decompress it
		// again for the assembly, was half the CPU of a node's update by
		// deltas. Peers that hold the base make these chunks themselves.
		if err := r.p.st.PutVerifiedWire(ctx, c, data, data); err != nil {
			for _, k := range j.jobs[i:] {
				if !r.ready.isDone(k) && !slices.Contains(bad, k) {
					bad = append(bad, k)
				}
			}
			return bad, err
		}
		r.rebuilt.Add(int64(len(data)))
		r.progress(1, int64(len(data)))
		r.ready.mark(k)
	}
	if len(bad) > 0 {
		return bad, fmt.Errorf("%d chunks did not match their CID: %w", len(bad), chunk.ErrMismatch)
	}
	return nil, nil
}

// decodeSlot is one delta decode at a time: a decoder, the dictionary of its
// last delta and an output buffer. Consecutive deltas of one file mostly have
// the same bases (a whole base file when it fits the window): the dictionary
// is then not read and decompressed from the store again.
type decodeSlot struct {
	dec  delta.Decoder
	dict []byte
	key  []manifest.BaseRange // the bases dict holds; nil: none yet
	out  []byte
}

// dictFor returns the dictionary of bases, read from the store unless the
// slot holds it already.
func (s *decodeSlot) dictFor(ctx context.Context, r *run, bases []deltaBase) ([]byte, error) {
	key := make([]manifest.BaseRange, len(bases))
	for i, b := range bases {
		key[i] = b.r
	}
	if s.key != nil && slices.Equal(s.key, key) {
		return s.dict, nil
	}
	s.key = nil
	dict := s.dict[:0]
	for _, b := range bases {
		if b.wait == nil {
			if dir, ok := r.p.opts.BaseDirs[b.r.SHA256]; ok {
				if d, ok := appendInstalled(dict, dir, b.file, b.r); ok {
					dict = d
					continue
				}
			}
		}
		var err error
		dict, err = b.file.AppendRange(dict, b.r.Offset, b.r.Size, func(c manifest.ChunkRef) ([]byte, error) { return r.p.st.Get(ctx, c.CID) })
		if err != nil {
			return nil, err
		}
	}
	s.dict, s.key = dict, key
	return dict, nil
}

// appendInstalled appends range r of base file f from its installed copy
// under dir, if that is a regular file of f's size inside dir.
func appendInstalled(dict []byte, dir string, f *manifest.File, r manifest.BaseRange) ([]byte, bool) {
	h, err := os.OpenInRoot(dir, filepath.FromSlash(f.Path))
	if err != nil {
		return dict, false
	}
	defer h.Close()
	if st, err := h.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() != f.Size {
		return dict, false
	}
	n := len(dict)
	dict = slices.Grow(dict, int(r.Size))[:n+int(r.Size)]
	if _, err := h.ReadAt(dict[n:], r.Offset); err != nil {
		return dict[:n], false
	}
	return dict, true
}
