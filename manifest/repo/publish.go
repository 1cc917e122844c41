package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/delta"
	"github.com/patchmesh/patchmesh/chunk/fsutil"
	"github.com/patchmesh/patchmesh/manifest"
)

// ErrNotNewer is returned when a publish would not move the channel forward.
var ErrNotNewer = errors.New("not newer than the channel head")

// ErrEmptyTree is returned when the source tree holds no file.
var ErrEmptyTree = errors.New("source tree holds no file")

// ErrBadTree wraps every refusal of the source tree: unreadable or special files,
// hostile names.
var ErrBadTree = errors.New("tree cannot be published")

// ErrLocked is returned when another publish holds the repository's lock.
var ErrLocked = errors.New("another publish is running")

var versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}$`)

// PublishOptions describe one release. The zero value of each optional field is documented.
type PublishOptions struct {
	Channel string // required, see ValidChannel
	Version string // required: 1-64 characters of [0-9A-Za-z.+_~-]
	// Sequence of the new manifest; zero: one more than the channel head's.
	Sequence uint64
	Keys     []manifest.PrivateKey // at least one; as many as the trust root's threshold needs
	Target   manifest.Target       // zero: any OS, architecture and previous version
	Hooks    manifest.Hooks        // paths of files inside the release; zero: none
	Params   chunk.Params          // zero: chunk.DefaultParams()
	// Compress is how chunk files are compressed where it pays; zero:
	// chunk.CompressDefault. Readers tell compressed files by the zstd magic.
	Compress chunk.Compression
	// ManifestTTL is how long the manifest stays valid; zero: one year.
	ManifestTTL time.Duration
	// Rollout, if set, stages the release: its stages, target and halt rule;
	// Publish fills the channel, release, version, times and sequence, and
	// writes it before the head. Nil: the release applies everywhere at once.
	Rollout *manifest.Rollout
	// Caps, if set, are the channel's default rate caps the head carries
	// (an empty one clears them). Nil: the previous head's, if any.
	Caps *manifest.ChannelCaps
	// HeadTTL is how long the channel head stays valid; zero: 7 days. Heads expire
	// soon so that a frozen mirror is noticed; republish or re-sign before then.
	HeadTTL time.Duration
	Workers int              // chunk hashing and writing goroutines; zero: GOMAXPROCS
	Now     func() time.Time // zero: time.Now
	Deltas  DeltaOptions     // zero: deltas against the previous release, best level
	// Pending lets Keys fall short of the threshold of the repository's trust
	// root (root.json): the release is then kept pending, the head unchanged,
	// until co-signers complete it with Sign. Zero: too few keys are refused.
	Pending bool
	// Progress, if set, is called from one goroutine as bytes are chunked.
	Progress func(Progress)
}

// Progress of a publish.
type Progress struct {
	Files, FilesTotal int
	Bytes, BytesTotal int64
}

// Summary of a publish, as the CLI prints it.
type Summary struct {
	Channel      string `json:"channel"`
	Version      string `json:"version"`
	Sequence     uint64 `json:"sequence"`
	Files        int    `json:"files"`
	Links        int    `json:"links"`     // symlinks
	Hardlinks    int    `json:"hardlinks"` // names of a file beyond its first
	Dirs         int    `json:"dirs"`      // directories listed: empty or not 0755
	Bytes        int64  `json:"bytes"`
	Chunks       int    `json:"chunks"`
	UniqueChunks int    `json:"unique_chunks"`
	NewChunks    int    `json:"new_chunks"`
	NewBytes     int64  `json:"new_bytes"`
	// ReusedBytes are bytes of chunks the repository already held from earlier releases.
	ReusedBytes int64 `json:"reused_bytes"`
	// DuplicateBytes are bytes of chunks repeated inside this release.
	DuplicateBytes int64 `json:"duplicate_bytes"`
	// Deltas are the delta objects made against earlier releases, DeltaBytes
	// their size and DeltaOutput the bytes they rebuild.
	Deltas       int    `json:"deltas"`
	DeltaBytes   int64  `json:"delta_bytes"`
	DeltaOutput  int64  `json:"delta_output"`
	ManifestPath string `json:"manifest_path"`
	// ManifestZstBytes and ManifestDeltaBytes are the sizes of the manifest's
	// compressed form and of its delta against the previous head's; zero: none.
	ManifestZstBytes   int64  `json:"manifest_zst_bytes,omitempty"`
	ManifestDeltaBytes int64  `json:"manifest_delta_bytes,omitempty"`
	ManifestBytes      int64  `json:"manifest_bytes"`
	PreviousVersion    string `json:"previous_version,omitempty"`
	PreviousSeq        uint64 `json:"previous_sequence,omitempty"`
	// Pending is set when the release waits for co-signers (see Sign); the
	// head did not move. Signing tells how far it got.
	Pending bool        `json:"pending,omitempty"`
	Signing *SignStatus `json:"signing,omitempty"`
}

// entry is a regular file, or a symlink when link is set, for chunkTree.
type entry struct {
	rel  string // slash path inside the tree
	abs  string
	mode uint32 // manifest.ModeBits
	size int64
	link string
}

// Publish chunks the tree at srcDir into the repository at repoDir and switches the
// channel head to the new manifest. It writes only chunks the repository lacks.
func Publish(ctx context.Context, repoDir, srcDir string, opts PublishOptions) (*Summary, error) {
	if err := ValidChannel(opts.Channel); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if !versionRE.MatchString(opts.Version) {
		return nil, fmt.Errorf("publish: version %q: want 1-64 characters of 0-9, A-Z, a-z, '.', '+', '_', '~', '-'", opts.Version)
	}
	if len(opts.Keys) == 0 {
		return nil, fmt.Errorf("publish: no signing key")
	}
	if opts.Params == (chunk.Params{}) {
		opts.Params = chunk.DefaultParams()
	}
	if err := opts.Params.Validate(); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if opts.ManifestTTL == 0 {
		opts.ManifestTTL = 365 * 24 * time.Hour
	}
	if opts.HeadTTL == 0 {
		opts.HeadTTL = 7 * 24 * time.Hour
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Before anything is written: what nodes would refuse is refused here, and
	// the repository stays as it was.
	root, err := ReadRoot(repoDir)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", opts.Channel, opts.Version, err)
	}
	pending := false
	if root != nil {
		if err := root.CheckSigners(opts.Keys...); err != nil {
			if !opts.Pending || errors.Is(err, manifest.ErrUnknownKey) {
				return nil, fmt.Errorf("publish %s %s: %w", opts.Channel, opts.Version, err)
			}
			pending = true
		}
	} else if opts.Pending {
		return nil, fmt.Errorf("publish %s %s: a pending release needs the repository's trust root %s to count signatures; create it with patchmesh trust init --repo", opts.Channel, opts.Version, RootFile)
	}
	if pending && opts.Rollout != nil {
		// sign completes a pending release's head without a rollout: refused
		// rather than released to every node at once.
		return nil, fmt.Errorf("publish %s %s: a staged rollout cannot wait for co-signers yet; publish it with every key at once", opts.Channel, opts.Version)
	}
	if err := os.MkdirAll(repoDir, 0o755); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	unlock, err := lockRepo(repoDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if p, err := readPending(repoDir, opts.Channel); err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", opts.Channel, opts.Version, err)
	} else if p != nil {
		done, err := p.settled(repoDir)
		if err != nil {
			return nil, fmt.Errorf("publish %s %s: %w", opts.Channel, opts.Version, err)
		}
		if !done {
			return nil, fmt.Errorf("publish %s %s: %s %s (sequence %d) waits for co-signers: %w; complete it with patchmesh sign, or delete %s to drop it",
				opts.Channel, opts.Version, p.Channel, p.Version, p.Sequence, ErrPending, PendingPath(opts.Channel))
		}
	}
	sum := &Summary{Channel: opts.Channel, Version: opts.Version}
	prev, err := ReadHeadUnverified(repoDir, opts.Channel)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("publish: read current head: %w", err)
	}
	seq := opts.Sequence
	if prev != nil {
		sum.PreviousVersion, sum.PreviousSeq = prev.Version, prev.Sequence
		if seq == 0 {
			seq = prev.Sequence + 1
		}
		if seq <= prev.Sequence {
			return nil, fmt.Errorf("publish %s %s: sequence %d: %w (head is %s, sequence %d); use a higher --sequence",
				opts.Channel, opts.Version, seq, ErrNotNewer, prev.Version, prev.Sequence)
		}
		if c, ok := manifest.CompareVersions(opts.Version, prev.Version); ok && c <= 0 {
			return nil, fmt.Errorf("publish %s %s: version: %w (head is %s); publish a higher version",
				opts.Channel, opts.Version, ErrNotNewer, prev.Version)
		} else if !ok && opts.Version == prev.Version {
			return nil, fmt.Errorf("publish %s %s: version: %w (head has the same version); publish a new version",
				opts.Channel, opts.Version, ErrNotNewer)
		}
	} else if seq == 0 {
		seq = 1
	}
	// A manifest with no head pointing to it is left by a publish that stopped
	// before switching the head. It is never rewritten (caches hold manifests as
	// immutable), so the next sequence free of one is taken.
	for {
		_, err := os.Lstat(filepath.Join(repoDir, filepath.FromSlash(ManifestPath(opts.Channel, seq))))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		if opts.Sequence != 0 {
			return nil, fmt.Errorf("publish %s %s: sequence %d: %w (manifest %s exists from a publish that did not finish); use a higher --sequence",
				opts.Channel, opts.Version, seq, ErrNotNewer, ManifestPath(opts.Channel, seq))
		}
		seq++
	}
	sum.Sequence = seq

	entries, others, total, err := scanTree(srcDir)
	if err != nil {
		if errors.Is(err, ErrEmptyTree) {
			return nil, fmt.Errorf("publish: %w", err)
		}
		return nil, fmt.Errorf("publish: %w: %w", ErrBadTree, err)
	}
	for _, h := range []string{opts.Hooks.PreActivate, opts.Hooks.HealthCheck} {
		if h != "" && !hasFile(entries, others, h) {
			return nil, fmt.Errorf("publish: hook %q is not a file of the release", h)
		}
	}

	codec, err := chunk.NewCodec(opts.Compress)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	w := &chunkWriter{repoDir: repoDir, codec: codec, seen: make(map[cid.Cid]bool), dirs: make(map[string]bool)}
	if err := w.startWriteback(); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer w.stopWriteback()
	files, err := chunkTree(ctx, w, entries, total, opts, sum)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", opts.Channel, opts.Version, err)
	}
	var deltas []manifest.Delta
	if !opts.Deltas.Off && prev != nil {
		do := opts.Deltas.withDefaults()
		src := make(map[string]string, len(entries))
		for _, e := range entries {
			src[e.rel] = e.abs
		}
		groups := planDeltas(readBases(repoDir, prev, do.Bases), files, func(p string) string { return src[p] }, do.Group, do.Window)
		if deltas, err = makeDeltas(ctx, repoDir, w, groups, opts, sum); err != nil {
			return nil, fmt.Errorf("publish %s %s: %w", opts.Channel, opts.Version, err)
		}
	}
	// One barrier for every chunk file where the OS has one (see syncChunks), and
	// the manifest below is written only after its chunks are durable.
	if err := w.syncChunks(); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	for _, f := range others {
		if f.IsDir() {
			sum.Dirs++
		} else {
			sum.Hardlinks++
		}
	}
	files = append(files, others...)
	slices.SortFunc(files, func(a, b manifest.File) int { return strings.Compare(a.Path, b.Path) })

	now := opts.Now().UTC().Truncate(time.Second)
	m := &manifest.Manifest{
		Channel:  opts.Channel,
		Version:  opts.Version,
		Sequence: seq,
		Created:  now,
		Expires:  now.Add(opts.ManifestTTL),
		Target:   opts.Target,
		Files:    files,
		Hooks:    opts.Hooks,
		Deltas:   deltas,
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("publish: manifest: %w", err)
	}
	payload, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("publish: manifest: %w", err)
	}
	menv, err := manifest.Sign(manifest.TypeManifest, payload, opts.Keys...)
	if err != nil {
		return nil, fmt.Errorf("publish: sign manifest: %w", err)
	}
	if pending {
		p := &pendingRelease{Channel: opts.Channel, Version: opts.Version, Sequence: seq, HeadTTL: opts.HeadTTL, Compact: !opts.Deltas.Off, Manifest: menv}
		if prev != nil {
			p.Previous = prev.Sequence
		}
		if err := writePending(repoDir, p); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		st, err := p.status(root)
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		sum.Pending, sum.Signing = true, st
		return sum, nil
	}
	h, err := completeManifest(repoDir, prev, opts.Channel, opts.Version, seq, menv, !opts.Deltas.Off, now, opts.HeadTTL, sum)
	if err == nil && opts.Caps != nil {
		h.Caps = nil
		if *opts.Caps != (manifest.ChannelCaps{}) {
			c := *opts.Caps
			h.Caps = &c
		}
	}
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if opts.Rollout != nil {
		// Written before the head that requires it, so no reader sees the
		// head without its rollout.
		ro := *opts.Rollout
		ro.Channel, ro.Release, ro.Version, ro.Started, ro.Issued = opts.Channel, seq, opts.Version, now, now
		if ro.Expires.IsZero() {
			ro.Expires = now.Add(opts.HeadTTL)
		}
		if ro.Sequence, err = NextRolloutSequence(repoDir, opts.Channel); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		if ro.State == "" {
			ro.State = manifest.RolloutRunning
		}
		if err := WriteRollout(repoDir, &ro, opts.Keys...); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		h.Rollout = true
	}
	if err := WriteHead(repoDir, h, opts.Keys...); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return sum, nil
}

// completeManifest writes a manifest envelope that carries all its signatures,
// and its compact forms, and returns the head that names them, to be signed.
// Nothing points to these files until the head is written.
func completeManifest(repoDir string, prev *manifest.Head, channel, version string, seq uint64, menv []byte, compactOK bool, now time.Time, headTTL time.Duration, sum *Summary) (*manifest.Head, error) {
	mpath := ManifestPath(channel, seq)
	if err := WriteFileAtomic(filepath.Join(repoDir, filepath.FromSlash(mpath)), menv, 0o644); err != nil {
		return nil, err
	}
	sum.ManifestPath, sum.ManifestBytes = mpath, int64(len(menv))
	compact, err := writeCompactManifests(repoDir, prev, channel, seq, menv, !compactOK, sum)
	if err != nil {
		return nil, err
	}
	h := &manifest.Head{
		Channel:  channel,
		Version:  version,
		Sequence: seq,
		Manifest: manifest.NewRef(mpath, menv),
		Issued:   now,
		Expires:  now.Add(headTTL),
	}
	if prev != nil && prev.Caps != nil {
		c := *prev.Caps // a channel's caps stay until the publisher changes them
		h.Caps = &c
	}
	if compactOK {
		// Nodes older than deltas refuse a head with compact forms, as they
		// refuse manifests with deltas: --deltas 0 keeps both out.
		h.Compact = compact
	}
	return h, nil
}

// writeCompactManifests writes the smaller forms of a manifest envelope a node
// may pull instead of it: compressed, and compressed against the previous
// head's manifest, which a node that runs the previous release holds. Nodes
// check what they decode against the head's digest, as the plain manifest.
// It returns their references, for the head.
func writeCompactManifests(repoDir string, prev *manifest.Head, channel string, seq uint64, menv []byte, deltasOff bool, sum *Summary) ([]manifest.CompactRef, error) {
	var refs []manifest.CompactRef
	write := func(from uint64, path string, data []byte) error {
		if err := WriteFileAtomic(filepath.Join(repoDir, filepath.FromSlash(path)), data, 0o644); err != nil {
			return err
		}
		r := manifest.NewRef(path, data)
		refs = append(refs, manifest.CompactRef{From: from, Path: r.Path, Size: r.Size, SHA256: r.SHA256})
		return nil
	}
	// Both forms hold the envelope unwrapped (its payload raw, not base64),
	// so that what did not change matches the previous manifest's bytes.
	un, err := manifest.UnwrapEnvelope(menv)
	if err != nil {
		return nil, err
	}
	// The delta against the previous manifest is encoded meanwhile, on the
	// other core: at the best level, since every updating node pulls it.
	var (
		d    []byte
		derr error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		d, derr = previousDelta(repoDir, prev, deltasOff, un)
	}()
	// The whole form is for a node without the previous manifest. The better
	// level is 8x faster than the best on a manifest of CIDs, and as small
	// (2242136 against 2255623 bytes for 1 GiB in 55440 chunks).
	z, err := delta.Encode(delta.Better, nil, un, nil)
	<-done
	if err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	if len(z) < len(menv) {
		if err := write(0, ManifestZstPath(channel, seq), z); err != nil {
			return nil, err
		}
		sum.ManifestZstBytes = int64(len(z))
	}
	if d == nil || len(d) >= min(len(z), len(menv)) {
		return refs, nil
	}
	sum.ManifestDeltaBytes = int64(len(d))
	return refs, write(prev.Sequence, ManifestDeltaPath(channel, seq, prev.Sequence), d)
}

// previousDelta encodes the unwrapped manifest un against the previous head's,
// or returns nil when there is none to encode against.
func previousDelta(repoDir string, prev *manifest.Head, deltasOff bool, un []byte) ([]byte, error) {
	if prev == nil || deltasOff {
		return nil, nil
	}
	penv, err := readLimited(filepath.Join(repoDir, filepath.FromSlash(prev.Manifest.Path)), manifest.MaxManifestSize)
	if err != nil {
		return nil, nil // the previous manifest is gone: no delta, the other forms do
	}
	pun, err := manifest.UnwrapEnvelope(penv)
	if err != nil {
		return nil, nil
	}
	return delta.Encode(delta.Best, pun, un, nil)
}

// WriteHead signs h and switches the channel's head to it, atomically.
func WriteHead(repoDir string, h *manifest.Head, keys ...manifest.PrivateKey) error {
	payload, err := h.Marshal()
	if err != nil {
		return fmt.Errorf("write head %s: %w", h.Channel, err)
	}
	env, err := manifest.Sign(manifest.TypeHead, payload, keys...)
	if err != nil {
		return fmt.Errorf("sign head %s: %w", h.Channel, err)
	}
	return WriteFileAtomic(filepath.Join(repoDir, filepath.FromSlash(HeadPath(h.Channel))), env, 0o644)
}

// ReadHeadUnverified reads a channel head without checking its signatures: the
// publisher holds the keys and needs only the sequence it must exceed. Nodes use
// manifest.TrustRoot.VerifyHead instead.
func ReadHeadUnverified(repoDir, channel string) (*manifest.Head, error) {
	data, err := readLimited(filepath.Join(repoDir, filepath.FromSlash(HeadPath(channel))), manifest.MaxHeadSize)
	if err != nil {
		return nil, err
	}
	var env manifest.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("head %s: %w", channel, err)
	}
	dec := json.NewDecoder(bytes.NewReader(env.Payload))
	dec.DisallowUnknownFields()
	var h manifest.Head
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("head %s: %w", channel, err)
	}
	return &h, nil
}

func readLimited(name string, max int64) ([]byte, error) {
	data, err := fsutil.ReadFile(name, max)
	if errors.Is(err, fsutil.ErrTooLarge) {
		return nil, fmt.Errorf("%w (%w)", manifest.ErrTooLarge, err)
	}
	return data, err
}

// hasFile reports whether p is a regular file of the tree, or a hard link to one.
func hasFile(entries []entry, others []manifest.File, p string) bool {
	for _, e := range entries {
		if e.rel == p && e.link == "" {
			return true
		}
	}
	for _, f := range others {
		if f.Path == p && f.IsHardlink() {
			return true
		}
	}
	return false
}

// scanTree lists what srcDir holds, refusing what cannot be published faithfully
// (devices, sockets, FIFOs, names that are not safe paths). It returns the regular
// files and symlinks, which chunkTree turns into manifest entries, and the
// directories and hard links as entries already: directories only when the installer
// would not make them anyway (empty, or a mode other than 0755), and every name of
// a hard-linked file after the first, in walk order, as a link to that first.
func scanTree(srcDir string) (entries []entry, others []manifest.File, total int64, err error) {
	root, err := filepath.Abs(srcDir)
	if err != nil {
		return nil, nil, 0, err
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("source tree: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, 0, fmt.Errorf("source tree %s: not a directory", srcDir)
	}
	type dirInfo struct {
		mode  uint32
		empty bool
	}
	dirs := make(map[string]*dirInfo)
	var dirOrder []string
	firstName := make(map[fileID]string) // hard-linked inode: its first name
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := manifest.SafePath(rel); err != nil {
			return fmt.Errorf("file %q: %w", rel, err)
		}
		if parent := dirs[path.Dir(rel)]; parent != nil {
			parent.empty = false
		}
		info, err := d.Info() // lstat: a symlink is not followed
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		switch {
		case d.IsDir():
			dirs[rel] = &dirInfo{mode: manifest.ModeBits(info.Mode()), empty: true}
			dirOrder = append(dirOrder, rel)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("read link %s: %w", rel, err)
			}
			if err := checkLink(rel, target); err != nil {
				return err
			}
			entries = append(entries, entry{rel: rel, abs: p, link: target})
		case info.Mode().IsRegular():
			mode := manifest.ModeBits(info.Mode())
			if id, ok := hardLinked(info); ok {
				if first, seen := firstName[id]; seen {
					others = append(others, manifest.File{Path: rel, Type: manifest.TypeHardlink, Mode: mode, Link: first})
					return nil
				}
				firstName[id] = rel
			}
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("file %s is not readable: %w", rel, err)
			}
			f.Close()
			entries = append(entries, entry{rel: rel, abs: p, mode: mode, size: info.Size()})
			total += info.Size()
		default:
			return fmt.Errorf("file %s is a %s: only regular files, directories and symlinks can be published; remove it from the tree", rel, kindOf(info.Mode()))
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	files := 0
	for _, e := range entries {
		if e.link == "" {
			files++
		}
	}
	if files == 0 {
		return nil, nil, 0, fmt.Errorf("%s: %w", srcDir, ErrEmptyTree)
	}
	for _, rel := range dirOrder {
		if d := dirs[rel]; d.empty || d.mode != 0o755 {
			others = append(others, manifest.File{Path: rel, Type: manifest.TypeDir, Mode: d.mode})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	return entries, others, total, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	default:
		return "special file (" + m.Type().String() + ")"
	}
}

// checkLink refuses a symlink target a manifest cannot carry. Any target is
// published as it is — absolute, leaving the tree or dangling — since the
// installer only recreates the link and never follows it.
func checkLink(rel, target string) error {
	switch {
	case len(target) > maxLinkTarget:
		return fmt.Errorf("symlink %s: target is %d bytes, more than %d; shorten it", rel, len(target), maxLinkTarget)
	case !utf8.ValidString(target):
		return fmt.Errorf("symlink %s -> %q: target is not valid UTF-8; rename its target", rel, target)
	}
	return nil
}

// maxLinkTarget is the longest symlink target a manifest takes (PATH_MAX on Linux).
const maxLinkTarget = 4096

type chunkJob struct {
	buf  *[]byte
	slot *manifest.ChunkRef
}

// chunkTree cuts every file into chunks and writes the chunks the repository lacks.
// One goroutine reads, chunks and hashes whole files; Workers goroutines hash and
// write chunks, so both cores stay busy on one big file.
func chunkTree(ctx context.Context, w *chunkWriter, entries []entry, total int64, opts PublishOptions, sum *Summary) ([]manifest.File, error) {
	g, ctx := errgroup.WithContext(ctx)
	jobs := make(chan chunkJob, opts.Workers*4)
	pool := sync.Pool{New: func() any { b := make([]byte, 0, opts.Params.Max); return &b }}
	for range opts.Workers {
		g.Go(func() error {
			for j := range jobs {
				data := *j.buf
				c := chunk.Sum(data)
				if err := w.write(c, data, sum); err != nil {
					return err
				}
				j.slot.CID = c
				pool.Put(j.buf)
			}
			return nil
		})
	}

	files := make([]manifest.File, 0, len(entries))
	slots := make([][]*manifest.ChunkRef, len(entries))
	g.Go(func() error {
		defer close(jobs)
		prog := Progress{FilesTotal: len(entries), BytesTotal: total}
		fileHash := sha256.New()
		for i, e := range entries {
			if e.link != "" {
				prog.Files++
				continue
			}
			n, err := chunkFile(ctx, e, opts.Params, fileHash, func(data []byte) error {
				bp := pool.Get().(*[]byte)
				*bp = append((*bp)[:0], data...)
				slot := &manifest.ChunkRef{Size: uint32(len(data))}
				slots[i] = append(slots[i], slot)
				prog.Bytes += int64(len(data))
				if opts.Progress != nil {
					opts.Progress(prog)
				}
				select {
				case jobs <- chunkJob{buf: bp, slot: slot}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil {
				return err
			}
			if n != e.size {
				return fmt.Errorf("file %s changed while it was read (%d bytes, expected %d)", e.rel, n, e.size)
			}
			files = append(files, manifest.File{Path: e.rel, Mode: uint32(e.mode), Size: e.size, SHA256: hex.EncodeToString(fileHash.Sum(nil))})
			prog.Files++
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]manifest.File, 0, len(entries))
	fi := 0
	for i, e := range entries {
		if e.link != "" {
			out = append(out, manifest.File{Path: e.rel, Link: e.link, Mode: 0o777, Chunks: []manifest.ChunkRef{}})
			sum.Links++
			continue
		}
		f := files[fi]
		fi++
		f.Chunks = make([]manifest.ChunkRef, len(slots[i]))
		for k, s := range slots[i] {
			f.Chunks[k] = *s
		}
		out = append(out, f)
		sum.Files++
		sum.Bytes += f.Size
		sum.Chunks += len(f.Chunks)
	}
	sum.UniqueChunks = len(w.seen)
	sum.DuplicateBytes = sum.Bytes - sum.NewBytes - sum.ReusedBytes
	return out, nil
}

// chunkFile streams one file through the chunker, hashing the whole file on the way.
func chunkFile(ctx context.Context, e entry, p chunk.Params, fileHash hash.Hash, emit func([]byte) error) (int64, error) {
	f, err := os.Open(e.abs)
	if err != nil {
		return 0, fmt.Errorf("file %s: %w", e.rel, err)
	}
	defer f.Close()
	fileHash.Reset()
	cr := &countingReader{r: io.TeeReader(f, fileHash)}
	ch, err := chunk.NewChunker(cr, p)
	if err != nil {
		return 0, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		data, err := ch.Next()
		if err == io.EOF {
			return cr.n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("file %s: %w", e.rel, err)
		}
		if err := emit(data); err != nil {
			return 0, err
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type chunkWriter struct {
	repoDir string
	codec   *chunk.Codec
	mu      sync.Mutex
	seen    map[cid.Cid]bool
	// dirs records the shard folders met so far: true for one this publish
	// created, which holds no earlier chunk, so nothing in it needs a stat.
	dirs map[string]bool

	flush *flusher // starts write-back early; nil where the OS has none
}

// write stores a chunk, in its wire form, unless the repository or this
// publish already has it, raw or compressed.
func (w *chunkWriter) write(c cid.Cid, data []byte, sum *Summary) error {
	w.mu.Lock()
	if w.seen[c] {
		w.mu.Unlock()
		return nil
	}
	w.seen[c] = true
	w.mu.Unlock()

	name := filepath.Join(w.repoDir, filepath.FromSlash(ChunkPath(c)))
	dir := filepath.Dir(name)
	fresh, err := w.shard(dir)
	if err != nil {
		return fmt.Errorf("write chunk %s: %w", c, err)
	}
	have := int64(-1)
	if !fresh {
		if st, err := os.Stat(name); err == nil {
			have = st.Size()
		}
	}
	// A file of the raw size is an older publish's raw chunk, which every
	// reader still takes; the encoding is spent only on chunks to write.
	var wire []byte
	if have != int64(len(data)) {
		wire = w.codec.Encode(data)
	}
	if have == int64(len(data)) || have == int64(len(wire)) {
		w.mu.Lock()
		sum.ReusedBytes += int64(len(data))
		w.mu.Unlock()
		return nil
	}
	if err := put(dir, name, wire, fresh); err != nil {
		return fmt.Errorf("write chunk %s: %w", c, err)
	}
	w.wrote(len(wire))
	w.mu.Lock()
	sum.NewChunks++
	sum.NewBytes += int64(len(data))
	w.mu.Unlock()
	return nil
}

// put writes a chunk file. In a shard folder this publish created (fresh) it
// is created under its final name, without the temporary file and rename that
// replacing one needs: no reader looks for a chunk there before the manifest
// that names it is written, after the barrier. A crash may leave the file
// short; the next publish finds the folder not fresh, sees the size differ,
// and replaces it through a temporary file, as any other chunk.
func put(dir, name string, wire []byte, fresh bool) error {
	var f *os.File
	var err error
	if fresh {
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	} else {
		f, err = os.CreateTemp(dir, tempPrefix+"*")
	}
	if err != nil {
		return err
	}
	_, err = f.Write(wire)
	if err == nil {
		err = f.Chmod(0o644) // whatever the umask, a web server must read it
	}
	if err == nil && syncEachChunk {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !fresh {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// shard makes sure a shard folder exists and reports whether this publish
// created it. Creating a file costs far more than a stat on some file systems,
// and a fresh repository would otherwise stat every chunk for nothing.
func (w *chunkWriter) shard(dir string) (bool, error) {
	w.mu.Lock()
	fresh, known := w.dirs[dir]
	w.mu.Unlock()
	if known {
		return fresh, nil
	}
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return false, err
		}
		err = os.Mkdir(dir, 0o755)
	}
	switch {
	case err == nil:
		fresh = true
	case errors.Is(err, fs.ErrExist):
		fresh = false
	default:
		return false, err
	}
	w.mu.Lock()
	if prev, ok := w.dirs[dir]; ok {
		fresh = prev && fresh
	}
	w.dirs[dir] = fresh
	w.mu.Unlock()
	return fresh, nil
}
