package manifest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
)

const (
	// MaxDeltaOutput bounds the bytes one delta rebuilds, so a node holds at
	// most that much output of one delta in memory.
	MaxDeltaOutput = 8 << 20
	// MaxDeltaBase bounds a delta's dictionary: the base bytes a node reads
	// into memory to decode it.
	MaxDeltaBase = 32 << 20
)

// Delta is an object that rebuilds some chunks of one file of the release from
// bytes a node may hold already: a zstd frame whose raw dictionary is the
// concatenation of its Bases, ranges of other files (or no dictionary at all).
// It is content-addressed like a chunk and stored beside the chunks; a node
// that can read the bases fetches the delta instead of the chunks it makes,
// and one that cannot fetches the chunks. Whatever a delta decodes to is
// verified against the chunk CIDs before it is stored, so a wrong base or a
// lying delta costs a fallback to chunks, never a bad byte.
type Delta struct {
	// Object names the delta's own bytes, as a chunk is named: at most MaxChunkSize.
	Object ChunkRef `json:"object"`
	Path   string   `json:"path"` // the regular file whose chunks it makes
	// Runs are the chunks it makes, as [first index, count] runs over the file's
	// chunk list, ascending and apart; the object decodes to their bytes in order.
	Runs []Run `json:"runs"`
	// Bases are the dictionary, in order: at most MaxDeltaBases ranges of at
	// most MaxDeltaBase bytes in all. A base is a file of an earlier release
	// (the old version of this file), or a file of this release listed before
	// Path (a sibling built from the same sources), which a node assembles first.
	Bases []BaseRange `json:"bases,omitempty"`
}

// MaxDeltaBases bounds the ranges of one delta's dictionary.
const MaxDeltaBases = 4

// Run is [first, count] over a file's chunk list; its JSON form is that pair.
type Run struct{ First, Count int }

// BaseRange names part of the dictionary of a delta: Size bytes at Offset of
// any file whose whole-file SHA-256 is SHA256. A node finds such a file among
// the releases it holds, or earlier in this release; its path does not matter.
type BaseRange struct {
	SHA256 string `json:"sha256"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

// MarshalJSON writes [first, count].
func (r Run) MarshalJSON() ([]byte, error) { return json.Marshal([2]int{r.First, r.Count}) }

// UnmarshalJSON reads [first, count].
func (r *Run) UnmarshalJSON(data []byte) error {
	var v []int
	if err := json.Unmarshal(data, &v); err != nil || len(v) != 2 {
		return fmt.Errorf("delta run: want [first, count], got %.40q: %w", data, ErrMalformed)
	}
	r.First, r.Count = v[0], v[1]
	return nil
}

// Output is the number of bytes d decodes to, given the file it makes.
func (d *Delta) Output(f *File) int64 {
	var n int64
	for _, r := range d.Runs {
		for _, c := range f.Chunks[r.First : r.First+r.Count] {
			n += int64(c.Size)
		}
	}
	return n
}

// validateDeltas checks the deltas against the files: each makes chunks of a
// regular file of the release, within bounds.
func (m *Manifest) validateDeltas(entries map[string]*File) error {
	seen := make(map[cid.Cid]bool, len(m.Deltas))
	for i := range m.Deltas {
		d := &m.Deltas[i]
		bad := func(format string, args ...any) error {
			return fmt.Errorf("manifest %s %s: delta %d (%s): %s: %w", m.Channel, m.Version, i, d.Path, fmt.Sprintf(format, args...), ErrMalformed)
		}
		if err := checkCID(d.Object.CID); err != nil {
			return bad("%v", err)
		}
		if seen[d.Object.CID] {
			return bad("listed twice")
		}
		seen[d.Object.CID] = true
		if d.Object.Size == 0 || d.Object.Size > MaxChunkSize {
			return bad("size %d is outside 1..%d", d.Object.Size, MaxChunkSize)
		}
		f := entries[d.Path]
		if f == nil || f.IsLink() {
			return bad("%q is not a regular file of the release", d.Path)
		}
		if len(d.Runs) == 0 {
			return bad("no runs")
		}
		next := 0
		for _, r := range d.Runs {
			if r.First < next || r.Count < 1 || r.Count > len(f.Chunks) || r.First > len(f.Chunks)-r.Count {
				return bad("run [%d, %d] is not ascending, apart and inside the file's %d chunks", r.First, r.Count, len(f.Chunks))
			}
			next = r.First + r.Count + 1
		}
		if out := d.Output(f); out > MaxDeltaOutput {
			return bad("makes %d bytes, more than %d", out, MaxDeltaOutput)
		}
		if len(d.Bases) > MaxDeltaBases {
			return bad("%d bases, more than %d", len(d.Bases), MaxDeltaBases)
		}
		var dict int64
		for _, b := range d.Bases {
			if len(b.SHA256) != 64 || strings.ToLower(b.SHA256) != b.SHA256 {
				return bad("base sha256 must be 64 lowercase hex digits")
			}
			if _, err := hex.DecodeString(b.SHA256); err != nil {
				return bad("base sha256 must be 64 lowercase hex digits")
			}
			if b.Offset < 0 || b.Size < 1 || b.Size > MaxDeltaBase {
				return bad("base range %d+%d is outside 0.., 1..%d", b.Offset, b.Size, MaxDeltaBase)
			}
			if b.SHA256 == f.SHA256 {
				return bad("a base is the file it makes")
			}
			dict += b.Size
		}
		if dict > MaxDeltaBase {
			return bad("bases of %d bytes in all, more than %d", dict, MaxDeltaBase)
		}
	}
	return nil
}

// AppendRange appends size bytes of f at off to dst, reading each chunk that
// overlaps them with get; a node and a publisher read delta bases so, from
// their stores.
func (f *File) AppendRange(dst []byte, off, size int64, get func(ChunkRef) ([]byte, error)) ([]byte, error) {
	start := len(dst)
	out := dst
	var at int64
	for _, c := range f.Chunks {
		end := at + int64(c.Size)
		if end > off && at < off+size {
			data, err := get(c)
			if err != nil {
				return nil, fmt.Errorf("read %s: chunk %s: %w", f.Path, c.CID, err)
			}
			if len(data) != int(c.Size) {
				return nil, fmt.Errorf("read %s: chunk %s has %d bytes, want %d: %w", f.Path, c.CID, len(data), c.Size, ErrMismatch)
			}
			out = append(out, data[max(off, at)-at:min(off+size, end)-at]...)
		}
		at = end
		if at >= off+size {
			break
		}
	}
	if int64(len(out)-start) != size {
		return nil, fmt.Errorf("read %s: %d bytes at %d, past its end (%d bytes): %w", f.Path, size, off, f.Size, ErrMalformed)
	}
	return out, nil
}
