package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/delta"
	"github.com/patchmesh/patchmesh/manifest"
)

// DeltaOptions say whether and how publish makes deltas against earlier releases.
type DeltaOptions struct {
	Off   bool        // zero: deltas on
	Level delta.Level // zero: delta.Best
	// Bases is how many earlier releases of the channel get deltas, newest
	// first; a node that holds any of them fetches deltas. Zero: 1.
	Bases int
	// Group is the most bytes one delta rebuilds; zero: 4 MiB. Larger groups
	// give the encoder more context, smaller ones more parallelism to nodes.
	Group int
	// Window is the most bytes of each base file one delta uses as its
	// dictionary, at most manifest.MaxDeltaBase/2; zero: the level's
	// (DefaultWindow).
	Window int
}

// DefaultWindow is the dictionary window of each delta level. The best
// level's match finder spans 8 MiB well: on real packages 16 MiB made deltas
// within 5% of 8 MiB's, for twice the memory and dictionary reading on every
// node. The faster levels hash into smaller tables, which a large dictionary
// overfills, so that the part of the old file around the same place is
// poorly indexed: on the same packages their deltas against 8 MiB were
// 1.4x-3.5x (fast, against 1 MiB) and 1.04x-1.8x (better, against 2 MiB) as
// large, and slower to make (scripts/RESULTS-delta.md).
func DefaultWindow(l delta.Level) int {
	switch l {
	case delta.Fast:
		return 1 << 20
	case delta.Better:
		return 2 << 20
	}
	return 8 << 20
}

func (o DeltaOptions) withDefaults() DeltaOptions {
	if o.Bases <= 0 {
		o.Bases = 1
	}
	if o.Group <= 0 {
		o.Group = 4 << 20
	}
	o.Group = min(o.Group, manifest.MaxDeltaOutput)
	if o.Window <= 0 {
		o.Window = DefaultWindow(o.Level)
	}
	o.Window = min(o.Window, manifest.MaxDeltaBase/2) // two bases at most
	return o
}

// payBack is the most a delta may weigh, as a share of the bytes it rebuilds,
// for it to be worth a manifest entry and a request: past it, the chunks do as well.
const payBack = 0.9

// baseRelease is an earlier release deltas are made against.
type baseRelease struct {
	m      *manifest.Manifest
	chunks map[cid.Cid]bool
	byPath map[string]*manifest.File
	byNorm map[string][]*manifest.File // by normPath: versioned names of the same file
}

func newBaseRelease(m *manifest.Manifest) *baseRelease {
	b := &baseRelease{m: m, chunks: make(map[cid.Cid]bool), byPath: make(map[string]*manifest.File), byNorm: make(map[string][]*manifest.File)}
	for i := range m.Files {
		f := &m.Files[i]
		if f.IsLink() || f.Size == 0 {
			continue
		}
		for _, c := range f.Chunks {
			b.chunks[c.CID] = true
		}
		b.byPath[f.Path] = f
		b.byNorm[normPath(f.Path)] = append(b.byNorm[normPath(f.Path)], f)
	}
	return b
}

// normPath folds the runs of digits of p, so that libssl.so.3.0.20 and
// libssl.so.3.0.22, or a folder named for its version, match.
func normPath(p string) string {
	var b strings.Builder
	digits := false
	for _, r := range p {
		if '0' <= r && r <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	return b.String()
}

// baseFor picks the file of b most like f: the same path, or else the same path
// but for version numbers and the closest in size, or else the same name so
// folded anywhere in the tree and the closest in size. nil: none.
func (b *baseRelease) baseFor(f *manifest.File) *manifest.File {
	if bf := b.byPath[f.Path]; bf != nil {
		return bf
	}
	closest := func(cands []*manifest.File) *manifest.File {
		var best *manifest.File
		for _, c := range cands {
			if best == nil || absDiff(c.Size, f.Size) < absDiff(best.Size, f.Size) {
				best = c
			}
		}
		return best
	}
	if bf := closest(b.byNorm[normPath(f.Path)]); bf != nil {
		return bf
	}
	name := normPath(path.Base(f.Path))
	var cands []*manifest.File
	for p, fs := range b.byNorm {
		if path.Base(p) == name {
			cands = append(cands, fs...)
		}
	}
	return closest(cands)
}

func absDiff(a, b int64) int64 {
	if a < b {
		return b - a
	}
	return a - b
}

// readBases reads the manifests of up to n earlier releases of the channel,
// newest first, starting at the head's. The publisher holds the repository, so
// they are not verified, only decoded and validated; one that cannot be read
// is skipped: deltas are an optimisation.
func readBases(repoDir string, head *manifest.Head, n int) []*baseRelease {
	var out []*baseRelease
	for seq := head.Sequence; seq > 0 && len(out) < n; seq-- {
		m, err := readManifestUnverified(filepath.Join(repoDir, filepath.FromSlash(ManifestPath(head.Channel, seq))))
		if err != nil {
			continue
		}
		out = append(out, newBaseRelease(m))
	}
	return out
}

func readManifestUnverified(name string) (*manifest.Manifest, error) {
	data, err := readLimited(name, manifest.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	env, err := manifest.DecodeEnvelope(data)
	if err != nil {
		return nil, err
	}
	var m manifest.Manifest
	if err := json.Unmarshal(env.Payload, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", name, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// deltaGroup is one delta to make: runs of chunks of one file.
type deltaGroup struct {
	file *manifest.File
	src  string // the file in the source tree
	// bases are the files whose ranges make the dictionary: the old version
	// of the file, and a sibling of this release listed before it.
	bases []*manifest.File
	runs  []manifest.Run
	// offsets of the runs' bytes in the file, and their length in total
	start []int64
	size  int64
}

// planDeltas lists, for every base release, the groups of chunks a node
// holding that release lacks, file by file, each chunk once per base.
func planDeltas(bases []*baseRelease, files []manifest.File, srcOf func(string) string, group, window int) []deltaGroup {
	var out []deltaGroup
	for _, b := range bases {
		made := make(map[cid.Cid]bool)
		for i := range files {
			f := &files[i]
			if f.IsLink() || len(f.Chunks) == 0 {
				continue
			}
			var bases []*manifest.File
			if bf := b.baseFor(f); bf != nil {
				bases = append(bases, bf)
			}
			if sf := siblingFor(files[:i], f); sf != nil && (len(bases) == 0 || bases[0].SHA256 != sf.SHA256) {
				bases = append(bases, sf)
			}
			var g *deltaGroup
			var off int64
			for k, c := range f.Chunks {
				at := off
				off += int64(c.Size)
				if b.chunks[c.CID] || made[c.CID] {
					continue
				}
				made[c.CID] = true
				// A group also ends where its bytes would spread over more than
				// half a window: its dictionary, a window around their middle,
				// must still hold the old bytes of all of them (scattered edits).
				if g == nil || g.size+int64(c.Size) > int64(group) || off-g.start[0] > int64(window/2) {
					out = append(out, deltaGroup{file: f, src: srcOf(f.Path), bases: bases})
					g = &out[len(out)-1]
				}
				if n := len(g.runs); n > 0 && g.runs[n-1].First+g.runs[n-1].Count == k {
					g.runs[n-1].Count++
				} else {
					g.runs = append(g.runs, manifest.Run{First: k, Count: 1})
					g.start = append(g.start, at)
				}
				g.size += int64(c.Size)
			}
		}
	}
	return out
}

// minSibling is the smallest file given a sibling base: below it the
// dictionary costs more publish time than it saves.
const minSibling = 256 << 10

// siblingFor picks, among the regular files listed before f in the release,
// the one closest to f in size and within a factor two of it: programs built
// from the same sources (one static library linked into several binaries)
// share most of their bytes, which no old version of f holds when the build
// changed throughout. A node assembles the earlier files first. nil: none.
func siblingFor(earlier []manifest.File, f *manifest.File) *manifest.File {
	if f.Size < minSibling {
		return nil
	}
	var best *manifest.File
	for i := range earlier {
		e := &earlier[i]
		if len(e.Chunks) == 0 || e.SHA256 == f.SHA256 || e.Size < f.Size/2 || e.Size > f.Size*2 {
			continue
		}
		if best == nil || absDiff(e.Size, f.Size) < absDiff(best.Size, f.Size) {
			best = e
		}
	}
	return best
}

// dictRange picks the bytes of base file b used as dictionary for g: the
// whole base when it fits the window, else a window around where g's bytes
// sit in the new file, mapped into the base by the nearest chunk both share,
// or by proportion when they share none.
func dictRange(g *deltaGroup, b *manifest.File, window int64) (off, size int64) {
	if b.Size <= window {
		return 0, b.Size
	}
	baseAt := make(map[cid.Cid]int64, len(b.Chunks))
	var o int64
	for _, c := range b.Chunks {
		if _, ok := baseAt[c.CID]; !ok {
			baseAt[c.CID] = o
		}
		o += int64(c.Size)
	}
	mid := (g.start[0] + g.end()) / 2
	center := mid * b.Size / max(1, g.file.Size)
	// The nearest shared chunk before the group's middle anchors it.
	var at int64
	best := int64(-1)
	for _, c := range g.file.Chunks {
		if at > mid {
			break
		}
		if bo, ok := baseAt[c.CID]; ok {
			best = bo + (mid - at)
		}
		at += int64(c.Size)
	}
	if best >= 0 {
		center = best
	}
	off = max(0, min(center-window/2, b.Size-window))
	return off, window
}

// makeDeltas encodes the groups, Workers at a time, writes each object that
// pays into the repository beside the chunks, and returns their manifest
// entries in the order of the groups.
func makeDeltas(ctx context.Context, repoDir string, w *chunkWriter, groups []deltaGroup, opts PublishOptions, sum *Summary) ([]manifest.Delta, error) {
	do := opts.Deltas.withDefaults()
	results := make([][]manifest.Delta, len(groups))
	// One encoder per worker: their tables are costly to make.
	encs := make(chan *delta.Encoder, opts.Workers)
	for range opts.Workers {
		encs <- new(delta.Encoder)
	}
	defer func() {
		close(encs)
		for e := range encs {
			e.Close()
		}
	}()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Workers)
	for i := range groups {
		g.Go(func() error {
			enc := <-encs
			defer func() { encs <- enc }()
			ds, err := makeDelta(ctx, repoDir, w, enc, &groups[i], do)
			if err != nil {
				return fmt.Errorf("delta for %s: %w", groups[i].file.Path, err)
			}
			results[i] = ds
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []manifest.Delta
	for i, ds := range results {
		for _, d := range ds {
			out = append(out, d)
			sum.Deltas++
			sum.DeltaBytes += int64(d.Object.Size)
			sum.DeltaOutput += d.Output(groups[i].file)
		}
	}
	return out, nil
}

// makeDelta encodes one group, halving it while its object would be larger
// than a chunk may be.
func makeDelta(ctx context.Context, repoDir string, w *chunkWriter, enc *delta.Encoder, g *deltaGroup, do DeltaOptions) ([]manifest.Delta, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := readRuns(g)
	if err != nil {
		return nil, err
	}
	var dict []byte
	var bases []manifest.BaseRange
	for _, b := range g.bases {
		off, size := dictRange(g, b, int64(do.Window))
		part, err := readRange(repoDir, w.codec, b, off, size)
		if err != nil {
			// The repository lost a base chunk: no delta, the chunks will do.
			return nil, nil
		}
		dict = append(dict, part...)
		bases = append(bases, manifest.BaseRange{SHA256: b.SHA256, Offset: off, Size: size})
	}
	obj, err := enc.Encode(do.Level, dict, data, nil)
	if err != nil {
		return nil, err
	}
	if len(obj) > manifest.MaxChunkSize {
		a, b, ok := g.halve()
		if !ok {
			return nil, nil
		}
		da, err := makeDelta(ctx, repoDir, w, enc, &a, do)
		if err != nil {
			return nil, err
		}
		db, err := makeDelta(ctx, repoDir, w, enc, &b, do)
		return append(da, db...), err
	}
	if float64(len(obj)) > payBack*float64(len(data)) {
		return nil, nil
	}
	c := chunk.Sum(obj)
	var scratch Summary
	if err := w.write(c, obj, &scratch); err != nil {
		return nil, err
	}
	return []manifest.Delta{{Object: manifest.ChunkRef{CID: c, Size: uint32(len(obj))}, Path: g.file.Path, Runs: g.runs, Bases: bases}}, nil
}

// end is the offset just past g's last run in its file.
func (g *deltaGroup) end() int64 {
	last := g.runs[len(g.runs)-1]
	end := g.start[len(g.start)-1]
	for _, c := range g.file.Chunks[last.First : last.First+last.Count] {
		end += int64(c.Size)
	}
	return end
}

// halve splits g into two groups of about half its bytes, on a chunk boundary.
func (g *deltaGroup) halve() (a, b deltaGroup, ok bool) {
	var chunks []int // chunk index, in order
	for _, r := range g.runs {
		for k := r.First; k < r.First+r.Count; k++ {
			chunks = append(chunks, k)
		}
	}
	if len(chunks) < 2 {
		return a, b, false
	}
	offs := chunkOffsets(g.file)
	a = deltaGroup{file: g.file, src: g.src, bases: g.bases}
	b = a
	for i, k := range chunks {
		h := &a
		if i >= len(chunks)/2 {
			h = &b
		}
		if n := len(h.runs); n > 0 && h.runs[n-1].First+h.runs[n-1].Count == k {
			h.runs[n-1].Count++
		} else {
			h.runs = append(h.runs, manifest.Run{First: k, Count: 1})
			h.start = append(h.start, offs[k])
		}
		h.size += int64(g.file.Chunks[k].Size)
	}
	return a, b, true
}

func chunkOffsets(f *manifest.File) []int64 {
	offs := make([]int64, len(f.Chunks))
	var o int64
	for i, c := range f.Chunks {
		offs[i] = o
		o += int64(c.Size)
	}
	return offs
}

// readRuns reads the bytes of g's runs from the source tree, checking each
// chunk against its CID: the tree may have changed since it was chunked.
func readRuns(g *deltaGroup) ([]byte, error) {
	f, err := os.Open(g.src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, 0, g.size)
	for i, r := range g.runs {
		off := g.start[i]
		for _, c := range g.file.Chunks[r.First : r.First+r.Count] {
			b := data[len(data) : len(data)+int(c.Size)]
			if _, err := f.ReadAt(b, off); err != nil {
				return nil, fmt.Errorf("read %s: %w", g.file.Path, err)
			}
			if chunk.Sum(b) != c.CID {
				return nil, fmt.Errorf("file %s changed while it was published", g.file.Path)
			}
			data = data[:len(data)+int(c.Size)]
			off += int64(c.Size)
		}
	}
	return data, nil
}

// readRange reads size bytes at off of a file of an earlier release from the
// repository's chunks.
func readRange(repoDir string, codec *chunk.Codec, f *manifest.File, off, size int64) ([]byte, error) {
	return f.AppendRange(make([]byte, 0, size), off, size, func(c manifest.ChunkRef) ([]byte, error) { return readChunkFile(repoDir, codec, c) })
}

// readChunkFile reads one chunk of the repository, compressed or not, and verifies it.
func readChunkFile(repoDir string, codec *chunk.Codec, c manifest.ChunkRef) ([]byte, error) {
	data, err := readLimited(filepath.Join(repoDir, filepath.FromSlash(ChunkPath(c.CID))), chunk.MaxSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("chunk %s is missing: %w", c.CID, err)
		}
		return nil, err
	}
	return codec.Decode(c.CID, data, int(c.Size))
}
