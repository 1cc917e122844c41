// Package delta encodes and decodes delta objects: zstd frames whose raw
// dictionary is a range of an earlier version of a file, so that the bytes a
// node already holds need not cross the network again.
//
// The form was chosen by measurement on real package updates (see
// scripts/RESULTS-delta.md): one frame per group of a file's new chunks, with
// as dictionary the old file, or the part of it around the same place when the
// file is larger than the dictionary limit, comes within a few percent of
// `zstd --long=31 --patch-from` over whole trees, and beats it where files
// moved inside the tree.
package delta

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// ErrCorrupt means a delta did not decode to the bytes it announced: a wrong
// or missing dictionary, damaged bytes, or a bomb.
var ErrCorrupt = errors.New("delta does not decode")

// dictID names the raw dictionary inside a frame. It carries no meaning: the
// dictionary is named by the manifest, not by the frame.
const dictID = 1

// Level says how hard Encode works.
type Level int

const (
	// Best is the default: smallest deltas, slowest publish. Small deltas,
	// whose dictionary and output fit in smallDelta, are made at Better: on
	// a package of many small files, 0.2% more delta bytes for half the time.
	Best Level = iota
	// Fast uses zstd's default level, whose encoder loses a raw dictionary
	// past about 1 MiB: larger deltas, and on real packages a publish seldom
	// quicker than Better's (scripts/RESULTS-delta.md).
	Fast
	// Better takes about half Best's time on real packages, for a little
	// more bytes.
	Better
)

// ParseLevel reads "best", "better" or "fast".
func ParseLevel(s string) (Level, error) {
	switch s {
	case "best", "":
		return Best, nil
	case "fast":
		return Fast, nil
	case "better":
		return Better, nil
	}
	return 0, fmt.Errorf("delta level %q: want best, better or fast", s)
}

func (l Level) String() string {
	switch l {
	case Fast:
		return "fast"
	case Better:
		return "better"
	}
	return "best"
}

func (l Level) zstd() zstd.EncoderLevel {
	switch l {
	case Fast:
		return zstd.SpeedDefault
	case Better:
		return zstd.SpeedBetterCompression
	}
	return zstd.SpeedBestCompression
}

// Encoder makes deltas. It keeps one zstd encoder per level, whose tables
// are costly to allocate: a publisher making a thousand deltas would spend
// most of its time zeroing them. An Encoder is not safe for concurrent use.
type Encoder struct {
	enc  [3]*zstd.Encoder
	dict [3][]byte // a copy of the dictionary each encoder has indexed
	out  appender
}

// smallDelta is the most bytes of dictionary and output together that Best
// encodes at the Better level. Setting up the best level's tables for a new
// dictionary costs the same whatever its size: on postgresql-15's files
// whose two versions fit in 32 KiB, it made deltas 0.6–3.6% smaller than
// Better's for 8–19x the time (scripts/RESULTS-delta.md).
const smallDelta = 32 << 10

// zstdBlock is the size of the zstd encoder's blocks: a delta shorter than
// that is encoded in one go when the encoder is closed.
const zstdBlock = 128 << 10

// encoderWindow spans the largest dictionary and output a manifest allows,
// so one encoder serves every delta.
const encoderWindow = 64 << 20

// Encode compresses data with dict as raw dictionary and appends the frame
// to dst. dict may be empty.
//
// Indexing a dictionary is most of the work of a delta at the best level, so
// Encode streams into the encoder's own state, which indexes it once, rather
// than calling EncodeAll, whose block encoder indexes it a second time; and
// it keeps the index for the next delta with the same dictionary, such as
// another part of the same file.
func (e *Encoder) Encode(level Level, dict, data, dst []byte) ([]byte, error) {
	if len(dict)+len(data) > encoderWindow {
		return nil, fmt.Errorf("delta of %d bytes against %d: larger than the %d-byte window", len(data), len(dict), encoderWindow)
	}
	if level == Best && len(dict)+len(data) <= smallDelta {
		level = Better
	}
	same := len(dict) > 0 && e.enc[level] != nil && bytes.Equal(e.dict[level], dict)
	dictOpt := zstd.WithEncoderDictDelete()
	if len(dict) > 0 && !same {
		// The encoder keeps its own copy, so that what it indexed cannot
		// change under it when the caller reuses dict.
		e.dict[level] = append(e.dict[level][:0], dict...)
		dictOpt = zstd.WithEncoderDictRaw(dictID, e.dict[level])
	}
	if len(dict) == 0 {
		e.dict[level] = e.dict[level][:0]
	}
	e.out.b = dst
	defer func() { e.out.b = nil }()
	enc := e.enc[level]
	switch {
	case enc == nil:
		var err error
		enc, err = zstd.NewWriter(&e.out,
			zstd.WithEncoderLevel(level.zstd()),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(encoderWindow),
			dictOpt)
		if err != nil {
			return nil, fmt.Errorf("delta encoder: %w", err)
		}
		e.enc[level] = enc
	case same:
		// The same dictionary: the reset below sets the encoder's tables to
		// the index it made, without making it again.
	default:
		if err := enc.ResetWithOptions(&e.out, dictOpt); err != nil {
			return nil, fmt.Errorf("delta encoder: %w", err)
		}
	}
	// Every reset copies the encoder's tables, 34 MiB at the best level, and
	// a delta shorter than a block is encoded whole at Close, which resets
	// them once more and writes its own frame header. Such a delta needs no
	// reset here unless the one above was skipped. A longer one needs the
	// content size in its header, which also sets the frame's window to the
	// delta's size, as a whole block's header has it.
	if same || len(data) >= zstdBlock {
		enc.ResetContentSize(&e.out, int64(len(data)))
	}
	if _, err := enc.Write(data); err != nil {
		return nil, fmt.Errorf("delta encoder: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("delta encoder: %w", err)
	}
	return e.out.b, nil
}

// appender is an io.Writer that appends to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// Close releases the encoders.
func (e *Encoder) Close() {
	for _, enc := range e.enc {
		if enc != nil {
			enc.Close()
		}
	}
}

// Encode compresses data with dict as raw dictionary and appends the frame to
// dst, with an encoder of its own: for a delta or two; make many with an Encoder.
func Encode(level Level, dict, data, dst []byte) ([]byte, error) {
	var e Encoder
	defer e.Close()
	return e.Encode(level, dict, data, dst)
}

// Decoder decodes deltas. It keeps one zstd decoder, whose buffers are costly
// to make for every delta, and takes a new dictionary for each. A Decoder is
// not safe for concurrent use.
type Decoder struct {
	dec *zstd.Decoder
}

// decoderLimit is the largest window a Decoder accepts: an encoder's window,
// which spans any dictionary and output a manifest allows. What it decodes is
// bounded by the announced size, through the output buffer's capacity.
const decoderLimit = encoderWindow

// Decode decodes obj with dict as raw dictionary into exactly size bytes,
// appended to dst. Anything else, a frame that would grow past size included,
// is an error wrapping ErrCorrupt.
func (d *Decoder) Decode(obj, dict []byte, size int, dst []byte) ([]byte, error) {
	start := len(dst)
	out, err := d.DecodeUpTo(obj, dict, size, dst)
	if err == nil && len(out)-start != size {
		return nil, fmt.Errorf("decode delta: %d bytes, want %d: %w", len(out)-start, size, ErrCorrupt)
	}
	return out, err
}

// DecodeUpTo decodes obj with dict as raw dictionary into at most max bytes,
// appended to dst; a frame that would grow past max is an error wrapping
// ErrCorrupt.
func (d *Decoder) DecodeUpTo(obj, dict []byte, max int, dst []byte) ([]byte, error) {
	size := max
	if d.dec == nil {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(decoderLimit),
			zstd.WithDecoderMaxWindow(decoderLimit),
			// Never decode past the buffer's capacity, which is the announced
			// size: a frame that would grow beyond it stops there.
			zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			return nil, fmt.Errorf("delta decoder: %w", err)
		}
		d.dec = dec
	}
	// Forget the last delta's dictionary, then register this one's.
	if err := d.dec.ResetWithOptions(nil, zstd.WithDecoderDictDelete(dictID)); err != nil {
		return nil, fmt.Errorf("delta decoder: %w", err)
	}
	if len(dict) > 0 {
		if err := d.dec.ResetWithOptions(nil, zstd.WithDecoderDictRaw(dictID, dict)); err != nil {
			return nil, fmt.Errorf("delta decoder: %w", err)
		}
	}
	// Room for size bytes and one more, which tells a frame that has more
	// from one that ends there: the decoder stops at the capacity.
	start := len(dst)
	if cap(dst)-start < size+1 {
		dst = append(make([]byte, 0, start+size+1), dst...)
	}
	out, err := d.dec.DecodeAll(obj, dst[:start:start+size+1])
	if err != nil {
		return nil, fmt.Errorf("decode delta: %w: %w", ErrCorrupt, err)
	}
	if len(out)-start > size {
		return nil, fmt.Errorf("decode delta: more than %d bytes: %w", size, ErrCorrupt)
	}
	return out, nil
}

// Close releases the decoder.
func (d *Decoder) Close() {
	if d.dec != nil {
		d.dec.Close()
	}
}

// DecodeUpTo decodes obj with dict as raw dictionary into at most max bytes,
// appended to dst, with a decoder of its own.
func DecodeUpTo(obj, dict []byte, max int, dst []byte) ([]byte, error) {
	var d Decoder
	defer d.Close()
	return d.DecodeUpTo(obj, dict, max, dst)
}
