package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/install"
	"github.com/patchmesh/patchmesh/node/pipeline"
)

// fetchError marks a failure to fetch a release's chunks, as opposed to a
// failure to assemble or activate it.
type fetchError struct{ err error }

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// stage fetches what the store lacks of m and assembles it as release name,
// beside the running one; it does not switch to it. A staged rollout stages
// early and activates when the node's stage opens.
func (n *Node) stage(ctx context.Context, m *manifest.Manifest, name string, rec *releaseRecord) error {
	p := n.pipeline(m, rec)
	staged := false
	err := n.inst.Stage(ctx, name, func(ctx context.Context, dir string) error {
		staged = true
		_, err := p.Run(ctx, m, dir)
		return err
	})
	if err == nil && !staged {
		// Staged before a restart: the node still fetches what it lacks, to
		// hold the whole release for its peers.
		_, err = p.Run(ctx, m, "")
	}
	if err != nil {
		var fe *pipeline.FetchError
		if errors.As(err, &fe) {
			return &fetchError{fe.Err}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = fmt.Errorf("assemble %s: %w", m.Version, err)
		n.event("apply", err.Error())
		return err
	}
	return nil
}

// activate switches to the staged release name with hooks and a health check;
// on failure the previous release stays and the error is returned.
func (n *Node) activate(ctx context.Context, m *manifest.Manifest, name string) error {
	n.setPhase("activating")
	opts := install.ActivateOptions{Env: []string{
		"PATCHMESH_CHANNEL=" + m.Channel,
		"PATCHMESH_VERSION=" + m.Version,
		"PATCHMESH_SEQUENCE=" + strconv.FormatUint(m.Sequence, 10),
	}}
	if *n.cfg.Hooks.ReleaseHooks {
		dir := n.inst.Dir(name)
		if m.Hooks.PreActivate != "" {
			opts.PreActivate = []string{filepath.Join(dir, filepath.FromSlash(m.Hooks.PreActivate))}
		}
		if m.Hooks.HealthCheck != "" {
			opts.HealthCheck = []string{filepath.Join(dir, filepath.FromSlash(m.Hooks.HealthCheck))}
		}
	}
	if err := n.inst.Activate(ctx, name, opts); err != nil {
		var he *install.HookError
		if errors.As(err, &he) {
			n.mu.Lock()
			n.stat.counters.Rollbacks++
			n.mu.Unlock()
			err = fmt.Errorf("release %s rolled back: %w", m.Version, err)
			n.event("rollback", err.Error())
			return err
		}
		err = fmt.Errorf("activate %s: %w", m.Version, err)
		n.event("apply", err.Error())
		return err
	}
	n.mu.Lock()
	n.stat.counters.Applies++
	n.mu.Unlock()
	n.log.Info("release applied", "release", m.Version, "sequence", m.Sequence)
	return nil
}

// pipeline wires the release pipeline for m with the node's store, chunk
// source, site ownership, held delta bases and status. rec gets the bytes by
// origin and is saved once every chunk is stored.
func (n *Node) pipeline(m *manifest.Manifest, rec *releaseRecord) *pipeline.Pipeline {
	bases, dirs := n.heldBases()
	opts := pipeline.Options{
		Concurrency: n.cfg.Concurrency,
		Bases:       bases,
		BaseDirs:    dirs,
		Claim:       n.stored.take,
		Planned: func(chunks int, bytes int64) {
			prog := &api.Progress{Version: m.Version, Sequence: m.Sequence, Phase: "fetching", ChunksTotal: chunks, BytesTotal: bytes, Started: time.Now()}
			n.mu.Lock()
			n.stat.progress = prog
			n.mu.Unlock()
		},
		Progress: n.progressAdd,
		Fetched: func(res pipeline.Result) error {
			rec.FromWAN, rec.FromLAN, rec.FromLocal, rec.Rebuilt = res.FromWAN, res.FromLAN, res.FromLocal, res.Rebuilt
			n.log.Info("release fetched", "release", m.Version, "wan_bytes", rec.FromWAN, "lan_bytes", rec.FromLAN, "local_bytes", rec.FromLocal, "rebuilt_bytes", rec.Rebuilt)
			n.setPhase("assembling")
			if n.mesh != nil {
				n.mesh.SetHolding(m.Sequence)
			}
			return n.saveRecord(*rec)
		},
		VerifyFailed: n.verifyFailed,
		Logger:       n.log,
	}
	if n.mesh != nil {
		opts.Owned = n.mesh.Owned()
	}
	return pipeline.New(n.store, n.chunks, opts)
}

// collect prunes old releases and then the chunks no kept release needs, while the
// store is above its quota (always, with no quota). cur is the manifest just
// applied, already verified and in memory; the others are read back.
func (n *Node) collect(ctx context.Context, cur *manifest.Manifest) {
	removed, err := n.inst.Prune()
	if err != nil {
		n.event("apply", fmt.Sprintf("prune old releases: %v", err))
	}
	for _, name := range removed {
		n.log.Info("release removed", "release", name)
	}
	need := make(map[cid.Cid]bool)
	keep := make(map[string]bool)
	for _, r := range n.inst.Releases() {
		keep[r.Name] = true
	}
	recs := n.records()
	for name := range keep {
		rec, ok := recs[name]
		if !ok {
			continue
		}
		if cur != nil && rec.Channel == cur.Channel && rec.Sequence == cur.Sequence {
			addChunks(need, cur)
			continue
		}
		m, err := n.storedManifest(rec)
		if err != nil {
			n.log.Warn("collect: manifest of a kept release unreadable; keeping all chunks", "release", name, "err", err)
			return
		}
		addChunks(need, m)
	}
	for name, rec := range recs {
		if !keep[name] {
			_ = n.store.DeleteMeta(metaRelease + name)
			_ = n.store.DeleteMeta(manifestKey(rec.Channel, rec.Sequence))
		}
	}
	quota := n.cfg.QuotaBytes
	_, used := n.store.Usage()
	if quota > 0 && used <= quota {
		return
	}
	var freed int64
	err = n.store.ForEach(ctx, func(c cid.Cid, size int64) error {
		if need[c] || (n.proxy != nil && n.proxy.Holds(c)) {
			return nil
		}
		if quota > 0 && used-freed <= quota {
			return nil
		}
		if err := n.store.Delete(ctx, c); err != nil {
			return err
		}
		freed += size
		return nil
	})
	if err != nil {
		n.log.Warn("collect chunks", "err", err)
	}
	if freed > 0 {
		n.log.Info("chunks collected", "bytes", freed)
		if err := n.store.GC(ctx); err != nil {
			n.log.Debug("store gc", "err", err)
		}
	}
}

// addChunks adds to set the chunks of m and its delta objects, which peers of
// the site may still ask for.
func addChunks(set map[cid.Cid]bool, m *manifest.Manifest) {
	for _, f := range m.Files {
		for _, r := range f.Chunks {
			set[r.CID] = true
		}
	}
	deltaObjects(set, m)
}
