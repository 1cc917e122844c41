package manifest

import "errors"

// Sentinel errors. Every error returned by this package wraps one of them with what
// was refused and why, so callers use errors.Is and users read the message.
var (
	// ErrSignature: a signature by a trusted key does not verify.
	ErrSignature = errors.New("bad signature")
	// ErrThreshold: fewer distinct trusted keys signed than the trust root requires.
	ErrThreshold = errors.New("not enough valid signatures")
	// ErrUnknownKey: a signature names a key the trust root does not hold.
	ErrUnknownKey = errors.New("signed by a key not in the trust root")
	// ErrExpired: the document (or the trust root) is past its expiry time.
	ErrExpired = errors.New("expired")
	// ErrRollback: the document is older than one already seen.
	ErrRollback = errors.New("rollback refused")
	// ErrRootVersion: a new trust root skips versions; rotations apply one at a time.
	ErrRootVersion = errors.New("trust root version is not the next one")
	// ErrPlatform: the release does not fit this machine's OS, architecture or version.
	ErrPlatform = errors.New("release does not fit this machine")
	// ErrTooLarge: the input is over its size cap; it was not parsed.
	ErrTooLarge = errors.New("too large")
	// ErrMalformed: the input does not decode strictly or breaks a rule of its format.
	ErrMalformed = errors.New("malformed")
	// ErrPath: a file path or symlink target is unsafe.
	ErrPath = errors.New("unsafe path")
	// ErrMismatch: two documents (or a document and its reference) disagree.
	ErrMismatch = errors.New("mismatch")
)
