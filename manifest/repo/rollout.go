package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

// ErrNoRollout: the channel has no rollout document.
var ErrNoRollout = errors.New("no rollout")

// RolloutPath is the path of a channel's rollout document.
func RolloutPath(channel string) string { return path.Join("channels", channel, "rollout.json") }

// WriteRollout signs r and replaces the channel's rollout document, atomically.
func WriteRollout(repoDir string, r *manifest.Rollout, keys ...manifest.PrivateKey) error {
	payload, err := r.Marshal()
	if err != nil {
		return fmt.Errorf("write rollout %s: %w", r.Channel, err)
	}
	env, err := manifest.Sign(manifest.TypeRollout, payload, keys...)
	if err != nil {
		return fmt.Errorf("sign rollout %s: %w", r.Channel, err)
	}
	return WriteFileAtomic(filepath.Join(repoDir, filepath.FromSlash(RolloutPath(r.Channel))), env, 0o644)
}

// NextRolloutSequence returns one more than the sequence of the channel's
// rollout document (1 without one). The sequence is read unverified: it only
// has to grow.
func NextRolloutSequence(repoDir, channel string) (uint64, error) {
	data, err := readLimited(filepath.Join(repoDir, filepath.FromSlash(RolloutPath(channel))), manifest.MaxRolloutSize)
	if errors.Is(err, fs.ErrNotExist) {
		return 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read rollout of %s: %w", channel, err)
	}
	env, err := manifest.DecodeEnvelope(data)
	if err != nil {
		return 0, fmt.Errorf("read rollout of %s: %w", channel, err)
	}
	var seq struct {
		Sequence uint64 `json:"sequence"`
	}
	if err := json.Unmarshal(env.Payload, &seq); err != nil {
		return 0, fmt.Errorf("read rollout of %s: %w", channel, err)
	}
	return seq.Sequence + 1, nil
}

// ReadRollout reads the channel's rollout document and verifies it against the
// repository's own trust root (root.json and its rotations). An expired
// document is still returned, with its signatures checked, so the publisher
// can re-sign it; expired reports that.
func ReadRollout(repoDir, channel string) (r *manifest.Rollout, expired bool, err error) {
	rootEnv, err := readLimited(filepath.Join(repoDir, RootFile), manifest.MaxRootSize)
	if err != nil {
		return nil, false, fmt.Errorf("read rollout of %s: trust root: %w", channel, err)
	}
	root, err := manifest.ParseTrustRoot(rootEnv)
	if err != nil {
		return nil, false, fmt.Errorf("read rollout of %s: trust root: %w", channel, err)
	}
	data, err := readLimited(filepath.Join(repoDir, filepath.FromSlash(RolloutPath(channel))), manifest.MaxRolloutSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("channel %s: %w (publish with --stage to stage a release)", channel, ErrNoRollout)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read rollout of %s: %w", channel, err)
	}
	r, err = root.VerifyRollout(data, time.Now())
	if errors.Is(err, manifest.ErrExpired) {
		// Checked again at a time it was valid: only its age is wrong.
		env, derr := manifest.DecodeEnvelope(data)
		if derr == nil {
			var issued struct {
				Issued time.Time `json:"issued"`
			}
			if json.Unmarshal(env.Payload, &issued) == nil {
				if r, err = root.VerifyRollout(data, issued.Issued); err == nil {
					expired = true
				}
			}
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("read rollout of %s: %w", channel, err)
	}
	if r.Channel != channel {
		return nil, false, fmt.Errorf("read rollout of %s: it names channel %q: %w", channel, r.Channel, manifest.ErrMismatch)
	}
	return r, expired, nil
}

// UpdateRollout applies change to the channel's rollout document and writes it
// signed, with the next sequence, a fresh issue time and expiry ttl, under the
// repository's publish lock.
func UpdateRollout(repoDir, channel string, ttl time.Duration, keys []manifest.PrivateKey, change func(manifest.Rollout, time.Time) (manifest.Rollout, error)) (*manifest.Rollout, error) {
	unlock, err := lockRepo(repoDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cur, _, err := ReadRollout(repoDir, channel)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	next, err := change(*cur, now)
	if err != nil {
		return nil, err
	}
	next.Sequence = cur.Sequence + 1
	next.Issued, next.Expires = now, now.Add(ttl)
	if err := WriteRollout(repoDir, &next, keys...); err != nil {
		return nil, err
	}
	return &next, nil
}

// RolloutTTL is how long a rollout document stays valid by default, like a head.
const RolloutTTL = 7 * 24 * time.Hour
