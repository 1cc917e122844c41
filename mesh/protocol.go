package mesh

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/patchmesh/patchmesh/chunk"
)

// ProtocolID is the libp2p protocol of the chunk stream between two members.
// The asking side writes tagged requests whenever it likes; the serving side
// answers each as soon as it has the bytes, in any order, with the request's
// tag. Requests and answers that queue up together go out in one write.
const ProtocolID protocol.ID = "/patchmesh/chunk/2"

// Request flags: what the serving peer may do when it lacks the chunk.
const (
	// flagStore: serve only from the store.
	flagStore byte = 0
	// flagOwner: the requester believes the server owns the chunk; the
	// server fetches it from its WAN if it agrees.
	flagOwner byte = 1
	// flagTakeover: the candidates before the server failed; it fetches
	// from its WAN whatever its own view of ownership.
	flagTakeover byte = 2
)

// Response statuses.
const (
	statusOK       byte = 0
	statusNotFound byte = 1 // not in the store, and not asked to fetch it
	statusNotOwner byte = 2 // asked as owner, but not the owner by its view
	statusBusy     byte = 3 // no serve slot within the deadline
	statusFailed   byte = 4 // the WAN fetch failed
)

// maxCIDLen bounds the CID in a request; patchmesh CIDs are 36 bytes.
const maxCIDLen = 128

var (
	errProtocol = errors.New("chunk protocol violation")
	// errPeerStatus is wrapped for a well-formed refusal by the peer.
	errPeerStatus = errors.New("peer did not serve the chunk")
)

// appendRequest appends one request: uvarint tag, flag, uvarint CID length,
// CID bytes.
func appendRequest(b []byte, tag uint64, c cid.Cid, flag byte) []byte {
	k := c.Bytes()
	b = binary.AppendUvarint(b, tag)
	b = append(b, flag)
	b = binary.AppendUvarint(b, uint64(len(k)))
	return append(b, k...)
}

// readRequest reads what appendRequest wrote.
func readRequest(r *bufio.Reader) (tag uint64, c cid.Cid, flag byte, err error) {
	if tag, err = binary.ReadUvarint(r); err != nil {
		return 0, cid.Undef, 0, err
	}
	if flag, err = r.ReadByte(); err != nil {
		return 0, cid.Undef, 0, err
	}
	if flag > flagTakeover {
		return 0, cid.Undef, 0, fmt.Errorf("request flag %d: %w", flag, errProtocol)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, cid.Undef, 0, err
	}
	if n == 0 || n > maxCIDLen {
		return 0, cid.Undef, 0, fmt.Errorf("request CID of %d bytes: %w", n, errProtocol)
	}
	var kb [maxCIDLen]byte
	k := kb[:n]
	if _, err := io.ReadFull(r, k); err != nil {
		return 0, cid.Undef, 0, err
	}
	if c, err = cid.Cast(k); err != nil {
		return 0, cid.Undef, 0, fmt.Errorf("request CID: %v: %w", err, errProtocol)
	}
	return tag, c, flag, nil
}

// appendResponse appends one answer: uvarint tag, status and, for statusOK,
// the uvarint length and the bytes.
func appendResponse(b []byte, tag uint64, status byte, data []byte) []byte {
	b = binary.AppendUvarint(b, tag)
	b = append(b, status)
	if status == statusOK {
		b = binary.AppendUvarint(b, uint64(len(data)))
		b = append(b, data...)
	}
	return b
}

// readResponse reads what appendResponse wrote, refusing more than
// chunk.MaxSize bytes. A refusal by the peer is a status, not an error.
func readResponse(r *bufio.Reader) (tag uint64, status byte, data []byte, err error) {
	if tag, err = binary.ReadUvarint(r); err != nil {
		return 0, 0, nil, err
	}
	if status, err = r.ReadByte(); err != nil {
		return 0, 0, nil, err
	}
	if status > statusFailed {
		return 0, 0, nil, fmt.Errorf("response status %d: %w", status, errProtocol)
	}
	if status != statusOK {
		return tag, status, nil, nil
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, 0, nil, err
	}
	if n > chunk.MaxSize {
		return 0, 0, nil, fmt.Errorf("response of %d bytes: %w", n, errProtocol)
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return 0, 0, nil, err
	}
	return tag, status, data, nil
}
