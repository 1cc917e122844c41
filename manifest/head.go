package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Head is a channel head: the signed pointer to the newest manifest of a channel.
type Head struct {
	Channel  string    `json:"channel"`
	Version  string    `json:"version"`
	Sequence uint64    `json:"sequence"`
	Manifest Ref       `json:"manifest"`
	Issued   time.Time `json:"issued"`
	Expires  time.Time `json:"expires"`
	// Compact lists smaller forms of the manifest envelope a node may pull
	// instead; each must decode to the bytes Manifest pins. None in heads
	// published before them, or with deltas off.
	Compact []CompactRef `json:"compact,omitempty"`
	// Rollout says the release has a staged rollout (Rollout document): a
	// node applies it only as a valid rollout naming it allows, so a mirror
	// that drops the rollout file cannot make the release apply everywhere.
	Rollout bool `json:"rollout,omitempty"`
	// Caps are the channel's default byte-rate caps; a node's own config can
	// only tighten them. Nodes older than caps refuse a head that has them
	// (signed documents refuse unknown fields): upgrade the nodes first.
	Caps *ChannelCaps `json:"caps,omitempty"`
}

// ChannelCaps are byte-rate caps in bytes a second; zero: none.
type ChannelCaps struct {
	WAN       int64 `json:"wan,omitempty"`        // each node's WAN reads
	SiteWAN   int64 `json:"site_wan,omitempty"`   // a whole site's WAN reads, shared by the members that fetch from the WAN
	LANUpload int64 `json:"lan_upload,omitempty"` // each node's chunk bytes served to peers
}

// MaxCompactRefs bounds a head's compact forms.
const MaxCompactRefs = 4

// CompactRef locates a zstd form of a manifest envelope: compressed alone
// (From 0), or with the envelope of manifest From of the channel as raw
// dictionary, for the nodes that hold it. A site moves it like a chunk, by its
// sha256, so it crosses the WAN once per site.
type CompactRef struct {
	From   uint64 `json:"from,omitempty"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Ref returns c as the Ref of its file.
func (c CompactRef) Ref() Ref { return Ref{Path: c.Path, Size: c.Size, SHA256: c.SHA256} }

// Ref locates a manifest envelope file in the repository and pins its bytes.
type Ref struct {
	Path   string `json:"path"`   // relative to the repository root, see SafePath
	Size   int64  `json:"size"`   // of the envelope file
	SHA256 string `json:"sha256"` // lowercase hex of the envelope file
}

// NewRef returns the Ref of an envelope file stored at path.
func NewRef(path string, envelope []byte) Ref {
	sum := sha256.Sum256(envelope)
	return Ref{Path: path, Size: int64(len(envelope)), SHA256: hex.EncodeToString(sum[:])}
}

// Check reports whether envelope is the file r pins (ErrMismatch if not). Fetchers
// read at most r.Size+1 bytes and call Check before parsing.
func (r Ref) Check(envelope []byte) error {
	if int64(len(envelope)) != r.Size {
		return fmt.Errorf("manifest %s: %d bytes, the head says %d (a stale or broken mirror? try another source): %w", r.Path, len(envelope), r.Size, ErrMismatch)
	}
	sum := sha256.Sum256(envelope)
	if hex.EncodeToString(sum[:]) != r.SHA256 {
		return fmt.Errorf("manifest %s: SHA-256 differs from the head's (a stale or broken mirror? try another source): %w", r.Path, ErrMismatch)
	}
	return nil
}

func (r Ref) validate() error {
	if err := SafePath(r.Path); err != nil {
		return fmt.Errorf("manifest reference: %w", err)
	}
	if r.Size <= 0 || r.Size > MaxManifestSize {
		return fmt.Errorf("manifest reference %s: size %d outside 1..%d: %w", r.Path, r.Size, MaxManifestSize, ErrMalformed)
	}
	if _, err := hex.DecodeString(r.SHA256); err != nil || len(r.SHA256) != 64 || strings.ToLower(r.SHA256) != r.SHA256 {
		return fmt.Errorf("manifest reference %s: sha256 must be 64 lowercase hex digits: %w", r.Path, ErrMalformed)
	}
	return nil
}

// Validate checks the head's names, sequence, reference and times.
func (h *Head) Validate() error {
	if err := CheckChannel(h.Channel); err != nil {
		return fmt.Errorf("head: %w", err)
	}
	if err := CheckVersion(h.Version); err != nil {
		return fmt.Errorf("head: %w", err)
	}
	if h.Sequence == 0 {
		return fmt.Errorf("head of %s: sequence must be above 0: %w", h.Channel, ErrMalformed)
	}
	if err := h.Manifest.validate(); err != nil {
		return fmt.Errorf("head of %s: %w", h.Channel, err)
	}
	if len(h.Compact) > MaxCompactRefs {
		return fmt.Errorf("head of %s: %d compact manifest forms, more than %d: %w", h.Channel, len(h.Compact), MaxCompactRefs, ErrMalformed)
	}
	for _, c := range h.Compact {
		if err := c.Ref().validate(); err != nil {
			return fmt.Errorf("head of %s: compact form: %w", h.Channel, err)
		}
		if c.From >= h.Sequence {
			return fmt.Errorf("head of %s: compact form against sequence %d, not below the head's %d: %w", h.Channel, c.From, h.Sequence, ErrMalformed)
		}
	}
	if c := h.Caps; c != nil && (c.WAN < 0 || c.SiteWAN < 0 || c.LANUpload < 0) {
		return fmt.Errorf("head of %s: negative rate cap: %w", h.Channel, ErrMalformed)
	}
	if h.Issued.IsZero() || h.Expires.IsZero() || !h.Expires.After(h.Issued) {
		return fmt.Errorf("head of %s: issued and expires times are required, expires after issued: %w", h.Channel, ErrMalformed)
	}
	return nil
}

// Marshal validates h and returns its compact JSON: the payload to sign.
func (h *Head) Marshal() ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("marshal head: %w", err)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("marshal head of %s: %w", h.Channel, err)
	}
	return b, nil
}
