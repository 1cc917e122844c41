package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
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
func (f *follower) stage(ctx context.Context, m *manifest.Manifest, name string, rec *releaseRecord) error {
	f.mu.Lock()
	f.st.fetching, f.st.fetchingName = m, name
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.st.fetching, f.st.fetchingName = nil, ""
		f.mu.Unlock()
	}()
	p := f.pipeline(ctx, m, rec)
	staged := false
	err := f.inst.Stage(ctx, name, func(ctx context.Context, dir string) error {
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
		f.event("apply", err.Error())
		return err
	}
	return nil
}

// activate switches to the staged release name with hooks and a health check;
// on failure the previous release stays and the error is returned.
func (f *follower) activate(ctx context.Context, m *manifest.Manifest, name string) error {
	f.setPhase("activating")
	opts := install.ActivateOptions{Env: []string{
		"PATCHMESH_CHANNEL=" + m.Channel,
		"PATCHMESH_VERSION=" + m.Version,
		"PATCHMESH_SEQUENCE=" + strconv.FormatUint(m.Sequence, 10),
	}}
	if *f.hooks.ReleaseHooks {
		dir := f.inst.Dir(name)
		if m.Hooks.PreActivate != "" {
			opts.PreActivate = []string{filepath.Join(dir, filepath.FromSlash(m.Hooks.PreActivate))}
		}
		if m.Hooks.HealthCheck != "" {
			opts.HealthCheck = []string{filepath.Join(dir, filepath.FromSlash(m.Hooks.HealthCheck))}
		}
	}
	if err := f.inst.Activate(ctx, name, opts); err != nil {
		var he *install.HookError
		if errors.As(err, &he) {
			f.stat.rolledBack()
			err = fmt.Errorf("release %s rolled back: %w", m.Version, err)
			f.event("rollback", err.Error())
			return err
		}
		err = fmt.Errorf("activate %s: %w", m.Version, err)
		f.event("apply", err.Error())
		return err
	}
	f.stat.applied()
	f.log.Info("release applied", "release", m.Version, "sequence", m.Sequence)
	return nil
}

// batchWindow is where a node alone starts its fetch window when its first
// source answers batch reads: two batches of 32 in flight, where a 2 GiB
// pull from a seed on loopback settled. From 16 the window took several
// periods to climb there, and the batches were small meanwhile.
const batchWindow = 64

// pipeline wires the release pipeline for m with the node's store, chunk
// source, site ownership, held delta bases and status. rec gets the bytes by
// origin and is saved once every chunk is stored.
func (f *follower) pipeline(ctx context.Context, m *manifest.Manifest, rec *releaseRecord) *pipeline.Pipeline {
	bases, dirs := f.heldBases()
	opts := pipeline.Options{
		Concurrency: f.cfg.Concurrency,
		Bases:       bases,
		BaseDirs:    dirs,
		Claim:       f.stored.take,
		Planned: func(chunks int, bytes int64) {
			prog := &api.Progress{Version: m.Version, Sequence: m.Sequence, Phase: "fetching", ChunksTotal: chunks, BytesTotal: bytes, Started: time.Now()}
			f.mu.Lock()
			f.st.progress = prog
			f.mu.Unlock()
		},
		Progress: f.progressAdd,
		Fetched: func(res pipeline.Result) error {
			rec.FromWAN, rec.FromLAN, rec.FromLocal, rec.Rebuilt = res.FromWAN, res.FromLAN, res.FromLocal, res.Rebuilt
			f.log.Info("release fetched", "release", m.Version, "wan_bytes", rec.FromWAN, "lan_bytes", rec.FromLAN, "local_bytes", rec.FromLocal, "rebuilt_bytes", rec.Rebuilt)
			f.setPhase("assembling")
			if f.mesh != nil && f.first {
				f.mesh.SetHolding(m.Sequence) // gossip has room for one channel's
			}
			return f.saveRecord(*rec)
		},
		VerifyFailed: f.verifyFailed,
		Logger:       f.log,
	}
	if f.mesh != nil {
		opts.Owned = f.mesh.Owned()
	}
	if f.mesh == nil || f.mesh.LiveMembers() < 2 {
		// In a site, members fetch from each other and owners from the WAN
		// for them, each with its own bounds. A node alone, outside a site or
		// the one live member of its own (a site's one distribution point),
		// fetches everything from its sources, where round trips cap a
		// fixed number of fetches.
		opts.MaxConcurrency = f.cfg.MaxConcurrency
		if f.list.Batches(ctx) {
			// The fetches in flight travel together, a few requests for
			// many: as many as a batch holds cost the source less than
			// --concurrency one at a time.
			opts.StartConcurrency = batchWindow
		}
	} else {
		// Owners fetch the site's WAN requests for the members that ask
		// them; each member asking for its share keeps them in flight, and
		// each owner fetching its own share ahead of the asking.
		opts.Concurrency = max(opts.Concurrency, f.mesh.RequestShare())
		opts.OwnConcurrency = f.mesh.WANShare
	}
	return pipeline.New(f.store, f.chunks, opts)
}

// collect prunes every channel's old releases and then the chunks no kept
// release of any channel needs, while the store is above its quota (always,
// with no quota): channels share chunks, so one channel's collection must
// keep the others'. applied are manifests just applied, already verified and
// in memory; the others are read back.
func (n *Node) collect(ctx context.Context, applied []*manifest.Manifest) {
	need := make(map[cid.Cid]bool)
	for _, f := range n.followers {
		if !f.collectReleases(need, applied) {
			return
		}
	}
	quota := n.cfg.QuotaBytes
	_, used := n.store.Usage()
	if quota > 0 && used <= quota {
		return
	}
	var freed int64
	err := n.store.ForEach(ctx, func(c cid.Cid, size int64) error {
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

// collectReleases prunes f's old releases, forgets their records and
// manifests, and adds the chunks of those it keeps to need. It reports false
// when a kept release's manifest is unreadable: no chunk may be collected then.
func (f *follower) collectReleases(need map[cid.Cid]bool, applied []*manifest.Manifest) bool {
	removed, err := f.inst.Prune()
	if err != nil {
		f.event("apply", fmt.Sprintf("prune old releases: %v", err))
	}
	for _, name := range removed {
		f.log.Info("release removed", "release", name)
	}
	keep := make(map[string]bool)
	for _, r := range f.inst.Releases() {
		keep[r.Name] = true
	}
	recs := f.records()
	for name := range keep {
		rec, ok := recs[name]
		if !ok {
			continue
		}
		if i := slices.IndexFunc(applied, func(m *manifest.Manifest) bool {
			return rec.Channel == m.Channel && rec.Sequence == m.Sequence
		}); i >= 0 {
			addChunks(need, applied[i])
			continue
		}
		m, err := f.storedManifest(rec)
		if err != nil {
			f.log.Warn("collect: manifest of a kept release unreadable; keeping all chunks", "release", name, "err", err)
			return false
		}
		addChunks(need, m)
	}
	for name, rec := range recs {
		if !keep[name] {
			_ = f.store.DeleteMeta(f.recordKey(name))
			_ = f.store.DeleteMeta(manifestKey(rec.Channel, rec.Sequence))
		}
	}
	return true
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
