package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

// repoHandler serves the repository format from this node: its newest verified
// head, the manifests it keeps, trust roots and chunks. A chunk the node lacks but
// a verified manifest names is fetched through the site (and the WAN) on the way,
// like a caching proxy; anything else is not found. Everything served was verified.
func (n *Node) repoHandler() http.Handler {
	return repo.NewHandler(nodeFiles{n: n, passThrough: true}, repo.HandlerOptions{Logger: n.log, Access: repo.LogAccess(n.log, slog.LevelDebug)})
}

// nodeFiles are the repository files a node holds. With passThrough (the
// --serve-repo handler) a request for a newer head or its manifest goes on to the
// node's own sources; without it (peers asking over the mesh) only what the node
// holds is served, so requests never bounce between members.
type nodeFiles struct {
	n           *Node
	passThrough bool
}

func (f nodeFiles) Open(ctx context.Context, name string) (*repo.File, error) {
	n := f.n
	for _, fl := range n.followers {
		if file, ok, err := f.channelFile(ctx, fl, name); ok {
			return file, err
		}
	}
	switch {
	case strings.HasPrefix(name, "roots/"):
		v, err := strconv.ParseUint(strings.TrimSuffix(path.Base(name), ".json"), 10, 64)
		if err != nil || name != repo.RootPath(v) {
			return nil, fs.ErrNotExist
		}
		return f.meta(metaRoot+strconv.FormatUint(v, 10), true)
	case strings.HasPrefix(name, "chunks/"):
		c, err := chunk.Parse(path.Base(name))
		if err != nil || name != repo.ChunkPath(c) {
			return nil, fs.ErrNotExist
		}
		// Served as stored: a valid repository chunk file, raw or compressed.
		data, err := n.store.GetWire(ctx, c)
		if errors.Is(err, store.ErrNotFound) {
			if !f.passThrough {
				return nil, fs.ErrNotExist
			}
			if !n.stat.isKnown(c) {
				return nil, fs.ErrNotExist
			}
			if _, _, err = n.chunks.Fetch(ctx, c); err == nil {
				data, err = n.store.GetWire(ctx, c)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("chunk %s: %w", c, err)
		}
		n.countServed(int64(len(data)))
		return &repo.File{Content: bytes.NewReader(data), Size: int64(len(data)), ETag: `"` + c.String() + `"`, Immutable: true}, nil
	}
	return nil, fs.ErrNotExist
}

// channelFile opens name if it is a file of fl's channel (head, rollout,
// manifest); ok is false when it is not.
func (f nodeFiles) channelFile(ctx context.Context, fl *follower, name string) (file *repo.File, ok bool, err error) {
	switch {
	case name == repo.HeadPath(fl.channel):
		if f.passThrough {
			fl.refreshHead(ctx)
		}
		file, err = f.meta(metaHead+fl.channel, false)
		return file, true, err
	case name == repo.RolloutPath(fl.channel):
		if f.passThrough {
			fl.refreshHead(ctx)
		}
		file, err = f.meta(metaRollout+fl.channel, false)
		return file, true, err
	case strings.HasPrefix(name, "manifests/"+fl.channel+"/"):
		seq, err := strconv.ParseUint(strings.TrimSuffix(path.Base(name), ".json"), 10, 64)
		if err != nil || name != repo.ManifestPath(fl.channel, seq) {
			return nil, true, fs.ErrNotExist
		}
		if f.passThrough {
			if err := fl.ensureManifest(ctx, seq); err != nil {
				return nil, true, err
			}
		}
		file, err = f.meta(manifestKey(fl.channel, seq), true)
		return file, true, err
	}
	return nil, false, nil
}

// headRefresh bounds how often a node serving the repository asks its own
// sources for a newer head on behalf of its clients.
const headRefresh = time.Second

// refreshHead makes the served head at most headRefresh old: a node that other
// sites use as their source passes new releases on without waiting for its own
// schedule. The head is verified (signatures, expiry, never older) first.
func (f *follower) refreshHead(ctx context.Context) {
	f.headMu.Lock()
	defer f.headMu.Unlock()
	if time.Since(f.headAt) < headRefresh {
		return
	}
	f.headAt = time.Now()
	h, env, _, err := f.fetchHead(ctx)
	if err != nil {
		f.log.Debug("refresh served head", "err", err)
		return
	}
	// Clients of this node follow the same staged rollout: pass its changes on.
	if _, err := f.fetchRollout(ctx, h); err != nil {
		f.log.Debug("refresh served rollout", "err", err)
	}
	if f.served != nil && h.Sequence <= f.served.Sequence {
		return
	}
	if err := f.store.SetMeta(metaHead+f.channel, env); err != nil {
		f.log.Warn("save head", "err", err)
		return
	}
	f.served = h
}

// noteHead records the newest verified head, which the repository serves.
func (f *follower) noteHead(h *manifest.Head) {
	f.headMu.Lock()
	defer f.headMu.Unlock()
	if f.served == nil || h.Sequence > f.served.Sequence {
		f.served = h
	}
}

// ensureManifest fetches and verifies the manifest the served head names when
// this node has not fetched it for itself yet.
func (f *follower) ensureManifest(ctx context.Context, seq uint64) error {
	if _, err := f.store.GetMeta(manifestKey(f.channel, seq)); err == nil {
		return nil
	}
	f.headMu.Lock()
	h := f.served
	f.headMu.Unlock()
	if h == nil || h.Sequence != seq {
		return fs.ErrNotExist
	}
	m, env, err := f.fetchManifest(ctx, h)
	if err != nil {
		return fmt.Errorf("manifest %d: %w", seq, err)
	}
	if err := f.store.SetMeta(manifestKey(f.channel, seq), env); err != nil {
		return err
	}
	f.setKnownManifest(m)
	return nil
}

func (f nodeFiles) meta(key string, immutable bool) (*repo.File, error) {
	data, err := f.n.store.GetMeta(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fs.ErrNotExist
	}
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(data)
	return &repo.File{Content: bytes.NewReader(data), Size: int64(len(data)), ModTime: time.Time{},
		ETag: `"` + hex.EncodeToString(d[:16]) + `"`, Immutable: immutable}, nil
}
