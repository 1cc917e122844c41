package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
)

const (
	publicPrefix  = "ed25519:"
	privatePrefix = "ed25519-private:" // distinct, so a private key pasted as a trusted key is refused
	maxKeyFile    = 4 << 10
)

// KeyID names a public key: hex of the first 16 bytes of SHA-256 of the key (32 chars).
type KeyID string

// PublicKey is an Ed25519 public key. The zero value is no key.
// Its text form is "ed25519:<base64>".
type PublicKey struct {
	k [ed25519.PublicKeySize]byte
}

// PrivateKey is an Ed25519 signing key. The zero value is no key.
// Its text form is "ed25519-private:<base64 seed>"; String and LogValue redact it.
type PrivateKey struct {
	k ed25519.PrivateKey
}

// GenerateKey returns a new random signing key.
func GenerateKey() (PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generate key: %w", err)
	}
	return PrivateKey{k: priv}, nil
}

// Public returns the public half of k (the zero PublicKey if k is zero).
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	if len(k.k) == ed25519.PrivateKeySize {
		copy(p.k[:], k.k[ed25519.SeedSize:])
	}
	return p
}

// IsZero reports whether k holds no key.
func (k PrivateKey) IsZero() bool { return len(k.k) != ed25519.PrivateKeySize }

// ID returns the key id of k's public key.
func (k PrivateKey) ID() KeyID { return k.Public().ID() }

func (k PrivateKey) sign(msg []byte) []byte { return ed25519.Sign(k.k, msg) }

// String redacts the key, so it never lands in a log or an error message.
func (k PrivateKey) String() string {
	if k.IsZero() {
		return "ed25519-private:<none>"
	}
	return "ed25519-private:<redacted " + string(k.ID()) + ">"
}

// GoString redacts the key for %#v.
func (k PrivateKey) GoString() string { return k.String() }

// LogValue redacts the key in slog output (the JSON handler would otherwise use MarshalText).
func (k PrivateKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalText returns "ed25519-private:<base64 seed>".
func (k PrivateKey) MarshalText() ([]byte, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("marshal private key: no key: %w", ErrMalformed)
	}
	return []byte(privatePrefix + base64.StdEncoding.EncodeToString(k.k.Seed())), nil
}

// UnmarshalText parses the form written by MarshalText.
func (k *PrivateKey) UnmarshalText(text []byte) error {
	s, ok := bytes.CutPrefix(text, []byte(privatePrefix))
	if !ok {
		if bytes.HasPrefix(text, []byte(publicPrefix)) {
			return fmt.Errorf("parse private key: this is a public key (%s...), not a signing key: %w", publicPrefix, ErrMalformed)
		}
		return fmt.Errorf("parse private key: want prefix %q: %w", privatePrefix, ErrMalformed)
	}
	seed, err := base64.StdEncoding.Strict().DecodeString(string(s))
	if err != nil || len(seed) != ed25519.SeedSize {
		return fmt.Errorf("parse private key: want %d bytes of base64: %w", ed25519.SeedSize, ErrMalformed)
	}
	k.k = ed25519.NewKeyFromSeed(seed)
	return nil
}

// IsZero reports whether k holds no key.
func (k PublicKey) IsZero() bool { return k.k == [ed25519.PublicKeySize]byte{} }

// ID returns the key id of k ("" for the zero key).
func (k PublicKey) ID() KeyID {
	if k.IsZero() {
		return ""
	}
	sum := sha256.Sum256(k.k[:])
	return KeyID(hex.EncodeToString(sum[:16]))
}

// Equal reports whether k and o are the same key.
func (k PublicKey) Equal(o PublicKey) bool { return k.k == o.k }

// String returns the text form.
func (k PublicKey) String() string {
	if k.IsZero() {
		return publicPrefix + "<none>"
	}
	return publicPrefix + base64.StdEncoding.EncodeToString(k.k[:])
}

func (k PublicKey) verify(msg, sig []byte) bool { return ed25519.Verify(k.k[:], msg, sig) }

// MarshalText returns "ed25519:<base64>".
func (k PublicKey) MarshalText() ([]byte, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("marshal public key: no key: %w", ErrMalformed)
	}
	return []byte(k.String()), nil
}

// UnmarshalText parses "ed25519:<base64>".
func (k *PublicKey) UnmarshalText(text []byte) error {
	s, ok := bytes.CutPrefix(text, []byte(publicPrefix))
	if !ok {
		if bytes.HasPrefix(text, []byte(privatePrefix)) {
			// Say it without echoing the secret.
			return fmt.Errorf("parse public key: this is a PRIVATE key; give the public key (patchmesh keygen prints it): %w", ErrMalformed)
		}
		return fmt.Errorf("parse public key: want prefix %q: %w", publicPrefix, ErrMalformed)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(string(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return fmt.Errorf("parse public key: want %d bytes of base64: %w", ed25519.PublicKeySize, ErrMalformed)
	}
	var p PublicKey
	copy(p.k[:], b)
	if p.IsZero() {
		return fmt.Errorf("parse public key: all-zero key: %w", ErrMalformed)
	}
	*k = p
	return nil
}

// SaveKey writes k to a new file at path with mode 0600. It refuses to overwrite an
// existing file: losing a signing key is not recoverable. The file appears complete
// or not at all (temporary file, fsync, then a no-replace link into place).
func SaveKey(path string, k PrivateKey) (err error) {
	text, err := k.MarshalText()
	if err != nil {
		return fmt.Errorf("save key %s: %w", path, err)
	}
	text = append(text, '\n')
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("save key %s: file exists; refusing to overwrite a key (move it away first): %w", path, fs.ErrExist)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".patchmesh-key-*.tmp") // created 0600
	if err != nil {
		return fmt.Errorf("save key %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the link, this only drops the temporary name
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		f.Close()
		return fmt.Errorf("save key %s: %w", path, err)
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		return fmt.Errorf("save key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save key %s: %w", path, err)
	}
	// A hard link is a rename that never replaces: it fails if path appeared meanwhile.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("save key %s: file exists; refusing to overwrite a key (move it away first): %w", path, fs.ErrExist)
		}
		// File systems without hard links: check, then rename (a small race, not a silent loss).
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("save key %s: file exists; refusing to overwrite a key (move it away first): %w", path, fs.ErrExist)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("save key %s: %w", path, err)
		}
	}
	return fsutil.SyncDir(dir)
}

// LoadKey reads a key written by SaveKey. It refuses a key file that group or others
// may read, as ssh does, since anyone who reads it can publish releases.
func LoadKey(path string) (PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("load key %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return PrivateKey{}, fmt.Errorf("load key %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return PrivateKey{}, fmt.Errorf("load key %s: not a regular file: %w", path, ErrMalformed)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return PrivateKey{}, fmt.Errorf("load key %s: permissions %04o let other users read the signing key; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return PrivateKey{}, fmt.Errorf("load key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return PrivateKey{}, fmt.Errorf("load key %s: over %d bytes, not a key file: %w", path, maxKeyFile, ErrTooLarge)
	}
	var k PrivateKey
	if err := k.UnmarshalText(bytes.TrimSpace(data)); err != nil {
		return PrivateKey{}, fmt.Errorf("load key %s: %w", path, err)
	}
	return k, nil
}
