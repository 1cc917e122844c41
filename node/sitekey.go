package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/patchmesh/patchmesh/manifest/repo"
)

// SiteKeySize is the size of a site key: an AES-256 key for memberlist's keyring.
const SiteKeySize = 32

// GenerateSiteKey writes a new random site key to path (mode 0600). It refuses to
// overwrite an existing file, which would split a site in two.
func GenerateSiteKey(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("site key %s already exists; not overwriting it", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("site key %s: %w", path, err)
	}
	key := make([]byte, SiteKeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("site key: %w", err)
	}
	text := "patchmesh-site-key:" + base64.StdEncoding.EncodeToString(key) + "\n"
	return repo.WriteFileAtomic(path, []byte(text), 0o600)
}

// LoadSiteKey reads a site key written by GenerateSiteKey.
func LoadSiteKey(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("site key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("site key %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
	}
	if st.Size() > 1024 {
		return nil, fmt.Errorf("site key %s: not a site key (too large)", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("site key: %w", err)
	}
	text, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "patchmesh-site-key:")
	if !ok {
		return nil, fmt.Errorf("site key %s: not a site key (make one with: patchmesh keygen --site --out FILE)", path)
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(key) != SiteKeySize {
		return nil, fmt.Errorf("site key %s: want %d base64 bytes", path, SiteKeySize)
	}
	return key, nil
}

// siteFingerprint names a site without revealing its key.
func siteFingerprint(key []byte) string {
	h := sha256.Sum256(append([]byte("patchmesh site id\x00"), key...))
	return hex.EncodeToString(h[:4])
}
