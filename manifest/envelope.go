package manifest

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
)

// Envelope types.
const (
	TypeManifest = "patchmesh/manifest/v1"
	TypeHead     = "patchmesh/head/v1"
	TypeRoot     = "patchmesh/root/v1"
)

// Size caps of envelope files (the bytes as fetched), checked before any parsing.
// Fetchers read at most Max…Size+1 bytes.
const (
	MaxManifestSize = 64 << 20
	MaxHeadSize     = 64 << 10
	MaxRootSize     = 1 << 20
)

// MaxSignatures caps the signatures in one envelope (and MaxKeys the keys of a root),
// bounding the work a hostile envelope can cause.
const (
	MaxSignatures = 64
	MaxKeys       = 64
)

// Envelope is a signed document: Signatures cover the pre-authentication encoding
// of Type and the exact Payload bytes.
type Envelope struct {
	Type       string      `json:"type"`
	Payload    []byte      `json:"payload"`
	Signatures []Signature `json:"signatures"`
}

// Signature is one key's Ed25519 signature over an envelope.
type Signature struct {
	KeyID KeyID  `json:"keyid"`
	Sig   []byte `json:"sig"`
}

// pae is the pre-authentication encoding (after DSSE): a domain tag, then the type and
// payload each prefixed by its length, so no (type, payload) pair encodes like another.
func pae(typ string, payload []byte) []byte {
	const tag = "patchmesh-sig-v1 "
	b := make([]byte, 0, len(tag)+len(typ)+len(payload)+44)
	b = append(b, tag...)
	b = strconv.AppendInt(b, int64(len(typ)), 10)
	b = append(b, ' ')
	b = append(b, typ...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	return append(b, payload...)
}

func maxEnvelope(typ string) int {
	switch typ {
	case TypeHead:
		return MaxHeadSize
	case TypeRoot:
		return MaxRootSize
	default:
		return MaxManifestSize
	}
}

// Sign wraps payload in an envelope of type typ signed by every key (once per key)
// and returns the envelope's JSON. It refuses an envelope over its type's size cap,
// which nodes would refuse anyway.
func Sign(typ string, payload []byte, keys ...PrivateKey) ([]byte, error) {
	if typ == "" {
		return nil, fmt.Errorf("sign: empty envelope type: %w", ErrMalformed)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("sign %s: no signing key given", typ)
	}
	env := Envelope{Type: typ, Payload: payload}
	msg := pae(typ, payload)
	for _, k := range keys {
		if k.IsZero() {
			return nil, fmt.Errorf("sign %s: empty signing key", typ)
		}
		env.Signatures = setSignature(env.Signatures, Signature{KeyID: k.ID(), Sig: k.sign(msg)})
	}
	return encodeEnvelope(&env)
}

// AddSignature adds k's signature to an envelope signed by others (co-signing toward a
// threshold). A signature k already made is replaced. Other signatures are kept as
// they are: this function holds no trust root to judge them.
func AddSignature(envelope []byte, k PrivateKey) ([]byte, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("add signature: empty signing key")
	}
	env, err := DecodeEnvelope(envelope)
	if err != nil {
		return nil, fmt.Errorf("add signature: %w", err)
	}
	if len(envelope) > maxEnvelope(env.Type) {
		return nil, fmt.Errorf("add signature: %s envelope of %d bytes is over the cap of %d: %w", env.Type, len(envelope), maxEnvelope(env.Type), ErrTooLarge)
	}
	sig := Signature{KeyID: k.ID(), Sig: k.sign(pae(env.Type, env.Payload))}
	env.Signatures = setSignature(env.Signatures, sig)
	out, err := encodeEnvelope(env)
	if err != nil {
		return nil, fmt.Errorf("add signature: %w", err)
	}
	return out, nil
}

func setSignature(sigs []Signature, s Signature) []Signature {
	for i := range sigs {
		if sigs[i].KeyID == s.KeyID {
			sigs[i] = s
			return sigs
		}
	}
	return append(sigs, s)
}

func encodeEnvelope(env *Envelope) ([]byte, error) {
	if len(env.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("sign %s: %d signatures, at most %d: %w", env.Type, len(env.Signatures), MaxSignatures, ErrTooLarge)
	}
	out, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode %s envelope: %w", env.Type, err)
	}
	if max := maxEnvelope(env.Type); len(out) > max {
		return nil, fmt.Errorf("encode %s envelope: %d bytes, over the cap of %d that nodes enforce: %w", env.Type, len(out), max, ErrTooLarge)
	}
	return out, nil
}

// DecodeEnvelope strictly decodes an envelope of any type without verifying it
// (for inspection and co-signing). Input over MaxManifestSize is refused unread.
func DecodeEnvelope(data []byte) (*Envelope, error) {
	return decodeEnvelope(data, "", MaxManifestSize)
}

// decodeEnvelope checks the cap, decodes strictly and, if typ is set, checks the type.
func decodeEnvelope(data []byte, typ string, max int) (*Envelope, error) {
	if len(data) > max {
		return nil, fmt.Errorf("envelope of %d bytes is over the cap of %d: %w", len(data), max, ErrTooLarge)
	}
	var env Envelope
	if err := decodeStrict(data, &env); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	if env.Type == "" {
		return nil, fmt.Errorf("decode envelope: no type: %w", ErrMalformed)
	}
	if typ != "" && env.Type != typ {
		return nil, fmt.Errorf("envelope holds a %q, expected a %q: %w", env.Type, typ, ErrMalformed)
	}
	if len(env.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("envelope has %d signatures, at most %d: %w", len(env.Signatures), MaxSignatures, ErrTooLarge)
	}
	return &env, nil
}

// verifySignatures checks that a threshold of distinct keys from keys made valid
// signatures. Unknown keys are not counted; a bad signature by a trusted key is
// reported only if the threshold is not met without it.
func verifySignatures(env *Envelope, keys map[KeyID]PublicKey, threshold int) error {
	if threshold < 1 {
		return fmt.Errorf("threshold %d is below 1: %w", threshold, ErrThreshold)
	}
	msg := pae(env.Type, env.Payload)
	var valid, bad, unknown []KeyID
	counted := make(map[KeyID]bool, len(env.Signatures))
	for _, s := range env.Signatures {
		pub, ok := keys[s.KeyID]
		if !ok {
			unknown = append(unknown, s.KeyID)
			continue
		}
		if counted[s.KeyID] {
			continue
		}
		if len(s.Sig) == ed25519.SignatureSize && pub.verify(msg, s.Sig) {
			counted[s.KeyID] = true
			valid = append(valid, s.KeyID)
			if len(valid) >= threshold {
				return nil
			}
			continue
		}
		bad = append(bad, s.KeyID)
	}
	err := fmt.Errorf("%d valid signature(s) by trusted keys, %d required; the publisher must sign with more trusted keys, or this trust root is out of date: %w",
		len(valid), threshold, ErrThreshold)
	if len(bad) > 0 {
		err = fmt.Errorf("%w; signatures that do not verify (document altered in transit or storage?) by %s: %w", err, shortIDs(bad), ErrSignature)
	}
	if len(unknown) > 0 {
		err = fmt.Errorf("%w; ignored signatures by keys not in the trust root: %s: %w", err, shortIDs(unknown), ErrUnknownKey)
	}
	return err
}

// shortIDs lists at most a few ids: a hostile envelope must not make a huge message.
func shortIDs(ids []KeyID) string {
	const n = 4
	s := ""
	for i, id := range ids {
		if i == n {
			return s + fmt.Sprintf(" and %d more", len(ids)-n)
		}
		if i > 0 {
			s += ", "
		}
		if len(id) > 32 {
			id = id[:32] + "…"
		}
		s += strconv.Quote(string(id))
	}
	return s
}

// UnwrapEnvelope returns an envelope's content in a form that compresses well
// against an earlier envelope's: its payload as raw bytes rather than base64,
// whose every character shifts after an insertion. WrapEnvelope makes the
// envelope's exact bytes back.
func UnwrapEnvelope(data []byte) ([]byte, error) {
	env, err := DecodeEnvelope(data)
	if err != nil {
		return nil, err
	}
	hdr, err := json.Marshal(Envelope{Type: env.Type, Signatures: env.Signatures})
	if err != nil {
		return nil, fmt.Errorf("unwrap envelope: %w", err)
	}
	out := binary.AppendUvarint(make([]byte, 0, len(hdr)+len(env.Payload)+8), uint64(len(hdr)))
	return append(append(out, hdr...), env.Payload...), nil
}

// WrapEnvelope makes the envelope an UnwrapEnvelope result came from. The
// caller checks the bytes against the digest it trusts; nothing is verified here.
func WrapEnvelope(data []byte) ([]byte, error) {
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)-k) {
		return nil, fmt.Errorf("wrap envelope: bad header length: %w", ErrMalformed)
	}
	var env Envelope
	if err := decodeStrict(data[k:k+int(n)], &env); err != nil {
		return nil, fmt.Errorf("wrap envelope: %w", err)
	}
	env.Payload = data[k+int(n):]
	out, err := json.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("wrap envelope: %w", err)
	}
	return out, nil
}
