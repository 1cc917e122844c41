package chunk

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// MaxSize is the hard cap, in bytes, on any chunk accepted from anywhere: a peer,
// a mirror or the local store. It bounds every buffer that holds one chunk.
const MaxSize = 1 << 20

var (
	// ErrMismatch means the bytes do not hash to the CID that names them.
	ErrMismatch = errors.New("chunk bytes do not match their CID")
	// ErrUnsupported means the CID is not a CIDv1 with the raw codec and a sha2-256 multihash.
	ErrUnsupported = errors.New("unsupported CID: want CIDv1, raw codec, sha2-256")
	// ErrTooLarge means a chunk is larger than MaxSize.
	ErrTooLarge = errors.New("chunk larger than MaxSize")
)

// prefix is the binary form of every CID this package makes and accepts:
// version 1, codec raw (0x55), multihash sha2-256 (0x12) of 32 bytes (0x20).
const prefix = "\x01\x55\x12\x20"

// cidLen is the length of the binary form: prefix and digest.
const cidLen = len(prefix) + sha256.Size

// Sum returns the name of data: a CIDv1, raw codec, sha2-256 multihash.
func Sum(data []byte) cid.Cid {
	d := sha256.Sum256(data)
	return fromDigest(d)
}

func fromDigest(d [sha256.Size]byte) cid.Cid {
	var m [2 + sha256.Size]byte
	m[0], m[1] = mh.SHA2_256, sha256.Size
	copy(m[2:], d[:])
	return cid.NewCidV1(cid.Raw, mh.Multihash(m[:]))
}

// supported reports whether c has the one form patchmesh uses.
func supported(c cid.Cid) bool {
	k := c.KeyString()
	return len(k) == cidLen && k[:len(prefix)] == prefix
}

// Verify checks that data is the chunk c names. It returns an error wrapping
// ErrUnsupported, ErrTooLarge or ErrMismatch, naming the CID.
func Verify(c cid.Cid, data []byte) error {
	if !supported(c) {
		return fmt.Errorf("verify chunk %s: %w", c, ErrUnsupported)
	}
	if len(data) > MaxSize {
		return fmt.Errorf("verify chunk %s: %d bytes: %w", c, len(data), ErrTooLarge)
	}
	d := sha256.Sum256(data)
	if string(d[:]) != c.KeyString()[len(prefix):] {
		return fmt.Errorf("verify chunk %s: got %s: %w", c, fromDigest(d), ErrMismatch)
	}
	return nil
}

// Parse reads a CID in its canonical text form (base32, as cid.Cid.String
// writes it). It is strict: only CIDv1, raw codec, sha2-256 are accepted, and
// only in canonical form, so one chunk never has two names on disk or in a URL.
func Parse(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("parse chunk CID %q: %w", s, err)
	}
	if !supported(c) {
		return cid.Undef, fmt.Errorf("parse chunk CID %q: %w", s, ErrUnsupported)
	}
	if c.String() != s {
		return cid.Undef, fmt.Errorf("parse chunk CID %q: not canonical (want %s): %w", s, c, ErrUnsupported)
	}
	return c, nil
}
