package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/ipfs/go-cid"
	"github.com/klauspost/compress/zstd"
)

// Compression says how hard a Codec tries to shrink chunks. The zero value is
// the level patchmesh publishes with.
type Compression int

const (
	// CompressDefault is zstd's fastest level: on release binaries it saves
	// nearly as much as its default level at about twice the speed, which
	// keeps publish near 1.5x sha256sum (see zstd_bench_test.go).
	CompressDefault Compression = iota
	// CompressOff stores and moves every chunk raw.
	CompressOff
	// CompressFastest is zstd's fastest level.
	CompressFastest
	// CompressBetter is zstd's default level.
	CompressBetter
	// CompressBest is zstd's best level: slow, for publishing on a fast machine.
	CompressBest
)

// String names c as the --compress flag spells it.
func (c Compression) String() string {
	switch c {
	case CompressDefault:
		return "default"
	case CompressOff:
		return "off"
	case CompressFastest:
		return "fastest"
	case CompressBetter:
		return "better"
	case CompressBest:
		return "best"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// ParseCompression reads the names String writes.
func ParseCompression(s string) (Compression, error) {
	for c := CompressDefault; c <= CompressBest; c++ {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("compression %q: want default, off, fastest, better or best", s)
}

// ErrBadFrame means bytes start like a zstd frame but none of the ways to
// read them yields the chunk.
var ErrBadFrame = errors.New("zstd frame does not decode to the chunk")

// frameMagic starts every zstd frame (RFC 8878), little-endian 0xFD2FB528.
const frameMagic = "\x28\xb5\x2f\xfd"

// IsFrame reports whether wire starts like a zstd frame: how a repository
// chunk file, a store value or a peer's answer in compressed form is told
// from a raw one. A raw chunk may start so too, by chance.
func IsFrame(wire []byte) bool { return bytes.HasPrefix(wire, []byte(frameMagic)) }

// Codec turns chunks into their wire form, compressed with zstd where that
// pays, and wire forms back into verified chunks. Create one with NewCodec
// and share it: it is safe for concurrent use, and its encoder and decoder
// are expensive to make.
type Codec struct {
	level Compression
	enc   *zstd.Encoder // nil when level is CompressOff
	dec   *zstd.Decoder
	// scratch holds *[]byte buffers of MaxSize capacity for EncodeAll, so a
	// chunk that does not compress costs no allocation.
	scratch sync.Pool
}

// NewCodec returns a Codec that encodes at level and decodes any zstd frame
// without a dictionary.
func NewCodec(level Compression) (*Codec, error) {
	// DecodeAll uses one block decoder per concurrent call and starts no
	// goroutine; the caps refuse a frame that would decode past MaxSize
	// before it allocates more.
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(MaxSize),
		zstd.WithDecoderMaxWindow(MaxSize))
	if err != nil {
		return nil, fmt.Errorf("new chunk codec: %w", err)
	}
	k := &Codec{level: level, dec: dec}
	k.scratch.New = func() any { b := make([]byte, 0, MaxSize); return &b }
	var zl zstd.EncoderLevel
	switch level {
	case CompressOff:
		return k, nil
	case CompressDefault, CompressFastest:
		zl = zstd.SpeedFastest
	case CompressBetter:
		zl = zstd.SpeedDefault
	case CompressBest:
		zl = zstd.SpeedBestCompression
	default:
		return nil, fmt.Errorf("new chunk codec: unknown %v", level)
	}
	// The SHA-256 of the CID checks the bytes, so the frame's own checksum
	// would be four bytes and a hash for nothing.
	k.enc, err = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zl),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(MaxSize),
		zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("new chunk codec: %w", err)
	}
	return k, nil
}

// Level is the Compression k encodes at.
func (k *Codec) Level() Compression { return k.level }

// pays reports whether compressed bytes are worth keeping for raw ones: at
// least 1/16 and 64 bytes smaller, so decoding is spent only where it saves.
func pays(raw, compressed int) bool {
	return compressed <= raw-raw/16 && compressed <= raw-64
}

// Encode returns the wire form of the chunk raw: a zstd frame when that pays,
// otherwise raw itself. The frame is a new slice; raw is not modified.
func (k *Codec) Encode(raw []byte) []byte {
	if k.enc == nil || len(raw) > MaxSize || !pays(len(raw), 0) {
		return raw
	}
	bp := k.scratch.Get().(*[]byte)
	defer k.scratch.Put(bp)
	z := k.enc.EncodeAll(raw, (*bp)[:0])
	if cap(z) <= MaxSize {
		*bp = z[:0]
	}
	if !pays(len(raw), len(z)) {
		return raw
	}
	return append([]byte(nil), z...)
}

// Decode returns the chunk c from its wire form, verified against c. A zstd
// frame is decompressed, up to size bytes when size > 0 (the size a manifest
// declares), else up to MaxSize; if it does not decode, or not to c, the wire
// bytes are verified as a raw chunk, since a raw chunk may start like a frame
// (and objects that are frames of their own, such as deltas, are named by
// the CID of their own bytes). Errors wrap ErrMismatch, ErrTooLarge (a frame
// decoding past the limit: a bomb), ErrBadFrame or ErrUnsupported. The
// result may be wire itself.
func (k *Codec) Decode(c cid.Cid, wire []byte, size int) ([]byte, error) {
	if !IsFrame(wire) {
		if err := Verify(c, wire); err != nil {
			return nil, err
		}
		return wire, nil
	}
	raw, derr := k.Decompress(nil, wire, size)
	if derr == nil {
		if verr := Verify(c, raw); verr == nil {
			return raw, nil
		} else if errors.Is(verr, ErrUnsupported) {
			return nil, verr
		}
	}
	if err := Verify(c, wire); err == nil {
		return wire, nil
	}
	switch {
	case errors.Is(derr, ErrTooLarge):
		return nil, fmt.Errorf("decode chunk %s: %w", c, derr)
	case derr != nil:
		return nil, fmt.Errorf("decode chunk %s: %w (%w)", c, ErrBadFrame, derr)
	}
	return nil, fmt.Errorf("decode chunk %s: neither the %d bytes decoded nor the frame itself: %w", c, len(raw), ErrMismatch)
}

// Decompress appends to dst what the zstd frame wire decodes to, without
// verifying it: for bytes verified when they came in, such as a store's. It
// refuses, with an error wrapping ErrTooLarge, a frame that decodes past size
// bytes when size > 0, else past MaxSize.
func (k *Codec) Decompress(dst, wire []byte, size int) ([]byte, error) {
	limit := MaxSize
	if size > 0 && size < limit {
		limit = size
	}
	var h zstd.Header
	if err := h.Decode(wire); err != nil {
		return nil, fmt.Errorf("zstd frame header: %w", err)
	}
	if h.HasFCS {
		if h.FrameContentSize > uint64(limit) {
			return nil, fmt.Errorf("zstd frame of %d bytes declares %d bytes, limit %d: %w", len(wire), h.FrameContentSize, limit, ErrTooLarge)
		}
		if dst == nil {
			dst = make([]byte, 0, h.FrameContentSize)
		}
	}
	start := len(dst)
	out, err := k.dec.DecodeAll(wire, dst)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return nil, fmt.Errorf("zstd frame of %d bytes wants a window over %d bytes: %w", len(wire), MaxSize, ErrTooLarge)
	}
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || len(out)-start > limit {
		return nil, fmt.Errorf("zstd frame of %d bytes decodes to more than %d bytes: %w", len(wire), limit, ErrTooLarge)
	}
	if err != nil {
		return nil, fmt.Errorf("zstd frame: %w", err)
	}
	return out, nil
}
