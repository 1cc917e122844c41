package manifest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// MaxChunkSize is the largest chunk a manifest may name.
const MaxChunkSize = 1 << 20

// maxLinkHops bounds symlink resolution, as Linux does (ELOOP at 40).
const maxLinkHops = 40

// Manifest describes one release of a channel. See the package documentation.
type Manifest struct {
	Channel  string    `json:"channel"`
	Version  string    `json:"version"`  // a label; compared as semver when both sides are semver
	Sequence uint64    `json:"sequence"` // monotonic per channel, > 0
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Target   Target    `json:"target"`
	Files    []File    `json:"files"`
	Hooks    Hooks     `json:"hooks,omitzero"`
	Deltas   []Delta   `json:"deltas,omitempty"` // see Delta; none in manifests before deltas
}

// Target says which machines a release fits. Empty lists mean any.
type Target struct {
	OS       []string `json:"os,omitempty"`       // GOOS values
	Arch     []string `json:"arch,omitempty"`     // GOARCH values
	Replaces []string `json:"replaces,omitempty"` // path.Match globs over the installed version
}

// File is one entry of a release: a regular file, or a symlink when Link is set.
type File struct {
	Path   string     `json:"path"`           // see SafePath
	Mode   uint32     `json:"mode"`           // permission bits only, at most 0o7777
	Size   int64      `json:"size"`           // the sum of the chunk sizes
	SHA256 string     `json:"sha256"`         // lowercase hex of the whole file; empty for a symlink
	Link   string     `json:"link,omitempty"` // symlink target: relative, resolving inside the release; Size 0, no chunks
	Chunks []ChunkRef `json:"chunks"`
}

// ChunkRef names one chunk of a file. Its JSON form is the compact ["<cid>", size],
// since manifests hold tens of thousands of them.
type ChunkRef struct {
	CID  cid.Cid
	Size uint32
}

// Hooks are paths of regular files inside the release, run by the installer.
type Hooks struct {
	PreActivate string `json:"pre_activate,omitempty"`
	HealthCheck string `json:"health_check,omitempty"`
}

// IsLink reports whether f is a symlink.
func (f *File) IsLink() bool { return f.Link != "" }

// MarshalJSON writes ["<cid>", size].
func (c ChunkRef) MarshalJSON() ([]byte, error) {
	if !c.CID.Defined() {
		return nil, fmt.Errorf("marshal chunk: undefined CID: %w", ErrMalformed)
	}
	b := make([]byte, 0, 80)
	b = append(b, '[')
	b = strconv.AppendQuote(b, c.CID.String()) // base32 text: JSON and Go quoting agree
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(c.Size), 10)
	return append(b, ']'), nil
}

// UnmarshalJSON reads ["<cid>", size]; the CID must be in its canonical text form.
func (c *ChunkRef) UnmarshalJSON(data []byte) error {
	if s, n, ok := compactChunk(data); ok {
		return c.set(s, n)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil || len(parts) != 2 {
		return fmt.Errorf("chunk: want [\"<cid>\", size], got %.40q: %w", data, ErrMalformed)
	}
	var s string
	if err := json.Unmarshal(parts[0], &s); err != nil {
		return fmt.Errorf("chunk: CID is not a string: %w", ErrMalformed)
	}
	return c.set(s, string(parts[1]))
}

// compactChunk splits the form MarshalJSON writes, ["<base32>",<digits>], without the
// general JSON machinery; anything else goes the slow, general way.
func compactChunk(data []byte) (cidText, size string, ok bool) {
	if len(data) < 6 || data[0] != '[' || data[1] != '"' || data[len(data)-1] != ']' {
		return "", "", false
	}
	i := 2
	for i < len(data) && ('a' <= data[i] && data[i] <= 'z' || '2' <= data[i] && data[i] <= '7') {
		i++
	}
	if i+2 >= len(data) || data[i] != '"' || data[i+1] != ',' {
		return "", "", false
	}
	size = string(data[i+2 : len(data)-1])
	if size == "" || strings.Trim(size, "0123456789") != "" {
		return "", "", false
	}
	return string(data[2:i]), size, true
}

func (c *ChunkRef) set(s, size string) error {
	id, err := cid.Decode(s)
	if err != nil {
		return fmt.Errorf("chunk %.80q: %v: %w", s, err, ErrMalformed)
	}
	if id.String() != s {
		return fmt.Errorf("chunk %.80q: CID not in canonical form %s: %w", s, id, ErrMalformed)
	}
	n, err := strconv.ParseUint(size, 10, 32)
	if err != nil {
		return fmt.Errorf("chunk %s: size %.20q is not a 32-bit unsigned integer: %w", s, size, ErrMalformed)
	}
	*c = ChunkRef{CID: id, Size: uint32(n)}
	return nil
}

// checkCID accepts only what patchmesh chunks are named by: CIDv1, raw codec, sha2-256.
func checkCID(c cid.Cid) error {
	if !c.Defined() {
		return fmt.Errorf("undefined CID: %w", ErrMalformed)
	}
	p := c.Prefix()
	if p.Version != 1 || p.Codec != cid.Raw || p.MhType != multihash.SHA2_256 || p.MhLength != 32 {
		return fmt.Errorf("CID %s: want CIDv1, raw codec, sha2-256 (got v%d, codec %#x, hash %#x/%d): %w",
			c, p.Version, p.Codec, p.MhType, p.MhLength, ErrMalformed)
	}
	return nil
}

// TotalSize is the sum of the file sizes.
func (m *Manifest) TotalSize() int64 {
	var n int64
	for i := range m.Files {
		n += m.Files[i].Size
	}
	return n
}

// Marshal validates m and returns its compact JSON: the payload to sign.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("marshal manifest: %w", err)
	}
	// Write [] rather than null, so equal manifests always encode equally.
	out := *m
	if out.Files == nil {
		out.Files = []File{}
	}
	fixed := false
	for i := range out.Files {
		if out.Files[i].Chunks == nil {
			if !fixed {
				out.Files = slices.Clone(out.Files)
				fixed = true
			}
			out.Files[i].Chunks = []ChunkRef{}
		}
	}
	b, err := json.Marshal(&out)
	if err != nil {
		return nil, fmt.Errorf("marshal manifest %s %s: %w", m.Channel, m.Version, err)
	}
	return b, nil
}

// Validate checks every rule a manifest must keep: names, times, target, paths
// (SafePath, no duplicates, nothing inside a file or symlink), modes, sizes equal to
// the sum of chunk sizes, chunk CIDs, symlinks resolving inside the release, hooks.
func (m *Manifest) Validate() error {
	if err := CheckChannel(m.Channel); err != nil {
		return err
	}
	if err := CheckVersion(m.Version); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("manifest %s %s: %s: %w", m.Channel, m.Version, fmt.Sprintf(format, args...), ErrMalformed)
	}
	if m.Sequence == 0 {
		return bad("sequence must be above 0")
	}
	if m.Created.IsZero() || m.Expires.IsZero() {
		return bad("created and expires times are required")
	}
	if !m.Expires.After(m.Created) {
		return bad("expires %s is not after created %s", m.Expires.Format(time.RFC3339), m.Created.Format(time.RFC3339))
	}
	if err := m.Target.validate(); err != nil {
		return fmt.Errorf("manifest %s %s: %w", m.Channel, m.Version, err)
	}
	entries := make(map[string]*File, len(m.Files))
	var total int64
	for i := range m.Files {
		f := &m.Files[i]
		if err := f.validate(); err != nil {
			return fmt.Errorf("manifest %s %s: %w", m.Channel, m.Version, err)
		}
		if entries[f.Path] != nil {
			return fmt.Errorf("manifest %s %s: file %q listed twice: %w", m.Channel, m.Version, f.Path, ErrPath)
		}
		entries[f.Path] = f
		if total > math.MaxInt64-f.Size {
			return bad("total size overflows")
		}
		total += f.Size
	}
	for p := range entries {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if e := entries[dir]; e != nil {
				kind := "file"
				if e.IsLink() {
					kind = "symlink"
				}
				return fmt.Errorf("manifest %s %s: %q lies inside %q, which is a %s: %w", m.Channel, m.Version, p, dir, kind, ErrPath)
			}
		}
	}
	for i := range m.Files {
		if f := &m.Files[i]; f.IsLink() {
			if err := resolveInside(entries, f.Path); err != nil {
				return fmt.Errorf("manifest %s %s: %w", m.Channel, m.Version, err)
			}
		}
	}
	if err := m.validateDeltas(entries); err != nil {
		return err
	}
	for _, h := range []struct{ name, path string }{{"pre_activate", m.Hooks.PreActivate}, {"health_check", m.Hooks.HealthCheck}} {
		if h.path == "" {
			continue
		}
		if err := SafePath(h.path); err != nil {
			return fmt.Errorf("manifest %s %s: hook %s: %w", m.Channel, m.Version, h.name, err)
		}
		if e := entries[h.path]; e == nil || e.IsLink() {
			return bad("hook %s %q is not a regular file of the release", h.name, h.path)
		}
	}
	return nil
}

func (f *File) validate() error {
	if err := SafePath(f.Path); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("file %q: %s: %w", f.Path, fmt.Sprintf(format, args...), ErrMalformed)
	}
	if f.Mode > 0o7777 {
		return bad("mode %#o has bits beyond permissions (0o7777)", f.Mode)
	}
	if f.IsLink() {
		if f.Size != 0 || len(f.Chunks) != 0 || f.SHA256 != "" {
			return bad("a symlink has no size, digest or chunks")
		}
		switch {
		case len(f.Link) > maxPathLen, !utf8.ValidString(f.Link), strings.ContainsRune(f.Link, 0), strings.ContainsRune(f.Link, '\\'):
			return fmt.Errorf("symlink %q: target %.80q is not a clean relative path: %w", f.Path, f.Link, ErrPath)
		case path.IsAbs(f.Link):
			return fmt.Errorf("symlink %q: absolute target %.80q: %w", f.Path, f.Link, ErrPath)
		}
		return nil
	}
	if f.Size < 0 {
		return bad("negative size")
	}
	if len(f.SHA256) != 64 || strings.ToLower(f.SHA256) != f.SHA256 {
		return bad("sha256 must be 64 lowercase hex digits")
	}
	if _, err := hex.DecodeString(f.SHA256); err != nil {
		return bad("sha256 must be 64 lowercase hex digits")
	}
	var sum int64
	for j, c := range f.Chunks {
		if err := checkCID(c.CID); err != nil {
			return fmt.Errorf("file %q chunk %d: %w", f.Path, j, err)
		}
		if c.Size == 0 || c.Size > MaxChunkSize {
			return bad("chunk %d size %d is outside 1..%d", j, c.Size, MaxChunkSize)
		}
		sum += int64(c.Size) // cannot overflow: the slice length bounds it
	}
	if sum != f.Size {
		return bad("size %d is not the sum of its chunk sizes (%d)", f.Size, sum)
	}
	return nil
}

// resolveInside follows the symlink at linkPath through the release's own symlinks
// and refuses it if it climbs above the release root at any step. A lexical check is
// not enough: "a" -> "d/l/.." escapes when "d/l" -> "..".
func resolveInside(entries map[string]*File, linkPath string) error {
	var stack []string
	if dir := path.Dir(linkPath); dir != "." {
		stack = strings.Split(dir, "/")
	}
	pending := strings.Split(entries[linkPath].Link, "/")
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return fmt.Errorf("symlink %q -> %q points outside the release: %w", linkPath, entries[linkPath].Link, ErrPath)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		e := entries[strings.Join(stack, "/")]
		if e == nil || !e.IsLink() {
			continue
		}
		if hops++; hops > maxLinkHops {
			return fmt.Errorf("symlink %q: more than %d links deep (a loop?): %w", linkPath, maxLinkHops, ErrPath)
		}
		stack = stack[:len(stack)-1]
		pending = append(strings.Split(e.Link, "/"), pending...)
	}
	return nil
}

func (t Target) validate() error {
	for _, l := range [][]string{t.OS, t.Arch} {
		for _, s := range l {
			if s == "" || len(s) > maxNameLen || !allowed(s, "_-") {
				return fmt.Errorf("target: bad OS or architecture %.80q: %w", s, ErrMalformed)
			}
		}
	}
	for _, p := range t.Replaces {
		if _, err := path.Match(p, ""); p == "" || len(p) > maxVersionLen || err != nil {
			return fmt.Errorf("target: bad replaces pattern %.80q: %w", p, ErrMalformed)
		}
	}
	return nil
}

// Check reports whether a machine running goos/goarch with currentVersion installed
// may install the release. currentVersion "" (a fresh install) is always allowed.
func (t Target) Check(goos, goarch, currentVersion string) error {
	if len(t.OS) > 0 && !slices.Contains(t.OS, goos) {
		return fmt.Errorf("built for OS %s, this machine runs %s: %w", strings.Join(t.OS, ", "), goos, ErrPlatform)
	}
	if len(t.Arch) > 0 && !slices.Contains(t.Arch, goarch) {
		return fmt.Errorf("built for architecture %s, this machine is %s: %w", strings.Join(t.Arch, ", "), goarch, ErrPlatform)
	}
	if currentVersion == "" || len(t.Replaces) == 0 {
		return nil
	}
	for _, p := range t.Replaces {
		if ok, _ := path.Match(p, currentVersion); ok {
			return nil
		}
	}
	return fmt.Errorf("replaces only versions matching %s, this machine has %s (install an intermediate release first): %w",
		strings.Join(t.Replaces, ", "), currentVersion, ErrPlatform)
}
