package node

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest"
)

// storeReady makes a store opened read-only for want of space writable again
// when the space is back, and says why a check cannot store anything if not.
func (n *Node) storeReady() error {
	if err := n.store.Recover(); err != nil {
		n.log.Debug("chunk store still read-only", "err", err)
	}
	if err := n.store.Writable(); err != nil {
		return fmt.Errorf("data folder %s: %w", n.cfg.DataDir, err)
	}
	return nil
}

// checkSpace fails, wrapping store.ErrNoSpace, unless the chunks of m the
// store lacks, and the assembled release when it is staged on the same
// file system, fit in the data folder beside the store's reserve. It is an
// estimate made before fetching, so a check fails early with a clear
// message; the store still refuses each write that would not fit.
func (f *follower) checkSpace(ctx context.Context, m *manifest.Manifest, name string) error {
	seen := make(map[cid.Cid]bool)
	var need int64
	for _, file := range m.Files {
		for _, r := range file.Chunks {
			if seen[r.CID] {
				continue
			}
			seen[r.CID] = true
			has, err := f.store.Has(ctx, r.CID)
			if err != nil {
				return err
			}
			if !has {
				need += int64(r.Size)
			}
		}
	}
	staging := int64(0)
	if _, err := os.Stat(f.inst.Dir(name)); err != nil && f.store.SameFS(f.dir) {
		staging = m.TotalSize()
	}
	free, reserve, err := f.store.Space()
	if err != nil {
		return err
	}
	if free-need-staging >= reserve {
		return nil
	}
	msg := fmt.Sprintf("release %s needs %d bytes (%s) of chunks", m.Version, need, mib(need))
	if staging > 0 {
		msg += fmt.Sprintf(" and %d bytes (%s) to assemble in %s", staging, mib(staging), f.dir)
	}
	msg += fmt.Sprintf("; %d bytes (%s) are free and %d (%s) are kept in reserve; free some space and the node retries by itself",
		free, mib(free), reserve, mib(reserve))
	return fmt.Errorf("%w in data folder %s: %s", store.ErrNoSpace, f.cfg.DataDir, msg)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// probeEvery is how often the node checks that its data folder is still there.
const probeEvery = 2 * time.Second

// probeStore reports, once, a data folder that was removed, replaced or made
// read-only under the node: the store then refuses every write at once, and
// the node goes on serving what it can until it is restarted.
func (n *Node) probeStore(ctx context.Context) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := n.store.Probe(); err != nil {
			n.event("store", err.Error())
			return
		}
	}
}
