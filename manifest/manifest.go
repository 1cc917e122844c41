package manifest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
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

// File is one entry of a release: a regular file, a symlink (Link set, Type empty),
// a directory (TypeDir) or a hard link (TypeHardlink). See the package documentation.
type File struct {
	Path   string     `json:"path"`           // see SafePath
	Type   string     `json:"type,omitempty"` // "", TypeDir or TypeHardlink
	Mode   uint32     `json:"mode"`           // Unix permission bits with setuid, setgid and sticky: at most 0o7777
	Size   int64      `json:"size"`           // the sum of the chunk sizes
	SHA256 string     `json:"sha256"`         // lowercase hex of the whole file; empty for the other kinds
	Link   string     `json:"link,omitempty"` // symlink: its target, verbatim; hard link: the path of its regular file
	Chunks []ChunkRef `json:"chunks"`
}

// Entry types besides the empty one, which is a regular file, or a symlink when Link
// is set: the form manifests had before types, kept so that they encode unchanged.
const (
	TypeDir      = "dir"
	TypeHardlink = "hardlink"
)

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
func (f *File) IsLink() bool { return f.Type == "" && f.Link != "" }

// IsDir reports whether f is a directory.
func (f *File) IsDir() bool { return f.Type == TypeDir }

// IsHardlink reports whether f is another name of the regular file at f.Link.
func (f *File) IsHardlink() bool { return f.Type == TypeHardlink }

// IsRegular reports whether f is a regular file with its own content.
func (f *File) IsRegular() bool { return f.Type == "" && f.Link == "" }

// kind names f's type in messages.
func (f *File) kind() string {
	switch {
	case f.IsDir():
		return "directory"
	case f.IsHardlink():
		return "hard link"
	case f.IsLink():
		return "symlink"
	}
	return "file"
}

// FileMode converts a manifest mode (Unix bits, 0o7777) to an fs.FileMode, which
// keeps setuid, setgid and sticky in bits of its own.
func FileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode) & fs.ModePerm
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// ModeBits converts an fs.FileMode to a manifest mode: the permission bits with
// setuid (0o4000), setgid (0o2000) and sticky (0o1000). The type bits are dropped.
func ModeBits(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}

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
// (SafePath, no duplicates, nothing inside anything but a directory), modes, sizes
// equal to the sum of chunk sizes, chunk CIDs, symlink targets (any text of bounded
// length), hard links naming a regular file, hooks naming a regular file.
//
// Symlink targets are not resolved: a release may ship links to /etc or to nowhere,
// as packages do. The installer never writes through a link instead (it creates
// links last, in directories it made itself), so a link cannot redirect a write.
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
	// Only directories hold entries: a path through a symlink would let the link
	// decide where the installer writes.
	for p := range entries {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if e := entries[dir]; e != nil && !e.IsDir() {
				return fmt.Errorf("manifest %s %s: %q lies inside %q, which is a %s: %w", m.Channel, m.Version, p, dir, e.kind(), ErrPath)
			}
		}
	}
	for i := range m.Files {
		f := &m.Files[i]
		if !f.IsHardlink() {
			continue
		}
		t := entries[f.Link]
		switch {
		case t == nil || !t.IsRegular():
			return fmt.Errorf("manifest %s %s: hard link %q: %q is not a regular file of the release: %w", m.Channel, m.Version, f.Path, f.Link, ErrPath)
		case t.Mode != f.Mode:
			return bad("hard link %q: mode %#o differs from its file %q (%#o); they share one inode", f.Path, f.Mode, f.Link, t.Mode)
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
		if e := entries[h.path]; e == nil || !(e.IsRegular() || e.IsHardlink()) {
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
		return fmt.Errorf("%s %q: %s: %w", f.kind(), f.Path, fmt.Sprintf(format, args...), ErrMalformed)
	}
	if f.Mode > 0o7777 {
		return bad("mode %#o has bits beyond permissions (0o7777)", f.Mode)
	}
	switch f.Type {
	case "", TypeDir, TypeHardlink:
	default:
		return fmt.Errorf("file %q: unknown type %.40q (a newer publisher? upgrade patchmesh on this machine): %w", f.Path, f.Type, ErrMalformed)
	}
	if !f.IsRegular() && (f.Size != 0 || len(f.Chunks) != 0 || f.SHA256 != "") {
		return bad("a %s has no size, digest or chunks", f.kind())
	}
	switch {
	case f.IsDir():
		if f.Link != "" {
			return bad("a directory has no link")
		}
		return nil
	case f.IsHardlink():
		if err := SafePath(f.Link); err != nil {
			return fmt.Errorf("hard link %q: %w", f.Path, err)
		}
		return nil
	case f.IsLink():
		// Any target a file system takes, stored verbatim: it is never resolved.
		if len(f.Link) > maxPathLen || !utf8.ValidString(f.Link) || strings.ContainsRune(f.Link, 0) {
			return fmt.Errorf("symlink %q: target %.80q must be valid UTF-8 without NUL, at most %d bytes: %w", f.Path, f.Link, maxPathLen, ErrPath)
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
		// Sizes add up in 64 bits: a file may be far over 4 GiB, only each chunk
		// is 32-bit. No overflow: the chunk count is bounded by the slice length.
		sum += int64(c.Size)
	}
	if sum != f.Size {
		return bad("size %d is not the sum of its chunk sizes (%d)", f.Size, sum)
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
