package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

// parallel is how many files are collected at once.
const parallel = 4

// Run collects the upstream tree once, checks it, and publishes it when it
// differs from the repository's head. On any failure the repository, the
// previous tree and the state are as they were.
func (m *Mirror) Run(ctx context.Context) (*Result, error) {
	res, err := m.run(ctx)
	if err != nil {
		return res, fmt.Errorf("mirror %s: %w", m.upstreamName(), err)
	}
	return res, nil
}

func (m *Mirror) run(ctx context.Context) (*Result, error) {
	st, err := m.loadState()
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	items, err := m.list(ctx)
	if err != nil {
		return nil, err
	}
	next := m.nextDir()
	if err := os.RemoveAll(next); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(next, 0o755); err != nil {
		return nil, err
	}
	// next/ is only a product of this run; the previous tree stays whole.
	defer os.RemoveAll(next)

	res := &Result{Files: len(items)}
	newState := &state{Files: make(map[string]fileState, len(items))}
	outs := make([]fetched, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, it := range items {
		var prev *fileState
		if p, ok := st.Files[it.path]; ok {
			prev = &p
		}
		g.Go(func() error {
			out, err := m.fetch(gctx, it, prev, filepath.Join(next, filepath.FromSlash(it.path)))
			outs[i] = out
			if err != nil {
				return err
			}
			m.log.Debug("mirror: collected", "path", it.path, "kept", out.kept, "bytes", out.downloaded)
			return nil
		})
	}
	err = g.Wait()
	for i, out := range outs {
		res.DownloadedBytes += out.downloaded
		res.ResumedBytes += out.resumed
		if out.kept {
			res.Kept++
		} else if out.downloaded > 0 || out.st.SHA256 != "" {
			res.Downloaded++
		}
		if err == nil {
			newState.Files[items[i].path] = out.st
			res.Bytes += out.st.Size
		}
	}
	if err != nil {
		return res, err
	}
	if err := m.validate(ctx, next); err != nil {
		return res, err
	}

	head, cur, err := repo.CurrentRelease(m.cfg.Repo, m.cfg.Publish.Channel)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, err
	}
	var seq uint64
	if head != nil {
		seq = head.Sequence
		res.Version = head.Version
	}
	if cur != nil {
		old := make(map[string]string)
		for _, f := range cur.Files {
			if f.IsRegular() {
				old[f.Path] = f.SHA256
			} else {
				old[f.Path] = "(" + f.Path + ")" // differs from any digest
			}
		}
		for p, f := range newState.Files {
			switch sum, ok := old[p]; {
			case !ok:
				res.Added = append(res.Added, p)
			case sum != f.SHA256:
				res.Changed = append(res.Changed, p)
			}
			delete(old, p)
		}
		for p := range old {
			res.Removed = append(res.Removed, p)
		}
		slices.Sort(res.Added)
		slices.Sort(res.Changed)
		slices.Sort(res.Removed)
		if len(res.Added)+len(res.Changed)+len(res.Removed) == 0 {
			m.log.Info("mirror: upstream unchanged", "version", res.Version, "files", res.Files)
			if res.Renewed, err = m.renew(head); err != nil {
				return res, err
			}
			return res, m.commit(newState)
		}
	}

	opts := m.cfg.Publish
	if opts.Version == "" {
		opts.Version = m.cfg.Now().UTC().Format("20060102.150405") + "." + strconv.FormatUint(seq+1, 10)
	}
	sum, err := repo.Publish(ctx, m.cfg.Repo, next, opts)
	if err != nil {
		return res, err
	}
	res.Published, res.Summary, res.Version = true, sum, sum.Version
	m.log.Info("mirror: published", "channel", sum.Channel, "version", sum.Version, "files", res.Files,
		"added", len(res.Added), "changed", len(res.Changed), "removed", len(res.Removed))
	if err := m.commit(newState); err != nil {
		// Published; the next run only downloads more than it needed.
		m.log.Warn("mirror: keep the collected tree", "err", err)
	}
	return res, nil
}

// renew signs the head again when half its life is gone: a mirror run on a
// schedule keeps its channel alive while the vendor publishes nothing.
func (m *Mirror) renew(h *manifest.Head) (bool, error) {
	ttl := m.cfg.Publish.HeadTTL
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	now := m.cfg.Now().UTC().Truncate(time.Second)
	if h.Expires.Sub(now) > ttl/2 {
		return false, nil
	}
	h.Issued, h.Expires = now, now.Add(ttl)
	if err := repo.WriteHead(m.cfg.Repo, h, m.cfg.Publish.Keys...); err != nil {
		return false, fmt.Errorf("renew head: %w", err)
	}
	m.log.Info("mirror: head renewed", "version", h.Version, "expires", h.Expires)
	return true, nil
}

// validate runs the external validator on the collected tree.
func (m *Mirror) validate(ctx context.Context, dir string) error {
	if m.cfg.Validate == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ValidateTimeout)
	defer cancel()
	shell, flag := "sh", "-c"
	if runtime.GOOS == "windows" {
		shell, flag = "cmd", "/C"
	}
	cmd := exec.CommandContext(ctx, shell, flag, m.cfg.Validate)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATCHMESH_MIRROR_TREE="+dir)
	var out bytes.Buffer
	// One writer for both, so exec writes to it from one goroutine at a time.
	w := &limitedBuffer{&out, 8 << 10}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("validator %q: no answer in %v: %w", m.cfg.Validate, m.cfg.ValidateTimeout, ErrRefused)
	default:
		return fmt.Errorf("validator %q: %w: %w: %s", m.cfg.Validate, err, ErrRefused, bytes.TrimSpace(out.Bytes()))
	}
}

// commit makes next/ the tree the next run compares with, then its state.
func (m *Mirror) commit(st *state) error {
	tree, next := m.treeDir(), m.nextDir()
	old := tree + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(tree, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(next, tree); err != nil {
		return err
	}
	data, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	if err := repo.WriteFileAtomic(m.statePath(), data, 0o644); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
