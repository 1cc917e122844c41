package node

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/install"
)

// fetchError marks a failure to fetch a release's chunks, as opposed to a
// failure to assemble or activate it.
type fetchError struct{ err error }

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// apply fetches the chunks of m the store lacks while it assembles m from the
// store into staging, checks every file, and switches to it with hooks and a
// health check; on failure the previous release stays. A failed fetch is
// returned as a *fetchError. rec gets the bytes by origin and is saved once
// every chunk is stored.
func (n *Node) apply(ctx context.Context, m *manifest.Manifest, name string, rec *releaseRecord) error {
	p := planRelease(m)
	ready := newReadiness(len(p.jobs))
	fetch := func(ctx context.Context) error {
		if err := n.fetchRelease(ctx, m, p, ready, rec); err != nil {
			return &fetchError{err}
		}
		n.log.Info("release fetched", "release", m.Version, "wan_bytes", rec.FromWAN, "lan_bytes", rec.FromLAN, "local_bytes", rec.FromLocal, "rebuilt_bytes", rec.Rebuilt)
		n.setPhase("assembling")
		if n.mesh != nil {
			n.mesh.SetHolding(m.Sequence)
		}
		return n.saveRecord(*rec)
	}
	staged := false
	err := n.inst.Stage(ctx, name, func(ctx context.Context, dir string) error {
		staged = true
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return fetch(gctx) })
		g.Go(func() error { return n.assemble(gctx, m, p, ready, dir) })
		return g.Wait()
	})
	if err == nil && !staged {
		// Staged before a restart: the node still fetches what it lacks, to
		// hold the whole release for its peers.
		err = fetch(ctx)
	}
	if err != nil {
		var fe *fetchError
		if errors.As(err, &fe) {
			return fe
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = fmt.Errorf("assemble %s: %w", m.Version, err)
		n.event("apply", err.Error())
		return err
	}
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

// assemble writes the release m into dir: its directories, then every regular
// file from the store as the plan's chunks are marked ready (checking each file's
// size and sha256 against the manifest), then its hard links and symlinks, and the
// directories' modes last. See stagedTree for why no link can redirect a write.
func (n *Node) assemble(ctx context.Context, m *manifest.Manifest, p *releasePlan, ready *readiness, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tree := newStagedTree(root)
	if err := tree.dirs(m); err != nil {
		return err
	}
	refs := p.refs
	for _, f := range m.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		jobs := refs[:len(f.Chunks)]
		refs = refs[len(f.Chunks):]
		if !f.IsRegular() {
			continue
		}
		if err := tree.parent(f.Path); err != nil {
			return err
		}
		if err := n.writeFile(ctx, root, filepath.FromSlash(f.Path), f, jobs, ready); err != nil {
			return err
		}
	}
	if err := tree.links(m); err != nil {
		return err
	}
	return tree.chmodDirs()
}

// writeFile writes f, whose chunks are the plan's jobs, each once it is ready.
func (n *Node) writeFile(ctx context.Context, root *os.Root, name string, f manifest.File, jobs []int32, ready *readiness) error {
	// O_EXCL: a file, or a symlink even dangling, already at name is an error,
	// never followed.
	out, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	defer out.Close()
	// Chunks are ~16 KiB: buffering saves most of the write calls.
	bw := bufio.NewWriterSize(&writeback{f: out}, 256<<10)
	h := sha256.New()
	var size int64
	for i, r := range f.Chunks {
		if err := ready.await(ctx, int(jobs[i])); err != nil {
			return err
		}
		n, err := n.writeChunk(ctx, r.CID, bw, h)
		if err != nil {
			return fmt.Errorf("file %s: chunk %s: %w", f.Path, r.CID, err)
		}
		size += n
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	if size != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("file %s: assembled %d bytes whose sha256 does not match the manifest: %w", f.Path, size, manifest.ErrMismatch)
	}
	// After the last write, which would clear setuid and setgid.
	if err := out.Chmod(manifest.FileMode(f.Mode)); err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	return out.Close()
}

// writebackEvery is how many bytes of a staged file are written before their
// writeback to disk is started.
const writebackEvery = 1 << 20

// writeback writes to f and starts the writeback of every writebackEvery bytes.
type writeback struct {
	f          *os.File
	off, start int64
}

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.start >= writebackEvery {
		startWriteback(w.f, w.start, w.off-w.start)
		w.start = w.off
	}
	return n, err
}

func (n *Node) writeChunk(ctx context.Context, c cid.Cid, out io.Writer, h io.Writer) (int64, error) {
	// WriteTo uses the store's pooled buffers: no copy of every chunk on the heap.
	k, err := n.store.WriteTo(ctx, c, io.MultiWriter(out, h))
	if errors.Is(err, store.ErrNotFound) && k == 0 {
		// Collected or lost since the fetch: get it again rather than fail the apply.
		data, _, ferr := n.fetchChunk(ctx, c)
		if ferr != nil {
			return 0, ferr
		}
		h.Write(data)
		w, err := out.Write(data)
		return int64(w), err
	}
	return k, err
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
	root := n.trustRoot()
	for name := range keep {
		rec, ok := recs[name]
		if !ok {
			continue
		}
		if cur != nil && rec.Channel == cur.Channel && rec.Sequence == cur.Sequence {
			addChunks(need, cur)
			continue
		}
		env, err := n.store.GetMeta(manifestKey(rec.Channel, rec.Sequence))
		if err != nil {
			n.log.Warn("collect: manifest of a kept release is missing; keeping all chunks", "release", name)
			return
		}
		m, err := root.VerifyManifest(env, time.Now())
		if err != nil {
			n.log.Warn("collect: manifest of a kept release does not verify; keeping all chunks", "release", name, "err", err)
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
		if need[c] {
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
