package node

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/api"
)

// scrubFirst is how long after start the first background scrub begins: not
// while the node catches up with its site.
const scrubFirst = 10 * time.Minute

// scrubLoop checks the whole store every ScrubInterval at ScrubRate, until
// ctx ends.
func (n *Node) scrubLoop(ctx context.Context) {
	if n.cfg.ScrubRate < 0 {
		return
	}
	t := time.NewTimer(scrubFirst)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if _, err := n.scrub(ctx, n.cfg.ScrubRate); err != nil && ctx.Err() == nil {
			n.event("scrub", fmt.Sprintf("scrub the chunk store: %v", err))
		}
		t.Reset(max(0, time.Duration(n.cfg.ScrubInterval)-time.Since(start)))
	}
}

// Scrub implements api.Backend: a scrub now, at full speed.
func (n *Node) Scrub(ctx context.Context) (api.ScrubResult, error) {
	return n.scrub(ctx, 0)
}

// scrub checks every stored chunk at rate bytes a second (0: no bound); the
// store drops the damaged ones (telling storeDamaged), and those a kept
// release needs are fetched again, so the node keeps serving its site.
func (n *Node) scrub(ctx context.Context, rate int64) (api.ScrubResult, error) {
	select {
	case n.scrubSem <- struct{}{}:
	case <-ctx.Done():
		return api.ScrubResult{}, ctx.Err()
	}
	defer func() { <-n.scrubSem }()
	res := api.ScrubResult{Started: time.Now()}
	sr, err := n.store.Scrub(ctx, rate)
	res.Chunks, res.Bytes, res.Damaged = sr.Chunks, sr.Bytes, sr.Damaged
	for _, c := range sr.DamagedCIDs {
		res.DamagedCIDs = append(res.DamagedCIDs, c.String())
	}
	if err != nil {
		return res, err
	}
	if len(sr.DamagedCIDs) > 0 {
		need := n.keptChunks()
		var failed int
		var first error // one is enough to say why; many would flood the answer
		for _, c := range sr.DamagedCIDs {
			if !need[c] {
				continue
			}
			if _, _, err := n.chunks.Fetch(ctx, c); err != nil {
				if failed++; first == nil {
					first = err
				}
				continue
			}
			res.Refetched++
		}
		if failed > 0 {
			res.Message = fmt.Sprintf("%d damaged chunks not fetched again yet; they will be when a release or a peer needs them: %v",
				failed, first)
		}
	}
	res.Finished = time.Now()
	n.stat.setLastScrub(res)
	return res, nil
}

// keptChunks returns the chunks of the releases the node keeps, as far as
// their manifests verify.
func (n *Node) keptChunks() map[cid.Cid]bool {
	need := make(map[cid.Cid]bool)
	n.keptManifests(func(_ *follower, rec releaseRecord, m *manifest.Manifest, err error) {
		if err != nil {
			n.log.Debug("scrub: manifest of a kept release unreadable", "release", rec.Name, "err", err)
			return
		}
		addChunks(need, m)
	})
	return need
}

// storeDamaged is told by the store of every damaged chunk it drops. A
// damaged disk can hold many, so the events within a minute of each other
// are one event with a count, not a list that pushes every other error out.
func (n *Node) storeDamaged(c cid.Cid, err error) {
	msg := fmt.Sprintf("chunk %s in the store was damaged (%v): dropped, to be fetched again", c, err)
	n.log.Warn(msg, "kind", "store")
	n.stat.storeDamaged(msg)
}

// peerSentBad is told by the mesh of every chunk a peer sent that did not
// match its CID.
func (n *Node) peerSentBad(c cid.Cid, member string, err error) {
	n.stat.verifyFailed(member)
	n.event("verify", fmt.Sprintf("peer %s sent chunk %s with bytes that do not match it (%v): penalized, asked another", member, c, err))
}
