package manifest

import (
	"errors"
	"fmt"
	"time"
)

var errNoRoot = errors.New("no trust root")

// VerifyHead verifies a head envelope against r at time now: type, size cap,
// signatures and threshold, strict decoding, validity and expiry.
func (r *TrustRoot) VerifyHead(envelope []byte, now time.Time) (*Head, error) {
	payload, err := r.open(envelope, TypeHead, MaxHeadSize, now)
	if err != nil {
		return nil, fmt.Errorf("verify head: %w", err)
	}
	var h Head
	if err := decodeStrict(payload, &h); err != nil {
		return nil, fmt.Errorf("verify head: %w", err)
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("verify head: %w", err)
	}
	if !now.Before(h.Expires) {
		return nil, fmt.Errorf("verify head: head of channel %s (sequence %d) expired at %s, it is now %s: check this machine's clock, or ask the publisher to re-sign the head: %w",
			h.Channel, h.Sequence, h.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrExpired)
	}
	return &h, nil
}

// VerifyManifest verifies a manifest envelope against r at time now: type, size cap,
// signatures and threshold, strict decoding, Validate and expiry.
func (r *TrustRoot) VerifyManifest(envelope []byte, now time.Time) (*Manifest, error) {
	payload, err := r.open(envelope, TypeManifest, MaxManifestSize, now)
	if err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	var m Manifest
	if err := decodeStrict(payload, &m); err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	if !now.Before(m.Expires) {
		return nil, fmt.Errorf("verify manifest: manifest %s %s (sequence %d) expired at %s, it is now %s: check this machine's clock, or ask the publisher to re-sign it: %w",
			m.Channel, m.Version, m.Sequence, m.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrExpired)
	}
	return &m, nil
}

// open checks the envelope and its signatures and returns the signed payload.
func (r *TrustRoot) open(envelope []byte, typ string, max int, now time.Time) ([]byte, error) {
	if r == nil {
		return nil, errNoRoot
	}
	if err := r.checkFresh(now); err != nil {
		return nil, err
	}
	env, err := decodeEnvelope(envelope, typ, max)
	if err != nil {
		return nil, err
	}
	if err := verifySignatures(env, r.Keys, r.Threshold); err != nil {
		return nil, err
	}
	return env.Payload, nil
}

// CheckHead reports whether m is the manifest h points to (ErrMismatch if not).
func CheckHead(h *Head, m *Manifest) error {
	if h.Channel != m.Channel || h.Version != m.Version || h.Sequence != m.Sequence {
		return fmt.Errorf("head points to %s %s (sequence %d) but the manifest is %s %s (sequence %d); a mirror may be half updated, try another source: %w",
			h.Channel, h.Version, h.Sequence, m.Channel, m.Version, m.Sequence, ErrMismatch)
	}
	return nil
}

// CheckNewer refuses seq below highestSeen (ErrRollback). Equal is the same release.
func CheckNewer(highestSeen, seq uint64) error {
	if seq < highestSeen {
		return fmt.Errorf("sequence %d is older than sequence %d already seen; the source serves stale metadata, try another source: %w", seq, highestSeen, ErrRollback)
	}
	return nil
}
