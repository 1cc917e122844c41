package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
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
	cur := pinned
	var env []byte
	for range 1000 {
		data, err := read(ctx, RootPath(cur.Version+1), manifest.MaxRootSize)
		if errors.Is(err, fs.ErrNotExist) {
			return cur, env, nil
		}
		if err != nil {
			return cur, env, fmt.Errorf("read trust root %d: %w", cur.Version+1, err)
		}
		next, err := cur.VerifyNext(data)
		if err != nil {
			return cur, env, fmt.Errorf("trust root %d: %w", cur.Version+1, err)
		}
		cur, env = next, data
	}
	return cur, env, fmt.Errorf("trust root: more than 1000 rotations")
}

// Problem is one thing verify found wrong.
type Problem struct {
	Object string `json:"object"`
	Error  string `json:"error"`
}

// ChannelReport is what verify found for one channel.
type ChannelReport struct {
	Channel  string `json:"channel"`
	Version  string `json:"version,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	Chunks   int    `json:"chunks"`
	OK       bool   `json:"ok"`
}

// Report of a repository verification.
type Report struct {
	RootVersion uint64          `json:"root_version"`
	Channels    []ChannelReport `json:"channels"`
	Chunks      int             `json:"chunks_checked"`
	ChunkBytes  int64           `json:"chunk_bytes_checked"`
	Problems    []Problem       `json:"problems"`
}

// VerifyOptions tune Verify; the zero value checks every channel now.
type VerifyOptions struct {
	Channels []string                // zero: every channel of the repository
	Now      time.Time               // zero: time.Now()
	Workers  int                     // zero: 4
	Progress func(done, total int64) // chunk bytes checked
}

// Verify checks a repository folder against a trust root: the root chain, every
// channel head and manifest, and every chunk the manifests name. Problems are
// collected in the report; the error is for failures to run at all.
func Verify(ctx context.Context, repoDir string, pinned *manifest.TrustRoot, opts VerifyOptions) (*Report, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	rep := &Report{Problems: []Problem{}}
	read := DirReader(repoDir)
	root, _, err := UpdateRoot(ctx, read, pinned)
	if err != nil {
		rep.Problems = append(rep.Problems, Problem{Object: "trust root", Error: err.Error()})
	}
	rep.RootVersion = root.Version
	channels := opts.Channels
	if len(channels) == 0 {
		ents, err := os.ReadDir(filepath.Join(repoDir, "channels"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("verify: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() && ValidChannel(e.Name()) == nil {
				channels = append(channels, e.Name())
			}
		}
		sort.Strings(channels)
		if len(channels) == 0 {
			rep.Problems = append(rep.Problems, Problem{Object: "channels", Error: "the repository has no channel"})
		}
	}
	for _, ch := range channels {
		cr := ChannelReport{Channel: ch}
		m, problem := loadRelease(ctx, read, root, ch, opts.Now)
		if problem != nil {
			rep.Problems = append(rep.Problems, *problem)
			rep.Channels = append(rep.Channels, cr)
			continue
		}
		cr.Version, cr.Sequence, cr.Files = m.Version, m.Sequence, len(m.Files)
		cr.Bytes = m.TotalSize()
		before := len(rep.Problems)
		n, nb, probs, err := verifyChunks(ctx, repoDir, m, opts)
		if err != nil {
			return nil, err
		}
		cr.Chunks = n
		rep.Chunks += n
		rep.ChunkBytes += nb
		rep.Problems = append(rep.Problems, probs...)
		cr.OK = len(rep.Problems) == before
		rep.Channels = append(rep.Channels, cr)
	}
	return rep, nil
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

func loadRelease(ctx context.Context, read ReadFunc, root *manifest.TrustRoot, channel string, now time.Time) (*manifest.Manifest, *Problem) {
	_, _, m, _, err := LoadRelease(ctx, read, root, channel, now)
	if err != nil {
		return nil, &Problem{Object: "channel " + channel, Error: err.Error()}
	}
	return m, nil
}

func verifyChunks(ctx context.Context, repoDir string, m *manifest.Manifest, opts VerifyOptions) (int, int64, []Problem, error) {
	seen := make(map[cid.Cid]uint32)
	var order []cid.Cid
	var total int64
	add := func(c manifest.ChunkRef) {
		if _, ok := seen[c.CID]; !ok {
			seen[c.CID] = c.Size
			order = append(order, c.CID)
			total += int64(c.Size)
		}
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
	var (
		mu    sync.Mutex
		probs []Problem
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
	for _, c := range order {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			size := seen[c]
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
				mu.Lock()
				probs = append(probs, Problem{Object: "chunk " + c.String() + " of " + m.Channel + " " + m.Version, Error: err.Error()})
				mu.Unlock()
			}
			d := done.Add(int64(size))
			if opts.Progress != nil {
				mu.Lock()
				opts.Progress(d, total)
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
	return len(order), total, probs, nil
}
