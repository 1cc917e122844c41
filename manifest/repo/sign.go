package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

// ErrPending is returned by Publish while a channel has a release waiting for
// co-signers: a second one would take the same sequence.
var ErrPending = errors.New("a release is pending")

// ErrNoPending is returned by Sign when the channel has no pending release.
var ErrNoPending = errors.New("no pending release")

// pendingDir holds releases waiting for co-signers; nodes never read it.
const pendingDir = "pending"

// PendingPath is the path of a channel's pending release.
func PendingPath(channel string) string { return path.Join(pendingDir, channel+".json") }

// ReadRoot reads the repository's own trust root, root.json, and checks that it
// is signed by a threshold of its own keys. It returns nil, nil when the
// repository has none.
func ReadRoot(repoDir string) (*manifest.TrustRoot, error) {
	data, err := readLimited(filepath.Join(repoDir, RootFile), manifest.MaxRootSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read repository trust root: %w", err)
	}
	r, err := manifest.ParseTrustRoot(data)
	if err != nil {
		return nil, fmt.Errorf("repository trust root %s: %w", RootFile, err)
	}
	return r, nil
}

// pendingRelease is a published release whose signatures fall short of the
// threshold. Its chunks are in place; its manifest is held here until a
// threshold signed it, then written with its compact forms, and the head is
// held here until a threshold signed it too, then switched. Two rounds,
// because the head pins the manifest's signed bytes.
type pendingRelease struct {
	Channel  string        `json:"channel"`
	Version  string        `json:"version"`
	Sequence uint64        `json:"sequence"`
	Previous uint64        `json:"previous_sequence,omitempty"` // the head's when prepared; 0: none
	HeadTTL  time.Duration `json:"head_ttl"`
	Compact  bool          `json:"compact"`
	Manifest []byte        `json:"manifest"`       // envelope, signatures so far
	Head     []byte        `json:"head,omitempty"` // envelope, once the manifest is complete
}

func readPending(repoDir, channel string) (*pendingRelease, error) {
	data, err := readLimited(filepath.Join(repoDir, filepath.FromSlash(PendingPath(channel))), 2*manifest.MaxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pending release of %s: %w", channel, err)
	}
	var p pendingRelease
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("read pending release %s: %w", PendingPath(channel), err)
	}
	if p.Channel != channel || p.Sequence == 0 || len(p.Manifest) == 0 {
		return nil, fmt.Errorf("read pending release %s: incomplete: %w", PendingPath(channel), manifest.ErrMalformed)
	}
	return &p, nil
}

// settled reports whether p's head is the channel's head already: a Sign that
// switched it stopped before removing the pending file. That file is removed.
func (p *pendingRelease) settled(repoDir string) (bool, error) {
	if p.Head == nil {
		return false, nil
	}
	// The pending head may lack the last signatures; its payload, fixed once
	// the head was made, tells it apart from any other head.
	cur, err := readLimited(filepath.Join(repoDir, filepath.FromSlash(HeadPath(p.Channel))), manifest.MaxHeadSize)
	if err != nil {
		return false, nil
	}
	curEnv, err1 := manifest.DecodeEnvelope(cur)
	ourEnv, err2 := manifest.DecodeEnvelope(p.Head)
	if err1 != nil || err2 != nil || !bytes.Equal(curEnv.Payload, ourEnv.Payload) {
		return false, nil
	}
	if err := os.Remove(filepath.Join(repoDir, filepath.FromSlash(PendingPath(p.Channel)))); err != nil {
		return true, fmt.Errorf("remove the pending release of %s, published already: %w", p.Channel, err)
	}
	return true, nil
}

func writePending(repoDir string, p *pendingRelease) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("write pending release of %s: %w", p.Channel, err)
	}
	return WriteFileAtomic(filepath.Join(repoDir, filepath.FromSlash(PendingPath(p.Channel))), data, 0o644)
}

// SignStatus tells how far the signing of a release got.
type SignStatus struct {
	Channel         string           `json:"channel"`
	Version         string           `json:"version"`
	Sequence        uint64           `json:"sequence"`
	Threshold       int              `json:"threshold"`
	ManifestSigners []manifest.KeyID `json:"manifest_signers"`
	HeadSigners     []manifest.KeyID `json:"head_signers"`
	// Stage is what signatures are collected for now: "manifest", "head", or
	// "done" once the head switched.
	Stage string `json:"stage"`
	// Unsigned are the root's keys that have not signed what Stage names.
	Unsigned []manifest.KeyID `json:"unsigned,omitempty"`
}

func (p *pendingRelease) status(root *manifest.TrustRoot) (*SignStatus, error) {
	st := &SignStatus{Channel: p.Channel, Version: p.Version, Sequence: p.Sequence, Threshold: root.Threshold, Stage: "manifest"}
	var err error
	if st.ManifestSigners, err = root.SignedBy(p.Manifest); err != nil {
		return nil, err
	}
	signed := st.ManifestSigners
	if p.Head != nil {
		if st.HeadSigners, err = root.SignedBy(p.Head); err != nil {
			return nil, err
		}
		st.Stage, signed = "head", st.HeadSigners
	}
	for _, id := range root.KeyIDs() {
		if !slices.Contains(signed, id) {
			st.Unsigned = append(st.Unsigned, id)
		}
	}
	return st, nil
}

// Sign co-signs the pending release of channel with keys, each of which must be
// a key of the repository's trust root. Signatures go to the manifest until a
// threshold signed it; then the manifest is written and the head made, and
// signed by the same keys. When a threshold signed the head too, it switches
// the channel's head, atomically, and the release is published. Until then
// nodes see the previous release.
func Sign(repoDir, channel string, keys []manifest.PrivateKey, now time.Time) (*SignStatus, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("sign %s: no signing key", channel)
	}
	root, err := ReadRoot(repoDir)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", channel, err)
	}
	if root == nil {
		return nil, fmt.Errorf("sign %s: the repository has no trust root (%s) to count signatures by", channel, RootFile)
	}
	if err := root.CheckSigners(keys...); err != nil && !errors.Is(err, manifest.ErrThreshold) {
		return nil, fmt.Errorf("sign %s: %w", channel, err)
	}
	unlock, err := lockRepo(repoDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	p, err := readPending(repoDir, channel)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", channel, err)
	}
	if p == nil {
		return nil, fmt.Errorf("sign %s: %w in %s (publish --pending makes one)", channel, ErrNoPending, repoDir)
	}
	if done, err := p.settled(repoDir); done || err != nil {
		if err != nil {
			return nil, fmt.Errorf("sign %s: %w", channel, err)
		}
		if cur, err := readLimited(filepath.Join(repoDir, filepath.FromSlash(HeadPath(channel))), manifest.MaxHeadSize); err == nil {
			p.Head = cur // the switched head, with every signature it got
		}
		st, err := p.status(root)
		if err != nil {
			return nil, fmt.Errorf("sign %s: %w", channel, err)
		}
		st.Stage, st.Unsigned = "done", nil
		return st, nil
	}
	prev, err := ReadHeadUnverified(repoDir, channel)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sign %s: read current head: %w", channel, err)
	}
	var prevSeq uint64
	if prev != nil {
		prevSeq = prev.Sequence
	}
	if prevSeq != p.Previous {
		return nil, fmt.Errorf("sign %s %s: the channel's head moved to sequence %d since the release was prepared against %d: %w; delete %s and publish again",
			channel, p.Version, prevSeq, p.Previous, ErrNotNewer, PendingPath(channel))
	}

	if p.Head == nil {
		for _, k := range keys {
			if p.Manifest, err = manifest.AddSignature(p.Manifest, k); err != nil {
				return nil, fmt.Errorf("sign %s %s: manifest: %w", channel, p.Version, err)
			}
		}
		if _, err := root.VerifyManifestKept(p.Manifest); err == nil {
			h, err := completeManifest(repoDir, prev, channel, p.Version, p.Sequence, p.Manifest, p.Compact, now.UTC().Truncate(time.Second), p.HeadTTL, &Summary{})
			if err != nil {
				return nil, fmt.Errorf("sign %s %s: %w", channel, p.Version, err)
			}
			payload, err := h.Marshal()
			if err != nil {
				return nil, fmt.Errorf("sign %s %s: %w", channel, p.Version, err)
			}
			if p.Head, err = manifest.Sign(manifest.TypeHead, payload, keys...); err != nil {
				return nil, fmt.Errorf("sign %s %s: head: %w", channel, p.Version, err)
			}
		}
	} else {
		for _, k := range keys {
			if p.Head, err = manifest.AddSignature(p.Head, k); err != nil {
				return nil, fmt.Errorf("sign %s %s: head: %w", channel, p.Version, err)
			}
		}
	}
	st, err := p.status(root)
	if err != nil {
		return nil, fmt.Errorf("sign %s %s: %w", channel, p.Version, err)
	}
	if p.Head != nil && len(st.HeadSigners) >= root.Threshold {
		// The switch: the head last, then the pending file goes. A crash
		// between them leaves a pending file whose head is the channel's:
		// settled removes it.
		if err := WriteFileAtomic(filepath.Join(repoDir, filepath.FromSlash(HeadPath(channel))), p.Head, 0o644); err != nil {
			return nil, fmt.Errorf("sign %s %s: %w", channel, p.Version, err)
		}
		if err := os.Remove(filepath.Join(repoDir, filepath.FromSlash(PendingPath(channel)))); err != nil {
			return nil, fmt.Errorf("sign %s %s: head switched, but: %w", channel, p.Version, err)
		}
		st.Stage, st.Unsigned = "done", nil
		return st, nil
	}
	if err := writePending(repoDir, p); err != nil {
		return nil, fmt.Errorf("sign %s %s: %w", channel, p.Version, err)
	}
	return st, nil
}
