package mesh

import (
	"context"
	"io"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

// Delegate is everything the mesh needs of the node that runs it, passed once
// in Config.Delegate, as memberlist takes one Delegate: the mesh calls out
// through it and holds nothing else of the node. The node tells the mesh what
// to gossip (SetHolding, SetStatus, SetSummary…) by calling it; the mesh never
// reaches back any other way.
//
// The mesh may call every method from many goroutines at once, and only
// between New and the end of Run (FetchChunk also from Fetch).
type Delegate interface {
	// FetchChunk returns chunk c from this node's own update sources (its
	// WAN), decoded and verified against c, and the wire form it was read in
	// (a zstd frame, or raw itself), without storing it. The mesh asks only
	// for chunks this node owns, or as the last resort.
	FetchChunk(ctx context.Context, c cid.Cid) (raw, wire []byte, err error)
	// ReadDoc returns the signed repository document at a clean path, for a
	// peer that asks. Any error answers "not found".
	ReadDoc(ctx context.Context, path string) ([]byte, error)
	// ServeObject answers a peer's object request (the caching proxy's URLs
	// this node owns) by writing to w; an error, such as when this node
	// keeps no objects, resets the stream.
	ServeObject(ctx context.Context, req []byte, w io.Writer) error
	// Stored is told of every chunk the mesh stores, just before it stores
	// it, with where it came from: those this node asked for and those it
	// fetched for peers, as their owner.
	Stored(c cid.Cid, o chunk.Origin)
	// BadPeer is told of every chunk a member sent that did not match its
	// CID, with the member's name (its peer id if it has none) and why: the
	// mesh has penalized the member and asks another.
	BadPeer(c cid.Cid, member string, err error)
}
