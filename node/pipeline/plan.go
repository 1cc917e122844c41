package pipeline

import (
	"context"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/manifest"
)

// A release is fetched and assembled at the same time: the fetch walks the
// release's distinct chunks in the order the files use them, and the assembly
// writes each file as soon as its chunks are stored. Assembling only after the
// last chunk arrived left every node of a site writing and hashing the whole
// release at the same moment at the end, which was most of the time the last
// node took after the last WAN byte (scripts/RESULTS-site.md).

// planJob is one distinct chunk of a release.
type planJob struct {
	c    cid.Cid
	size int64
}

// releasePlan lists a release's distinct chunks in first-use order, and for
// every chunk reference of every file, in order, the index of its job.
type releasePlan struct {
	jobs  []planJob
	refs  []int32 // one per chunk reference, files in manifest order
	total int64   // bytes of the distinct chunks
	index map[cid.Cid]int32
}

func planRelease(m *manifest.Manifest) *releasePlan {
	index := make(map[cid.Cid]int32)
	p := &releasePlan{index: index}
	for _, f := range m.Files {
		for _, r := range f.Chunks {
			i, ok := index[r.CID]
			if !ok {
				i = int32(len(p.jobs))
				index[r.CID] = i
				p.jobs = append(p.jobs, planJob{r.CID, int64(r.Size)})
				p.total += int64(r.Size)
			}
			p.refs = append(p.refs, i)
		}
	}
	return p
}

// readiness tells the assembly, and deltas whose base is a file of the
// release, which jobs are stored. Any number of goroutines may await.
type readiness struct {
	mu      sync.Mutex
	done    []bool
	waiters int           // goroutines awaiting
	changed chan struct{} // closed when a job is marked while any awaits
}

func newReadiness(jobs int) *readiness {
	return &readiness{done: make([]bool, jobs), changed: make(chan struct{})}
}

// mark records that job i is stored.
func (r *readiness) mark(i int) {
	r.mu.Lock()
	r.done[i] = true
	if r.waiters > 0 {
		close(r.changed)
		r.changed = make(chan struct{})
	}
	r.mu.Unlock()
}

// isDone reports whether job i is stored.
func (r *readiness) isDone(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done[i]
}

// await blocks until job i is stored or ctx ends.
func (r *readiness) await(ctx context.Context, i int) error {
	r.mu.Lock()
	for !r.done[i] {
		ch := r.changed
		r.waiters++
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			r.mu.Lock()
			r.waiters--
			r.mu.Unlock()
			return ctx.Err()
		}
		r.mu.Lock()
		r.waiters--
	}
	r.mu.Unlock()
	return nil
}
