package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
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
	return repo.NewHandler(nodeFiles{n: n, passThrough: true}, repo.HandlerOptions{Logger: n.log})
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
	switch {
	case name == repo.HeadPath(n.cfg.Channel):
		if f.passThrough {
			n.refreshHead(ctx)
		}
		return f.meta(metaHead+n.cfg.Channel, false)
	case name == repo.RolloutPath(n.cfg.Channel):
		if f.passThrough {
			n.refreshHead(ctx)
		}
		return f.meta(metaRollout+n.cfg.Channel, false)
	case strings.HasPrefix(name, "manifests/"+n.cfg.Channel+"/"):
		seq, err := strconv.ParseUint(strings.TrimSuffix(path.Base(name), ".json"), 10, 64)
		if err != nil || name != repo.ManifestPath(n.cfg.Channel, seq) {
			return nil, fs.ErrNotExist
		}
		if f.passThrough {
			if err := n.ensureManifest(ctx, seq); err != nil {
				return nil, err
			}
		}
		return f.meta(manifestKey(n.cfg.Channel, seq), true)
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
			n.mu.Lock()
			known := n.stat.known[c]
			n.mu.Unlock()
			if !known {
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

// headRefresh bounds how often a node serving the repository asks its own
// sources for a newer head on behalf of its clients.
const headRefresh = time.Second

// refreshHead makes the served head at most headRefresh old: a node that other
// sites use as their source passes new releases on without waiting for its own
// schedule. The head is verified (signatures, expiry, never older) first.
func (n *Node) refreshHead(ctx context.Context) {
	n.headMu.Lock()
	defer n.headMu.Unlock()
	if time.Since(n.headAt) < headRefresh {
		return
	}
	n.headAt = time.Now()
	h, env, _, err := n.fetchHead(ctx)
	if err != nil {
		n.log.Debug("refresh served head", "err", err)
		return
	}
	// Clients of this node follow the same staged rollout: pass its changes on.
	if _, err := n.fetchRollout(ctx, h); err != nil {
		n.log.Debug("refresh served rollout", "err", err)
	}
	if n.served != nil && h.Sequence <= n.served.Sequence {
		return
	}
	if err := n.store.SetMeta(metaHead+n.cfg.Channel, env); err != nil {
		n.log.Warn("save head", "err", err)
		return
	}
	n.served = h
}

// noteHead records the newest verified head, which the repository serves.
func (n *Node) noteHead(h *manifest.Head) {
	n.headMu.Lock()
	defer n.headMu.Unlock()
	if n.served == nil || h.Sequence > n.served.Sequence {
		n.served = h
	}
}

// ensureManifest fetches and verifies the manifest the served head names when
// this node has not fetched it for itself yet.
func (n *Node) ensureManifest(ctx context.Context, seq uint64) error {
	if _, err := n.store.GetMeta(manifestKey(n.cfg.Channel, seq)); err == nil {
		return nil
	}
	n.headMu.Lock()
	h := n.served
	n.headMu.Unlock()
	if h == nil || h.Sequence != seq {
		return fs.ErrNotExist
	}
	m, env, err := n.fetchManifest(ctx, h)
	if err != nil {
		return fmt.Errorf("manifest %d: %w", seq, err)
	}
	if err := n.store.SetMeta(manifestKey(n.cfg.Channel, seq), env); err != nil {
		return err
	}
	n.setKnownManifest(m)
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
