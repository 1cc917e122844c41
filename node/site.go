package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/patchmesh/patchmesh/mesh"
	"github.com/patchmesh/patchmesh/node/source"
)

// siteSource is the last update source of a node in a site: the signed heads,
// manifests and trust roots its peers hold. They are verified like any mirror's,
// so the site keeps updating its late members while every real source is down.
// Chunks are not read here; the mesh moves them.
type siteSource struct{ m *mesh.Mesh }

func (s siteSource) String() string { return "site://peers" }

func (s siteSource) Open(ctx context.Context, path string, max int64) (io.ReadCloser, error) {
	if strings.HasPrefix(path, "chunks/") {
		return nil, fmt.Errorf("%s: chunks come through the mesh: %w", path, source.ErrNotFound)
	}
	data, peer, err := s.m.FetchDoc(ctx, path, max)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, mesh.ErrNoDoc) {
			return nil, fmt.Errorf("%s: %w (%v)", path, source.ErrNotFound, err)
		}
		return nil, err
	}
	_ = peer
	return io.NopCloser(bytes.NewReader(data)), nil
}

// siteDocs hands our verified documents to peers that ask.
type siteDocs struct{ n *Node }

func (d siteDocs) ReadDoc(ctx context.Context, path string) ([]byte, error) {
	f, err := nodeFiles{n: d.n}.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(f.Content)
}
