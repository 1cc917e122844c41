package manifest

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// TrustRoot is the set of keys a node trusts and the threshold of them that must sign.
type TrustRoot struct {
	Version   uint64              `json:"version"` // starts at 1, +1 per rotation
	Threshold int                 `json:"threshold"`
	Keys      map[KeyID]PublicKey `json:"keys"`
	Expires   time.Time           `json:"expires,omitzero"` // zero: never
}

// NewTrustRoot returns a version 1 root of keys (a key given twice counts once).
func NewTrustRoot(threshold int, keys ...PublicKey) (*TrustRoot, error) {
	r := &TrustRoot{Version: 1, Threshold: threshold, Keys: make(map[KeyID]PublicKey, len(keys))}
	for _, k := range keys {
		if k.IsZero() {
			return nil, fmt.Errorf("new trust root: empty key: %w", ErrMalformed)
		}
		r.Keys[k.ID()] = k
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("new trust root: %w", err)
	}
	return r, nil
}

// Next returns the root that would rotate r to keys and threshold: version r.Version+1.
// It must be signed by a threshold of r's keys and by a threshold of its own.
func (r *TrustRoot) Next(threshold int, keys ...PublicKey) (*TrustRoot, error) {
	n, err := NewTrustRoot(threshold, keys...)
	if err != nil {
		return nil, err
	}
	n.Version = r.Version + 1
	return n, nil
}

// Validate checks the version, the threshold (1..number of keys) and the key ids.
func (r *TrustRoot) Validate() error {
	if r.Version == 0 {
		return fmt.Errorf("trust root: version must be at least 1: %w", ErrMalformed)
	}
	if len(r.Keys) > MaxKeys {
		return fmt.Errorf("trust root version %d: %d keys, at most %d: %w", r.Version, len(r.Keys), MaxKeys, ErrMalformed)
	}
	if r.Threshold < 1 || r.Threshold > len(r.Keys) {
		return fmt.Errorf("trust root version %d: threshold %d must be between 1 and its %d key(s): %w", r.Version, r.Threshold, len(r.Keys), ErrMalformed)
	}
	for id, k := range r.Keys {
		if k.IsZero() || k.ID() != id {
			return fmt.Errorf("trust root version %d: key listed as %q has id %q: %w", r.Version, id, k.ID(), ErrMalformed)
		}
	}
	return nil
}

// KeyIDs returns the ids of r's keys, sorted.
func (r *TrustRoot) KeyIDs() []KeyID {
	ids := make([]KeyID, 0, len(r.Keys))
	for id := range r.Keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Marshal validates r and returns its compact JSON (keys sorted by id): the payload to sign.
func (r *TrustRoot) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("marshal trust root: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("marshal trust root version %d: %w", r.Version, err)
	}
	return b, nil
}

// Sign returns the envelope of r signed by keys. A pinned root needs a threshold of
// its own keys; a rotation also needs a threshold of the previous root's keys.
func (r *TrustRoot) Sign(keys ...PrivateKey) ([]byte, error) {
	b, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	return Sign(TypeRoot, b, keys...)
}

// ParseTrustRoot verifies a root envelope that is pinned (trusted by configuration):
// it must be well formed and signed by a threshold of its own keys. Expiry is checked
// when the root verifies documents.
func ParseTrustRoot(envelope []byte) (*TrustRoot, error) {
	r, env, err := decodeRoot(envelope)
	if err != nil {
		return nil, err
	}
	if err := verifySignatures(env, r.Keys, r.Threshold); err != nil {
		return nil, fmt.Errorf("trust root version %d: not signed by a threshold of its own keys: %w", r.Version, err)
	}
	return r, nil
}

// VerifyNext verifies a rotation from r: the new root's version must be r.Version+1
// (apply rotations one at a time) and it must be signed by a threshold of r's keys
// and by a threshold of its own.
func (r *TrustRoot) VerifyNext(envelope []byte) (*TrustRoot, error) {
	n, env, err := decodeRoot(envelope)
	if err != nil {
		return nil, err
	}
	switch {
	case n.Version <= r.Version:
		return nil, fmt.Errorf("trust root version %d is not newer than the trusted version %d: %w", n.Version, r.Version, ErrRollback)
	case n.Version != r.Version+1:
		return nil, fmt.Errorf("trust root version %d: the trusted version is %d, so apply version %d first: %w", n.Version, r.Version, r.Version+1, ErrRootVersion)
	}
	if err := verifySignatures(env, r.Keys, r.Threshold); err != nil {
		return nil, fmt.Errorf("trust root version %d: not signed by a threshold of the keys of version %d: %w", n.Version, r.Version, err)
	}
	if err := verifySignatures(env, n.Keys, n.Threshold); err != nil {
		return nil, fmt.Errorf("trust root version %d: not signed by a threshold of its own keys: %w", n.Version, err)
	}
	return n, nil
}

func decodeRoot(envelope []byte) (*TrustRoot, *Envelope, error) {
	env, err := decodeEnvelope(envelope, TypeRoot, MaxRootSize)
	if err != nil {
		return nil, nil, fmt.Errorf("trust root: %w", err)
	}
	var r TrustRoot
	if err := decodeStrict(env.Payload, &r); err != nil {
		return nil, nil, fmt.Errorf("trust root: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, nil, err
	}
	return &r, env, nil
}

// checkFresh refuses a root past its expiry.
func (r *TrustRoot) checkFresh(now time.Time) error {
	if !r.Expires.IsZero() && !now.Before(r.Expires) {
		return fmt.Errorf("trust root version %d expired at %s, it is now %s: check this machine's clock, or install a newer trust root: %w",
			r.Version, r.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrExpired)
	}
	return nil
}
