package mesh

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/patchmesh/patchmesh/chunk"
)

// ProtocolID is the libp2p protocol of one chunk request. Version 2 moves
// chunks in their wire form, with an encoding byte in each answer; peers of
// version 1 do not speak it, and are not asked.
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

// Response encodings: how the bytes of a statusOK answer are to be read.
const (
	// encRaw: the chunk itself.
	encRaw byte = 0
	// encZstd: a zstd frame of the chunk, as stored (chunk.Codec). A raw
	// chunk that happens to start like a frame may be sent so too: the
	// receiver's chunk.Codec.Decode falls back to the raw bytes.
	encZstd byte = 1
)

// maxCIDLen bounds the CID in a request; patchmesh CIDs are 36 bytes.
const maxCIDLen = 128

var (
	errProtocol = errors.New("chunk protocol violation")
	// errPeerStatus is wrapped for a well-formed refusal by the peer.
	errPeerStatus = errors.New("peer did not serve the chunk")
)

// statusError is a well-formed refusal by the peer, with its status, so a
// requester can tell "busy, ask again" from "no".
type statusError struct{ status byte }

func (e *statusError) Error() string        { return fmt.Sprintf("status %d: %v", e.status, errPeerStatus) }
func (e *statusError) Is(target error) bool { return target == errPeerStatus }

// writeRequest sends: version, flag, uvarint CID length, CID bytes.
func writeRequest(w io.Writer, c cid.Cid, flag byte) error {
	k := c.Bytes()
	b := make([]byte, 0, 2+binary.MaxVarintLen16+len(k))
	b = append(b, 1, flag)
	b = binary.AppendUvarint(b, uint64(len(k)))
	b = append(b, k...)
	_, err := w.Write(b)
	return err
}

// readRequest reads what writeRequest sent.
func readRequest(r *bufio.Reader) (cid.Cid, byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return cid.Undef, 0, err
	}
	if hdr[0] != 1 || hdr[1] > flagTakeover {
		return cid.Undef, 0, fmt.Errorf("request header %x: %w", hdr, errProtocol)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return cid.Undef, 0, err
	}
	if n == 0 || n > maxCIDLen {
		return cid.Undef, 0, fmt.Errorf("request CID of %d bytes: %w", n, errProtocol)
	}
	k := make([]byte, n)
	if _, err := io.ReadFull(r, k); err != nil {
		return cid.Undef, 0, err
	}
	c, err := cid.Cast(k)
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("request CID: %v: %w", err, errProtocol)
	}
	return c, hdr[1], nil
}

// respRoom is the room a response keeps in its buffer before the wire bytes
// for its header (status, encoding, uvarint length), so that bytes already
// read there are sent without another copy.
const respRoom = 2 + binary.MaxVarintLen32

// writeResponse sends a status and, for statusOK, the encoding of the wire
// bytes (encZstd when they start like a zstd frame) and the length-prefixed
// bytes, in one write (one frame) through buf, a scratch buffer it may grow.
// Data already at respRoom in buf, as AppendWire leaves it, is not copied.
func writeResponse(w io.Writer, status byte, data []byte, buf *[]byte) error {
	if status != statusOK {
		_, err := w.Write([]byte{status})
		return err
	}
	b := *buf
	if len(data) == 0 || cap(b) < respRoom+len(data) || &b[:respRoom+1][respRoom] != &data[0] {
		b = append(slices.Grow(b[:0], respRoom+len(data))[:respRoom], data...)
		*buf = b
	}
	b = b[:respRoom+len(data)]
	enc := encRaw
	if chunk.IsFrame(data) {
		enc = encZstd
	}
	var h [respRoom]byte
	hdr := binary.AppendUvarint(append(h[:0], statusOK, enc), uint64(len(data)))
	start := respRoom - len(hdr)
	copy(b[start:], hdr)
	_, err := w.Write(b[start:])
	return err
}

// readResponse reads a response, refusing wire bytes over chunk.MaxSize (a
// frame is never kept unless smaller than its chunk), and returns them with
// their encoding, unverified. A status other than statusOK is returned with
// an error wrapping errPeerStatus.
func readResponse(r *bufio.Reader) (data []byte, enc, status byte, err error) {
	status, err = r.ReadByte()
	if err != nil {
		return nil, 0, 0, err
	}
	if status != statusOK {
		return nil, 0, status, &statusError{status}
	}
	if enc, err = r.ReadByte(); err != nil {
		return nil, 0, status, err
	}
	if enc > encZstd {
		return nil, 0, status, fmt.Errorf("response encoding %d: %w", enc, errProtocol)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, 0, status, err
	}
	if n > chunk.MaxSize {
		return nil, 0, status, fmt.Errorf("response of %d bytes: %w", n, errProtocol)
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, 0, status, err
	}
	return data, enc, status, nil
}
