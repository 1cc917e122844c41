package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest"
)

// assemble writes the release m into dir: its directories, then every regular
// file from the store as the plan's chunks are marked ready (checking each file's
// size and sha256 against the manifest), then its hard links and symlinks, and the
// directories' modes last. See stagedTree for why no link can redirect a write.
func (r *run) assemble(ctx context.Context, dir string) error {
	m, p := r.m, r.plan
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tree := newStagedTree(root)
	w := newStageWriter()
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
		if err := r.writeFile(ctx, root, filepath.FromSlash(f.Path), f, jobs, w); err != nil {
			return err
		}
	}
	if err := tree.links(m); err != nil {
		return err
	}
	return tree.chmodDirs()
}

// writeFile writes f, whose chunks are the plan's jobs, each once it is ready,
// through w.
func (r *run) writeFile(ctx context.Context, root *os.Root, name string, f manifest.File, jobs []int32, w *stageWriter) error {
	// O_EXCL: a file, or a symlink even dangling, already at name is an error,
	// never followed.
	out, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	defer out.Close()
	w.reset(out)
	h := sha256.New()
	var size int64
	for i, c := range f.Chunks {
		if err := r.ready.await(ctx, int(jobs[i])); err != nil {
			return err
		}
		n, err := r.writeChunk(ctx, int(jobs[i]), c.CID, w, h)
		if err != nil {
			return fmt.Errorf("file %s: chunk %s: %w", f.Path, c.CID, err)
		}
		size += n
	}
	if err := w.Flush(); err != nil {
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

// writebackEvery is how many bytes of a staged file are written through the
// page cache before their writeback to disk is started.
const writebackEvery = 1 << 20

// writeChunk writes c, job i, to out and h: as the fetch handed it over, or
// from the store. It reads the store, not asks it: a chunk the fetch marked
// ready is there unless collected since.
func (r *run) writeChunk(ctx context.Context, i int, c cid.Cid, out io.Writer, h io.Writer) (int64, error) {
	if data, ok := r.handoff.take(i); ok {
		h.Write(data)
		n, err := out.Write(data)
		return int64(n), err
	}
	// WriteTo uses the store's pooled buffers: no copy of every chunk on the heap.
	k, err := r.p.st.WriteTo(ctx, c, io.MultiWriter(out, h))
	if errors.Is(err, store.ErrNotFound) && k == 0 {
		// Collected, lost or found damaged since the fetch: get it again
		// rather than fail the apply.
		data, _, ferr := r.p.src.Fetch(ctx, c)
		if ferr != nil {
			return 0, ferr
		}
		h.Write(data)
		w, err := out.Write(data)
		return int64(w), err
	}
	return k, err
}
