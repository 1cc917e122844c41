package manifest

import (
	"crypto/ed25519"
	"fmt"
	"slices"
)

// CheckSigners reports whether keys can sign for r: every key must be one of r's
// (ErrUnknownKey names those that are not), and together they must reach r's
// threshold (ErrThreshold). A publisher calls it before writing anything, since
// nodes would refuse what a foreign key or too few keys sign.
func (r *TrustRoot) CheckSigners(keys ...PrivateKey) error {
	var foreign []KeyID
	distinct := map[KeyID]bool{}
	for _, k := range keys {
		id := k.ID()
		if _, ok := r.Keys[id]; !ok {
			foreign = append(foreign, id)
			continue
		}
		distinct[id] = true
	}
	if len(foreign) > 0 {
		return fmt.Errorf("signing key(s) %s not in trust root version %d (its keys: %s): nodes would refuse what they sign; sign with the root's keys, or rotate the root first (patchmesh trust rotate): %w",
			shortIDs(foreign), r.Version, shortIDs(r.KeyIDs()), ErrUnknownKey)
	}
	if len(distinct) < r.Threshold {
		return fmt.Errorf("%d of the %d signatures trust root version %d requires: give more --key files of its keys (%s): %w",
			len(distinct), r.Threshold, r.Version, shortIDs(r.KeyIDs()), ErrThreshold)
	}
	return nil
}

// SignedBy returns the keys of r whose signatures on envelope verify, sorted. It
// checks no threshold and no expiry: it tells a co-signer what is still missing.
func (r *TrustRoot) SignedBy(envelope []byte) ([]KeyID, error) {
	env, err := decodeEnvelope(envelope, "", maxEnvelopeAny)
	if err != nil {
		return nil, fmt.Errorf("signed by: %w", err)
	}
	msg := pae(env.Type, env.Payload)
	var ids []KeyID
	for _, s := range env.Signatures {
		pub, ok := r.Keys[s.KeyID]
		if !ok || slices.Contains(ids, s.KeyID) {
			continue
		}
		if len(s.Sig) == ed25519.SignatureSize && pub.verify(msg, s.Sig) {
			ids = append(ids, s.KeyID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// maxEnvelopeAny is the largest envelope of any type.
const maxEnvelopeAny = MaxManifestSize

// VerifyManifestKept verifies a manifest a repository keeps after its channel
// moved on: as VerifyManifest, signatures and threshold included, but without
// expiry, which matters to a node choosing what to install, not to whether the
// stored bytes are the ones signed.
func (r *TrustRoot) VerifyManifestKept(envelope []byte) (*Manifest, error) {
	if r == nil {
		return nil, fmt.Errorf("verify manifest: %w", errNoRoot)
	}
	env, err := decodeEnvelope(envelope, TypeManifest, MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	if err := verifySignatures(env, r.Keys, r.Threshold); err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	var m Manifest
	if err := decodeStrict(env.Payload, &m); err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	return &m, nil
}
