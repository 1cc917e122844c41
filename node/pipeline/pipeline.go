package pipeline

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
)

// Source is where a chunk the store lacks comes from: the site mesh (which
// falls back to the WAN), or the update sources alone.
type Source interface {
	// Fetch returns the bytes of c, verified against c and already in the
	// store, and where they came from. The pipeline does not verify them
	// again. An error wrapping source.ErrNotFound means no source has c.
	Fetch(ctx context.Context, c cid.Cid) ([]byte, chunk.Origin, error)
}

// Store is what the pipeline needs of the node's chunk store (*store.Store).
type Store interface {
	Has(ctx context.Context, c cid.Cid) (bool, error)
	// Get returns c's bytes, checked against c, or an error wrapping
	// store.ErrNotFound (also when they were damaged, and dropped).
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	// PutVerifiedWire stores raw as c, which the caller has verified, kept in
	// the form wire (a compressed frame of raw, or raw itself).
	PutVerifiedWire(ctx context.Context, c cid.Cid, raw, wire []byte) error
	// WriteTo writes c's bytes, checked against c, to w, or returns an
	// error wrapping store.ErrNotFound having written nothing (also when they
	// were damaged, and dropped).
	WriteTo(ctx context.Context, c cid.Cid, w io.Writer) (int64, error)
}

// Options tune one release's pipeline. The zero value works: no owned chunks,
// no held bases, nobody told of progress.
type Options struct {
	// Concurrency bounds the chunk fetches of the others lane; the deltas
	// take a share of it. Zero means DefaultConcurrency.
	Concurrency int
	// MaxConcurrency lets the others lane's fetches at once grow from
	// Concurrency up to it while more of them move more bytes a second: far
	// from its source each fetch waits a round trip (see window). Zero, or
	// not above Concurrency, keeps Concurrency fixed.
	MaxConcurrency int
	// StartConcurrency is where the others lane's window starts, within
	// Concurrency and MaxConcurrency; it may settle lower, not below
	// Concurrency. A source that reads the chunks fetched at once in
	// batches (source.List.Batches) makes each fetch in flight cheap and
	// each batch larger the more there are: starting wide spares the
	// window's climb. Zero: Concurrency.
	StartConcurrency int
	// Owned reports the chunks this node owns in its site: they go in a lane
	// of their own. Nil: none.
	Owned func(cid.Cid) bool
	// OwnConcurrency bounds the own lane's fetches at once: the node's
	// share of the site's WAN fetches, which it makes whether or not peers
	// ask for them yet. Members all walk a release in the same order, so
	// their requests overlap and alone keep fewer distinct chunks in flight
	// than the owners may fetch. It is asked as the lane runs, since the
	// share widens while the WAN fetches stay quick. Nil, or below it:
	// Concurrency/8, at least 2.
	OwnConcurrency func() int
	// Bases are the regular files of the releases the node keeps, by sha256:
	// the delta bases it can read from the store. Nil: none.
	Bases map[string]*manifest.File
	// BaseDirs name, by sha256 as Bases, a folder in which the base's path
	// holds its bytes: the release installed from it. A delta reads its base
	// there, a plain read, rather than from the store, where it is chunked
	// and compressed. A file that was changed makes the delta's chunks fail
	// their CIDs, and they are fetched as chunks. Nil: the store only.
	BaseDirs map[string]string
	// Claim returns, and forgets, where the mesh got a chunk it stored for a
	// peer before this release reached it. Nil: such chunks count as local.
	Claim func(cid.Cid) (chunk.Origin, bool)
	// Planned, if set, is told the release's distinct chunks and their bytes
	// before anything is fetched.
	Planned func(chunks int, bytes int64)
	// Progress, if set, is told of every chunk of the plan as it is stored
	// or found stored.
	Progress func(chunks int, bytes int64)
	// Fetched, if set, is called once every chunk of the release is stored,
	// with the bytes by origin, while the assembly may still run. An error
	// fails Run.
	Fetched func(Result) error
	// VerifyFailed, if set, is told of every delta that did not decode or
	// made a chunk not matching its CID.
	VerifyFailed func(msg string)
	// Logger gets per-delta events; nil discards them.
	Logger *slog.Logger
}

// DefaultConcurrency is the fetches in flight when Options.Concurrency is zero.
const DefaultConcurrency = 16

// Result is what a release's fetch moved, by origin, in chunk bytes.
type Result struct {
	FromWAN   int64
	FromLAN   int64
	FromLocal int64
	// Rebuilt counts chunk bytes made from deltas; the deltas' own bytes
	// count in FromWAN, FromLAN and FromLocal.
	Rebuilt int64
}

// FetchError marks a failure to fetch a release's chunks, as opposed to a
// failure to assemble it.
type FetchError struct{ Err error }

func (e *FetchError) Error() string { return e.Err.Error() }
func (e *FetchError) Unwrap() error { return e.Err }

// Pipeline fetches and assembles releases from one store and one source.
type Pipeline struct {
	st   Store
	src  Source
	opts Options
	// handoffLimit bounds a run's handoff; tests set it lower.
	handoffLimit int64
	// fetchLimit bounds the chunk bytes a run's lanes fetch at once;
	// tests set it lower.
	fetchLimit int64
}

// fetchBytes bounds the chunk bytes a run's chunk lanes fetch at once, all
// together, whatever their windows: 128 fetches at once hold 2.4 MiB of
// chunks at the 19 KiB mean, but 128 MiB of chunks at chunk.MaxSize, which
// a manifest may name.
const fetchBytes = 16 << 20

// New returns a pipeline over st and src.
func New(st Store, src Source, opts Options) *Pipeline {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{st: st, src: src, opts: opts, handoffLimit: handoffBytes, fetchLimit: fetchBytes}
}

// Run fetches every chunk of m the store lacks and, when dir is not "",
// assembles m into dir meanwhile, each file as soon as its chunks are stored.
// A failed fetch is returned as a *FetchError. Verified chunks stay stored
// whatever happens next, so a later Run resumes where this one left off. The
// Result counts what was fetched, also on error.
func (p *Pipeline) Run(ctx context.Context, m *manifest.Manifest, dir string) (Result, error) {
	r := &run{p: p, m: m, plan: planRelease(m), fetching: semaphore.NewWeighted(p.fetchLimit)}
	r.ready = newReadiness(len(r.plan.jobs))
	if p.opts.Planned != nil {
		p.opts.Planned(len(r.plan.jobs), r.plan.total)
	}
	fetch := func(ctx context.Context) error {
		if err := r.fetch(ctx); err != nil {
			return &FetchError{err}
		}
		if p.opts.Fetched != nil {
			return p.opts.Fetched(r.result())
		}
		return nil
	}
	if dir == "" {
		err := fetch(ctx)
		return r.result(), err
	}
	r.handoff = newHandoff(p.handoffLimit)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return fetch(gctx) })
	g.Go(func() error { return r.assemble(gctx, dir) })
	err := g.Wait()
	return r.result(), err
}

// run is one release going through the pipeline.
type run struct {
	p     *Pipeline
	m     *manifest.Manifest
	plan  *releasePlan
	ready *readiness
	// handoff passes fetched chunks to the assembly; nil when not assembling.
	handoff *handoff
	// fetching holds the chunk bytes the lanes fetch at once (fetchBytes).
	fetching *semaphore.Weighted

	wan, lan, local, rebuilt atomic.Int64
}

func (r *run) result() Result {
	return Result{FromWAN: r.wan.Load(), FromLAN: r.lan.Load(), FromLocal: r.local.Load(), Rebuilt: r.rebuilt.Load()}
}

// fetch gets every chunk of the plan the store lacks, many at once, in plan
// order, and marks each ready once stored.
func (r *run) fetch(ctx context.Context) error {
	opts := &r.p.opts
	// Chunks this node owns go in a lane of their own: fetched from the WAN
	// ahead of the site's requests, they keep the WAN link full however
	// slowly the LAN requests, which all walk the release in the same order,
	// move along.
	djobs, covered := planDeltas(r.m, r.plan, opts.Bases)
	// Only planning looks chunks up by CID. The map is a pointer-laden
	// fifth of the heap for a large release, and the garbage collector,
	// which the node's soft memory limit keeps busy, would scan it
	// through the whole fetch.
	r.plan.index = nil
	var own, others []int
	for i, j := range r.plan.jobs {
		if covered[i] {
			continue
		}
		if opts.Owned != nil && opts.Owned(j.c) {
			own = append(own, i)
		} else {
			others = append(others, i)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// A delta that cannot be used leaves its chunks to be fetched as chunks.
		return r.runDeltas(gctx, djobs, opts.Concurrency, max(2, opts.Concurrency/2), func(ctx context.Context, jobs []int) error {
			return r.lane(ctx, jobs, newWindow(opts.Concurrency, 0), true)
		})
	})
	g.Go(func() error {
		w := newWindow(max(2, opts.Concurrency/8), 0)
		w.follow = opts.OwnConcurrency
		return r.lane(gctx, own, w, false)
	})
	g.Go(func() error {
		w := newWindow(opts.Concurrency, opts.MaxConcurrency)
		start := w.startAt(opts.StartConcurrency)
		err := r.lane(gctx, others, w, false)
		if size, peak, _ := w.state(); peak > opts.Concurrency {
			r.p.opts.Logger.Info("fetch window", "release", r.m.Version, "from", opts.Concurrency, "start", start, "peak", peak, "last", size)
		}
		return err
	})
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// lane fetches the plan's jobs, as many at a time as w lets and the run's
// bound on bytes in flight allows, in order. Unless missing says the store
// lacks them all, each is looked up in the store first.
func (r *run) lane(ctx context.Context, jobs []int, w *window, missing bool) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, i := range jobs {
		if gctx.Err() != nil {
			break
		}
		if !missing && r.held(gctx, i) {
			continue
		}
		if w.acquire(gctx) != nil {
			break
		}
		cost := min(r.plan.jobs[i].size, r.p.fetchLimit)
		if r.fetching.Acquire(gctx, cost) != nil {
			w.release(0)
			break
		}
		g.Go(func() error {
			err := r.fetchJob(gctx, i)
			r.fetching.Release(cost)
			var n int64
			if err == nil {
				n = r.plan.jobs[i].size
			}
			w.release(n)
			return err
		})
	}
	return g.Wait()
}

// held reports whether the store holds job i, and if so counts it and marks
// it ready. It is the one place the pipeline asks the store whether it has a
// chunk of the plan, once per chunk: where a lane or a delta reaches it.
func (r *run) held(ctx context.Context, i int) bool {
	j := r.plan.jobs[i]
	if ok, err := r.p.st.Has(ctx, j.c); err != nil || !ok {
		return false
	}
	o, _ := r.claim(j.c)
	r.count(o, j.size)
	r.progress(1, j.size)
	r.ready.mark(i)
	return true
}

// fetchJob gets job i from the source and marks it ready.
func (r *run) fetchJob(ctx context.Context, i int) error {
	c := r.plan.jobs[i].c
	data, o, err := r.fetchChunk(ctx, c)
	if err != nil {
		return err
	}
	r.handoff.keep(i, data) // before the mark wakes the assembly
	r.ready.mark(i)
	r.count(o, int64(len(data)))
	r.progress(1, int64(len(data)))
	return nil
}

// fetchChunk gets c from the source, stored and verified by it.
func (r *run) fetchChunk(ctx context.Context, c cid.Cid) ([]byte, chunk.Origin, error) {
	data, o, err := r.p.src.Fetch(ctx, c)
	if err != nil {
		return nil, chunk.Origin{}, err
	}
	// Stored meanwhile for a peer: the mesh noted where from.
	if so, ok := r.claim(c); ok && o.Local() {
		o = so
	}
	return data, o, nil
}

func (r *run) claim(c cid.Cid) (chunk.Origin, bool) {
	if r.p.opts.Claim == nil {
		return chunk.Origin{}, false
	}
	return r.p.opts.Claim(c)
}

func (r *run) count(o chunk.Origin, size int64) {
	switch {
	case o.Peer != "":
		r.lan.Add(size)
	case o.WAN:
		r.wan.Add(size)
	default:
		r.local.Add(size)
	}
}

func (r *run) progress(chunks int, bytes int64) {
	if r.p.opts.Progress != nil {
		r.p.opts.Progress(chunks, bytes)
	}
}

func (r *run) verifyFailed(msg string) {
	if r.p.opts.VerifyFailed != nil {
		r.p.opts.VerifyFailed(msg)
	}
}
