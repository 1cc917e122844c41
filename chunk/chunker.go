package chunk

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
)

//go:generate go run gen_gear.go

// Params bound the size of the chunks a Chunker cuts. The zero value means
// DefaultParams. Changing them changes every chunk boundary, so a repository
// keeps one set of Params for good.
type Params struct {
	Min int // no chunk is shorter, except the last one of a stream
	Avg int // normal size: a power of two; the average comes out close to it
	Max int // no chunk is longer; at most MaxSize
}

// DefaultParams returns the Params patchmesh publishes with, chosen by the
// measurements in PARAMS.md.
func DefaultParams() Params {
	return Params{Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10}
}

// minWindow is the smallest Min allowed: below it the gear hash, whose window
// is 64 bytes, would cut on too little context.
const minWindow = 64

// normLevel is the normalization level: masks of log2(Avg)±normLevel bits.
const normLevel = 1

// Validate reports whether p can be used: 64 <= Min < Avg < Max <= MaxSize,
// Avg a power of two. The zero value is valid (it means DefaultParams).
func (p Params) Validate() error {
	if p == (Params{}) {
		return nil
	}
	switch {
	case p.Min < minWindow:
		return fmt.Errorf("chunk params %+v: Min below %d", p, minWindow)
	case p.Avg <= p.Min:
		return fmt.Errorf("chunk params %+v: Avg not above Min", p)
	case p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("chunk params %+v: Avg not a power of two", p)
	case p.Max <= p.Avg:
		return fmt.Errorf("chunk params %+v: Max not above Avg", p)
	case p.Max > MaxSize:
		return fmt.Errorf("chunk params %+v: Max above MaxSize %d", p, MaxSize)
	}
	return nil
}

// Chunker cuts a stream into content-defined chunks with FastCDC: a gear
// rolling hash, cut-point skipping below Min, and normalized chunking (a
// stricter mask before Avg, a looser one after), so that an insertion or
// deletion moves only the boundaries next to it.
type Chunker struct {
	r            io.Reader
	p            Params
	maskS, maskL uint64
	buf          []byte
	start, end   int   // buf[start:end] is read but not yet returned
	err          error // first error from r, io.EOF included
}

// NewChunker returns a Chunker reading r. It holds at most a few times p.Max
// bytes of r at once, whatever r's size.
func NewChunker(r io.Reader, p Params) (*Chunker, error) {
	return newChunker(r, p, normLevel)
}

func newChunker(r io.Reader, p Params, level int) (*Chunker, error) {
	if p == (Params{}) {
		p = DefaultParams()
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	// Normalization level 2: masks of log2(Avg)±2 bits, taken from the top of
	// the hash, whose bits depend on the last 64 bytes.
	b := bits.TrailingZeros(uint(p.Avg))
	return &Chunker{
		r:     r,
		p:     p,
		maskS: ^uint64(0) << (64 - (b + level)),
		maskL: ^uint64(0) << (64 - (b - level)),
		buf:   make([]byte, 4*p.Max),
	}, nil
}

// maxEmptyReads is how many (0, nil) reads in a row count as a stuck reader.
const maxEmptyReads = 100

// fill reads until at least Max bytes are buffered or r is done, so that
// boundaries never depend on how r splits its reads.
func (c *Chunker) fill() {
	if len(c.buf)-c.start < c.p.Max {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	empty := 0
	for c.end-c.start < c.p.Max && c.err == nil {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		switch {
		case err != nil:
			c.err = err
		case n == 0:
			if empty++; empty >= maxEmptyReads {
				c.err = io.ErrNoProgress
			}
		default:
			empty = 0
		}
	}
}

// Next returns the next chunk. The slice is valid until the next call. After
// the last chunk Next returns io.EOF; a read error of r is returned as is.
func (c *Chunker) Next() ([]byte, error) {
	if c.end-c.start < c.p.Max && c.err == nil {
		c.fill()
	}
	if c.err != nil && !errors.Is(c.err, io.EOF) {
		return nil, c.err
	}
	if c.start == c.end {
		return nil, io.EOF
	}
	data := c.buf[c.start:c.end]
	if len(data) > c.p.Max {
		data = data[:c.p.Max]
	}
	n := cut(data, c.p.Min, c.p.Avg, c.maskS, c.maskL)
	c.start += n
	return data[:n:n], nil
}

// cut returns the length of the chunk at the start of data (len(data) <= Max).
// It is the hot loop: ranging over subslices and indexing a [256] array by a
// byte lets the compiler drop every bounds check.
func cut(data []byte, min, avg int, maskS, maskL uint64) int {
	n := len(data)
	if n <= min {
		return n
	}
	if avg > n {
		avg = n
	}
	// Warm the hash on the 64 bytes before Min, so that whether a position
	// cuts depends on the bytes before it, not on where this chunk began:
	// after an edit the chunker falls back into step with the old boundaries.
	var fp uint64
	for _, b := range data[min-minWindow : min] {
		fp = fp<<1 + gear[b]
	}
	for i, b := range data[min:avg] {
		fp = fp<<1 + gear[b]
		if fp&maskS == 0 {
			return min + i + 1
		}
	}
	for i, b := range data[avg:] {
		fp = fp<<1 + gear[b]
		if fp&maskL == 0 {
			return avg + i + 1
		}
	}
	return n
}
