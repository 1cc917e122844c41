package manifest_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/patchmesh/patchmesh/manifest"
)

func TestKeyText(t *testing.T) {
	k, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public()
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(string(pub.ID())) {
		t.Errorf("key id %q is not 32 hex chars", pub.ID())
	}
	pubText := must[[]byte](t)(pub.MarshalText())
	if !bytes.HasPrefix(pubText, []byte("ed25519:")) {
		t.Errorf("public key text %q lacks ed25519: prefix", pubText)
	}
	var pub2 manifest.PublicKey
	if err := pub2.UnmarshalText(pubText); err != nil || !pub2.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
	privText := must[[]byte](t)(k.MarshalText())
	var k2 manifest.PrivateKey
	if err := k2.UnmarshalText(privText); err != nil || k2.ID() != k.ID() {
		t.Fatalf("private key round trip: %v", err)
	}

	// A private key pasted where a trusted public key belongs is refused, without echoing it.
	err = pub2.UnmarshalText(privText)
	if !errors.Is(err, manifest.ErrMalformed) || !strings.Contains(err.Error(), "PRIVATE") {
		t.Errorf("private key as public key: %v", err)
	}
	if strings.Contains(err.Error(), string(privText[len("ed25519-private:"):])) {
		t.Errorf("error message leaks the private key: %v", err)
	}
	if err := k2.UnmarshalText(pubText); !errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("public key as private key: %v", err)
	}

	for _, bad := range []string{"", "ed25519:", "ed25519:AAAA", "rsa:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"ed25519:" + base64.StdEncoding.EncodeToString(make([]byte, 32))} {
		if err := pub2.UnmarshalText([]byte(bad)); !errors.Is(err, manifest.ErrMalformed) {
			t.Errorf("public key %q: got %v, want ErrMalformed", bad, err)
		}
	}
}

func TestPrivateKeyNeverPrinted(t *testing.T) {
	k := key(t, 9)
	secret := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("signing", "key", k)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("signing", "key", k)
	out := fmt.Sprintf("%v %s %+v %#v %v", k, k, k, k, []manifest.PrivateKey{k}) + logs.String()
	if strings.Contains(out, secret) || strings.Contains(out, "9, 9, 9") || strings.Contains(out, "0x9, 0x9") {
		t.Fatalf("private key printed: %s", out)
	}
	if !strings.Contains(out, string(k.ID())) {
		t.Errorf("redacted form should name the key id: %s", out)
	}
}

func TestSaveLoadKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "publisher.key")
	k := key(t, 1)
	if err := manifest.SaveKey(path, k); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %o, want 0600", st.Mode().Perm())
	}
	got, err := manifest.LoadKey(path)
	if err != nil || got.ID() != k.ID() {
		t.Fatalf("load: %v", err)
	}

	// Never overwrite a key: the old one stays, byte for byte.
	before, _ := os.ReadFile(path)
	err = manifest.SaveKey(path, key(t, 2))
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("overwrite: got %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("existing key file was changed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.LoadKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("world-readable key: got %v, want advice to chmod 600", err)
	}

	tests := []struct {
		name    string
		content string
	}{
		{"garbage", "not a key\n"},
		{"public key", key(t, 3).Public().String() + "\n"},
		{"too large", strings.Repeat("x", 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := manifest.LoadKey(p); err == nil {
				t.Error("accepted")
			}
		})
	}
}
