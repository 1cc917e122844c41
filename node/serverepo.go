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
	"github.com/patchmesh/patchmesh/manifest/repo"
)

// repoHandler serves the repository format from this node: its newest verified
// head, the manifests it keeps, trust roots and chunks. A chunk the node lacks but
// a verified manifest names is fetched through the site (and the WAN) on the way,
// like a caching proxy; anything else is not found. Everything served was verified.
func (n *Node) repoHandler() http.Handler {
	return repo.NewHandler(nodeFiles{n}, repo.HandlerOptions{Logger: n.log})
}

type nodeFiles struct{ n *Node }

func (f nodeFiles) Open(ctx context.Context, name string) (*repo.File, error) {
	n := f.n
	switch {
	case name == repo.HeadPath(n.cfg.Channel):
		return f.meta(metaHead+n.cfg.Channel, false)
	case strings.HasPrefix(name, "manifests/"+n.cfg.Channel+"/"):
		seq, err := strconv.ParseUint(strings.TrimSuffix(path.Base(name), ".json"), 10, 64)
		if err != nil || name != repo.ManifestPath(n.cfg.Channel, seq) {
			return nil, fs.ErrNotExist
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
		data, err := n.store.Get(ctx, c)
		if errors.Is(err, store.ErrNotFound) {
			n.mu.Lock()
			known := n.stat.known[c]
			n.mu.Unlock()
			if !known {
				return nil, fs.ErrNotExist
			}
			data, _, err = n.fetchChunk(ctx, c)
		}
		if err != nil {
			return nil, fmt.Errorf("chunk %s: %w", c, err)
		}
		n.countServed(int64(len(data)))
		return &repo.File{Content: bytes.NewReader(data), Size: int64(len(data)), ETag: `"` + c.String() + `"`, Immutable: true}, nil
	}
	return nil, fs.ErrNotExist
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
