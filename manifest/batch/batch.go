// Package batch is the wire form of a batch read: one HTTP request that asks a
// repository server (patchmesh serve) for many chunk files, and one response
// that carries them all, in order.
//
// A node pulling a large release asks for about 55 000 chunks a GiB, one
// request each from a plain static server. On a seed and a node sharing two
// cores, parsing and answering those requests took more CPU than moving the
// bytes. A batch carries up to MaxPaths chunks in one request. The bytes are
// those of the chunk files, unchanged: the client verifies each against its
// CID exactly as it would a single file.
//
// The request is POST Path under the repository's root, with the
// repository-relative paths of the chunk files ("chunks/ab/<cid>"), one per
// line, as the body. The response, of type ContentType, holds one item per
// path, in the order asked: a status byte (Found, or Missing), then the
// file's length as 8 bytes big-endian (0 when missing), then the file's
// bytes. A request without paths asks whether the server answers batches:
// the response has no items. A server that meets an error mid-response
// breaks the connection,
// so the client never takes a truncated stream for a complete one.
//
// A server without batches answers Path with a 404, 405 or 501, or with a
// body of another type: the client then reads each file on its own.
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	// Path is where a batch is asked for, under the repository's root.
	Path = "chunks/batch"
	// ContentType is the type of a batch response.
	ContentType = "application/vnd.patchmesh.batch"
	// MaxPaths is the most paths one batch may ask for.
	MaxPaths = 256
	// MaxRequest bounds a request's body: MaxPaths chunk paths of 70 bytes
	// fit with room to spare.
	MaxRequest = 64 << 10
)

// Item statuses.
const (
	Found   byte = 0
	Missing byte = 1
)

// headerSize is an item's status byte and length.
const headerSize = 9

// WriteHeader writes an item's header: Found and the file's length, or
// Missing and 0.
func WriteHeader(w io.Writer, status byte, size int64) error {
	var h [headerSize]byte
	h[0] = status
	binary.BigEndian.PutUint64(h[1:], uint64(size))
	_, err := w.Write(h[:])
	return err
}

// ErrFormat marks a batch response that does not follow the wire form.
var ErrFormat = errors.New("malformed batch response")

// ReadHeader reads an item's header. It refuses a status it does not know, a
// missing item with a length, and a length over max: the item is the client's
// to bound, not the server's. At the end of the stream it returns io.EOF; in
// the middle of a header, io.ErrUnexpectedEOF.
func ReadHeader(r io.Reader, max int64) (status byte, size int64, err error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	u := binary.BigEndian.Uint64(h[1:])
	switch {
	case h[0] == Missing && u == 0:
		return Missing, 0, nil
	case h[0] != Found:
		return 0, 0, fmt.Errorf("item status %d, length %d: %w", h[0], u, ErrFormat)
	case u > uint64(max):
		return 0, 0, fmt.Errorf("item of %d bytes, over %d: %w", u, max, ErrFormat)
	}
	return Found, int64(u), nil
}
