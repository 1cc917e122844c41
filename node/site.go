package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
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

// meshDelegate is the node as its mesh sees it (mesh.Delegate): the one
// adapter at the node↔mesh seam, given once in mesh.Config.
type meshDelegate struct{ n *Node }

var _ mesh.Delegate = meshDelegate{}

// FetchChunk reads a chunk this node owns from its update sources.
func (d meshDelegate) FetchChunk(ctx context.Context, c cid.Cid) (raw, wire []byte, err error) {
	return d.n.wan.FetchChunk(ctx, c)
}

// ReadDoc hands our verified documents to peers that ask.
func (d meshDelegate) ReadDoc(ctx context.Context, path string) ([]byte, error) {
	f, err := nodeFiles{n: d.n}.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(f.Content)
}

// ServeObject answers for the caching proxy, when this node runs one. The
// proxy is made after the mesh (it asks the mesh for owners), and before Run.
func (d meshDelegate) ServeObject(ctx context.Context, req []byte, w io.Writer) error {
	if d.n.proxy == nil {
		return errors.New("serve object: this node runs no caching proxy")
	}
	return d.n.proxy.ServeObject(ctx, req, w)
}

// Stored notes where the mesh got a chunk, for the release that claims it.
func (d meshDelegate) Stored(c cid.Cid, o chunk.Origin) { d.n.stored.note(c, o) }

// BadPeer records a member that sent bytes not matching their CID.
func (d meshDelegate) BadPeer(c cid.Cid, member string, err error) {
	d.n.peerSentBad(c, member, err)
}
