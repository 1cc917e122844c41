package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
)

// ReadFunc reads one repository file of at most max bytes. A missing file is an
// error wrapping fs.ErrNotExist.
type ReadFunc func(ctx context.Context, path string, max int64) ([]byte, error)

// DirReader reads from a repository folder.
func DirReader(dir string) ReadFunc {
	return func(_ context.Context, p string, max int64) ([]byte, error) {
		// Paths come from signed documents, but a reader never leaves its folder.
		if err := manifest.SafePath(p); err != nil {
			return nil, fmt.Errorf("read %q: %w", p, err)
		}
		return readLimited(filepath.Join(dir, filepath.FromSlash(p)), max)
	}
}

// UpdateRoot walks key rotations from a pinned trust root: roots/<v+1>.json,
// roots/<v+2>.json, ... each accepted only when signed by a threshold of the keys
// before it and of its own. It returns the newest root reached and its envelope
// (nil when none was newer).
func UpdateRoot(ctx context.Context, read ReadFunc, pinned *manifest.TrustRoot) (*manifest.TrustRoot, []byte, error) {
	chain, env, err := rootChain(ctx, read, pinned)
	return chain[len(chain)-1], env, err
}

// rootChain returns every root from pinned to the newest rotation reached, in
// order, and the newest one's envelope (nil when none was newer than pinned).
func rootChain(ctx context.Context, read ReadFunc, pinned *manifest.TrustRoot) ([]*manifest.TrustRoot, []byte, error) {
	chain := []*manifest.TrustRoot{pinned}
	var env []byte
	for range 1000 {
		cur := chain[len(chain)-1]
		data, err := read(ctx, RootPath(cur.Version+1), manifest.MaxRootSize)
		if errors.Is(err, fs.ErrNotExist) {
			return chain, env, nil
		}
		if err != nil {
			return chain, env, fmt.Errorf("read trust root %d: %w", cur.Version+1, err)
		}
		next, err := cur.VerifyNext(data)
		if err != nil {
			return chain, env, fmt.Errorf("trust root %d: %w", cur.Version+1, err)
		}
		chain, env = append(chain, next), data
	}
	return chain, env, fmt.Errorf("trust root: more than 1000 rotations")
}

// Problem is one thing verify found wrong.
type Problem struct {
	Object string `json:"object"`
	Error  string `json:"error"`
}

// ChannelReport is what verify found for one channel.
type ChannelReport struct {
	Channel   string `json:"channel"`
	Version   string `json:"version,omitempty"`
	Sequence  uint64 `json:"sequence,omitempty"`
	Files     int    `json:"files"`
	Bytes     int64  `json:"bytes"`
	Chunks    int    `json:"chunks"`
	Manifests int    `json:"manifests"` // kept manifests checked, the head's included
	OK        bool   `json:"ok"`
}

// Report of a repository verification.
type Report struct {
	RootVersion uint64          `json:"root_version"`
	Channels    []ChannelReport `json:"channels"`
	Manifests   int             `json:"manifests_checked"`
	Chunks      int             `json:"chunks_checked"`
	ChunkBytes  int64           `json:"chunk_bytes_checked"`
	Problems    []Problem       `json:"problems"`
	// Orphans are the chunk files that no kept or pending manifest names: left
	// by a publish that stopped, or by manifests removed by hand. They cost
	// space, not safety; listed only when every channel was checked and every
	// kept manifest verified.
	Orphans []string `json:"orphans"`
}

// VerifyOptions tune Verify; the zero value checks every channel now.
type VerifyOptions struct {
	Channels []string                // zero: every channel of the repository
	Now      time.Time               // zero: time.Now()
	Workers  int                     // zero: 4
	Progress func(done, total int64) // chunk bytes checked
}

// Verify checks a repository folder against a trust root: the root chain and
// the repository's own root.json against it, every channel head, every kept
// manifest (the heads' and the older ones), and every chunk and delta object
// they name; it lists chunk files no manifest names. Problems are collected in
// the report; the error is for failures to run at all.
func Verify(ctx context.Context, repoDir string, pinned *manifest.TrustRoot, opts VerifyOptions) (*Report, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	rep := &Report{Problems: []Problem{}, Orphans: []string{}}
	read := DirReader(repoDir)
	chain, _, err := rootChain(ctx, read, pinned)
	if err != nil {
		rep.Problems = append(rep.Problems, Problem{Object: "trust root", Error: err.Error()})
	}
	root := chain[len(chain)-1]
	rep.RootVersion = root.Version
	if p := checkRootFile(ctx, read, chain); p != nil {
		rep.Problems = append(rep.Problems, *p)
	}
	channels := opts.Channels
	all := len(channels) == 0
	if all {
		seen := map[string]bool{}
		for _, dir := range []string{"channels", "manifests"} {
			ents, err := os.ReadDir(filepath.Join(repoDir, dir))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("verify: %w", err)
			}
			for _, e := range ents {
				if e.IsDir() && ValidChannel(e.Name()) == nil && !seen[e.Name()] {
					seen[e.Name()] = true
					channels = append(channels, e.Name())
				}
			}
		}
		sort.Strings(channels)
		if len(channels) == 0 {
			rep.Problems = append(rep.Problems, Problem{Object: "channels", Error: "the repository has no channel"})
		}
	}
	chunks := newChunkSet()
	// A manifest that does not verify names chunks nobody can know: their
	// files would look orphaned, so none are listed then.
	unreadable := false
	var reports []*ChannelReport
	for _, ch := range channels {
		cr := &ChannelReport{Channel: ch, OK: true}
		reports = append(reports, cr)
		headManifest := ""
		h, _, m, _, err := LoadRelease(ctx, read, root, ch, opts.Now)
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{Object: "channel " + ch, Error: err.Error()})
			cr.OK = false
			if hu, err := ReadHeadUnverified(repoDir, ch); err == nil {
				headManifest = hu.Manifest.Path
			}
		} else {
			headManifest = h.Manifest.Path
			cr.Version, cr.Sequence, cr.Files = m.Version, m.Sequence, len(m.Files)
			cr.Bytes = m.TotalSize()
			cr.Chunks = chunks.add(m)
			cr.Manifests++
		}
		kept, err := keptManifests(repoDir, ch)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		for _, seq := range kept {
			mpath := ManifestPath(ch, seq)
			if m != nil && mpath == headManifest {
				continue // verified above, with its head
			}
			km, err := verifyKept(ctx, read, chain, ch, seq)
			if err != nil {
				unreadable = true
				if mpath != headManifest { // else the head's problem names it already
					rep.Problems = append(rep.Problems, Problem{Object: "manifest " + mpath, Error: err.Error()})
					cr.OK = false
				}
				continue
			}
			chunks.add(km)
			cr.Manifests++
		}
		rep.Manifests += cr.Manifests
		if p, err := readPending(repoDir, ch); err == nil && p != nil {
			// Not signed to a threshold yet, so not verified; its chunks are
			// in place for the co-signers and are no orphans.
			if pm, err := decodeUnverified(p.Manifest); err == nil {
				chunks.add(pm)
			}
		}
	}
	n, nb, probs, err := verifyChunks(ctx, repoDir, chunks, opts)
	if err != nil {
		return nil, err
	}
	rep.Chunks, rep.ChunkBytes = n, nb
	for _, p := range probs {
		rep.Problems = append(rep.Problems, p.Problem)
		for _, cr := range reports {
			if p.channels[cr.Channel] {
				cr.OK = false
			}
		}
	}
	for _, cr := range reports {
		rep.Channels = append(rep.Channels, *cr)
	}
	if all && !unreadable {
		if rep.Orphans, err = orphans(repoDir, chunks); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	return rep, nil
}

// checkRootFile compares the repository's root.json with the chain from the
// pinned root: a repository whose root.json is another root (other keys, or
// a version no signed rotation reaches) is not the one the nodes trust.
func checkRootFile(ctx context.Context, read ReadFunc, chain []*manifest.TrustRoot) *Problem {
	data, err := read(ctx, RootFile, manifest.MaxRootSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	problem := func(format string, args ...any) *Problem {
		return &Problem{Object: RootFile, Error: fmt.Sprintf(format, args...)}
	}
	if err != nil {
		return problem("%v", err)
	}
	r, err := manifest.ParseTrustRoot(data)
	if err != nil {
		return problem("%v", err)
	}
	first, newest := chain[0], chain[len(chain)-1]
	switch {
	case r.Version > newest.Version:
		return problem("the repository's trust root is version %d (keys %s, threshold %d), but the pinned root reaches only version %d by signed rotations: it is a different root, and nodes pinned to this one refuse what its keys sign",
			r.Version, idList(r), r.Threshold, newest.Version)
	case r.Version < first.Version:
		return problem("the repository's trust root is version %d, older than the pinned version %d: write the newest root there (patchmesh trust rotate --repo)", r.Version, first.Version)
	}
	want := chain[r.Version-first.Version]
	if !sameRoot(r, want) {
		return problem("the repository's trust root version %d (keys %s, threshold %d) is not the pinned root's version %d (keys %s, threshold %d): it is a different root, and nodes pinned to this one refuse what its keys sign",
			r.Version, idList(r), r.Threshold, want.Version, idList(want), want.Threshold)
	}
	if r.Version < newest.Version {
		return problem("the repository's trust root is version %d, but roots/ holds version %d: write the newest root to %s", r.Version, newest.Version, RootFile)
	}
	return nil
}

func sameRoot(a, b *manifest.TrustRoot) bool {
	return a.Version == b.Version && a.Threshold == b.Threshold && a.Expires.Equal(b.Expires) && slices.Equal(a.KeyIDs(), b.KeyIDs())
}

func idList(r *manifest.TrustRoot) string {
	ids := r.KeyIDs()
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ", ")
}

// keptManifests lists the sequences of a channel's manifest files, ascending.
func keptManifests(repoDir, channel string) ([]uint64, error) {
	ents, err := os.ReadDir(filepath.Join(repoDir, "manifests", channel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		if ch, seq, ok := ParseManifestPath("manifests/" + channel + "/" + e.Name()); ok && ch == channel {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// verifyKept verifies a kept manifest against every root of the chain, newest
// first: an old release was signed by the keys of its day.
func verifyKept(ctx context.Context, read ReadFunc, chain []*manifest.TrustRoot, channel string, seq uint64) (*manifest.Manifest, error) {
	env, err := read(ctx, ManifestPath(channel, seq), manifest.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	var first error
	for i := len(chain) - 1; i >= 0; i-- {
		m, err := chain[i].VerifyManifestKept(env)
		if err == nil {
			if m.Channel != channel || m.Sequence != seq {
				return nil, fmt.Errorf("holds %s sequence %d: %w", m.Channel, m.Sequence, manifest.ErrMismatch)
			}
			return m, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// decodeUnverified reads a manifest envelope's payload without checking it.
func decodeUnverified(envelope []byte) (*manifest.Manifest, error) {
	env, err := manifest.DecodeEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	var m manifest.Manifest
	if err := json.Unmarshal(env.Payload, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// chunkSet is the union of the chunks and delta objects of manifests, each
// with its size and the releases that name it.
type chunkSet struct {
	size  map[cid.Cid]uint32
	users map[cid.Cid][]string // "channel version"
	order []cid.Cid
	total int64
}

func newChunkSet() *chunkSet {
	return &chunkSet{size: map[cid.Cid]uint32{}, users: map[cid.Cid][]string{}}
}

// add adds m's chunks and delta objects and returns how many distinct ones m names.
func (s *chunkSet) add(m *manifest.Manifest) int {
	user := m.Channel + " " + m.Version
	mine := map[cid.Cid]bool{}
	add := func(c manifest.ChunkRef) {
		if mine[c.CID] {
			return
		}
		mine[c.CID] = true
		if _, ok := s.size[c.CID]; !ok {
			s.size[c.CID] = c.Size
			s.order = append(s.order, c.CID)
			s.total += int64(c.Size)
		}
		s.users[c.CID] = append(s.users[c.CID], user)
	}
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			add(c)
		}
	}
	// Delta objects are stored as chunks of their own bytes; a missing or
	// damaged one costs nodes a fallback to chunks, and is reported the same.
	for _, d := range m.Deltas {
		add(d.Object)
	}
	return len(mine)
}

// chunkProblem is a problem with a chunk, and the channels whose releases name it.
type chunkProblem struct {
	Problem
	channels map[string]bool
}

// LoadRelease reads and verifies a channel's head and the manifest it names.
func LoadRelease(ctx context.Context, read ReadFunc, root *manifest.TrustRoot, channel string, now time.Time) (*manifest.Head, []byte, *manifest.Manifest, []byte, error) {
	henv, err := read(ctx, HeadPath(channel), manifest.MaxHeadSize)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read head of channel %s: %w", channel, err)
	}
	h, err := root.VerifyHead(henv, now)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("head of channel %s: %w", channel, err)
	}
	if h.Channel != channel {
		return nil, nil, nil, nil, fmt.Errorf("head of channel %s names channel %q: %w", channel, h.Channel, manifest.ErrMalformed)
	}
	if h.Manifest.Size > manifest.MaxManifestSize {
		return nil, nil, nil, nil, fmt.Errorf("manifest %s: %d bytes: %w", h.Manifest.Path, h.Manifest.Size, manifest.ErrTooLarge)
	}
	menv, err := read(ctx, h.Manifest.Path, h.Manifest.Size)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read manifest %s: %w", h.Manifest.Path, err)
	}
	if err := h.Manifest.Check(menv); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("head of channel %s: %w", channel, err)
	}
	m, err := root.VerifyManifest(menv, now)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("manifest %s: %w", h.Manifest.Path, err)
	}
	if err := manifest.CheckHead(h, m); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("manifest %s: %w", h.Manifest.Path, err)
	}
	return h, henv, m, menv, nil
}

func verifyChunks(ctx context.Context, repoDir string, set *chunkSet, opts VerifyOptions) (int, int64, []chunkProblem, error) {
	var (
		mu    sync.Mutex
		probs []chunkProblem
		done  atomic.Int64
	)
	// The group's context ends when Wait returns; the caller's ctx tells whether
	// the check was cut short.
	codec, err := chunk.NewCodec(chunk.CompressOff) // decodes only
	if err != nil {
		return 0, 0, nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Workers)
	for _, c := range set.order {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			size := set.size[c]
			// A chunk file is raw or compressed: Decode tells them apart,
			// refuses a frame decoding past the declared size, and verifies.
			data, err := readLimited(filepath.Join(repoDir, filepath.FromSlash(ChunkPath(c))), chunk.MaxSize)
			if err == nil {
				data, err = codec.Decode(c, data, int(size))
			}
			if err == nil && len(data) != int(size) {
				err = fmt.Errorf("chunk is %d bytes, manifest says %d", len(data), size)
			}
			if err != nil {
				users := set.users[c]
				p := chunkProblem{Problem: Problem{Object: "chunk " + c.String() + " of " + strings.Join(users, ", "), Error: err.Error()}, channels: map[string]bool{}}
				for _, u := range users {
					ch, _, _ := strings.Cut(u, " ")
					p.channels[ch] = true
				}
				mu.Lock()
				probs = append(probs, p)
				mu.Unlock()
			}
			d := done.Add(int64(size))
			if opts.Progress != nil {
				mu.Lock()
				opts.Progress(d, set.total)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, nil, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, nil, err
	}
	sort.Slice(probs, func(i, j int) bool { return probs[i].Object < probs[j].Object })
	return len(set.order), set.total, probs, nil
}

// orphans lists the files under chunks/ that name no chunk of set, sorted.
func orphans(repoDir string, set *chunkSet) ([]string, error) {
	out := []string{}
	err := filepath.WalkDir(filepath.Join(repoDir, chunksDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(repoDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if c, err := cid.Decode(d.Name()); err == nil && ChunkPath(c) == rel {
			if _, ok := set.size[c]; ok {
				return nil
			}
		}
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return out, err
}
