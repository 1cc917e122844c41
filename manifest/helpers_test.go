package manifest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/patchmesh/patchmesh/manifest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden and the fuzz seed corpora")

// now is the verification time of the tests: the golden documents are valid then.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// key returns a deterministic test key (seed bytes all i).
func key(t testing.TB, i byte) manifest.PrivateKey {
	t.Helper()
	var k manifest.PrivateKey
	text := "ed25519-private:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{i}, 32))
	if err := k.UnmarshalText([]byte(text)); err != nil {
		t.Fatal(err)
	}
	return k
}

func pubs(t testing.TB, ids ...byte) []manifest.PublicKey {
	var out []manifest.PublicKey
	for _, i := range ids {
		out = append(out, key(t, i).Public())
	}
	return out
}

func privs(t testing.TB, ids ...byte) []manifest.PrivateKey {
	var out []manifest.PrivateKey
	for _, i := range ids {
		out = append(out, key(t, i))
	}
	return out
}

func chunkOf(data string) manifest.ChunkRef {
	h, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return manifest.ChunkRef{CID: cid.NewCidV1(cid.Raw, h), Size: uint32(len(data))}
}

func fileOf(path string, mode uint32, chunks ...string) manifest.File {
	f := manifest.File{Path: path, Mode: mode}
	var all []byte
	for _, c := range chunks {
		f.Chunks = append(f.Chunks, chunkOf(c))
		f.Size += int64(len(c))
		all = append(all, c...)
	}
	sum := sha256.Sum256(all)
	f.SHA256 = hex.EncodeToString(sum[:])
	return f
}

// sampleManifest is a small valid release: files, an empty file, a symlink, hooks.
func sampleManifest() *manifest.Manifest {
	return &manifest.Manifest{
		Channel:  "stable",
		Version:  "1.4.2",
		Sequence: 7,
		Created:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Expires:  time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Target:   manifest.Target{OS: []string{"linux"}, Arch: []string{"amd64", "arm64"}, Replaces: []string{"1.*"}},
		Files: []manifest.File{
			fileOf("bin/agent", 0o755, "chunk one of the agent", "chunk two"),
			fileOf("etc/agent.conf", 0o644, "listen = 127.0.0.1"),
			fileOf("share/empty", 0o644),
			{Path: "bin/current", Mode: 0o777, Link: "agent"},
			fileOf("hooks/check.sh", 0o755, "#!/bin/sh\nexit 0\n"),
		},
		Hooks: manifest.Hooks{HealthCheck: "hooks/check.sh"},
	}
}

func sampleHead(t testing.TB, manifestEnv []byte) *manifest.Head {
	return &manifest.Head{
		Channel:  "stable",
		Version:  "1.4.2",
		Sequence: 7,
		Manifest: manifest.NewRef("manifests/stable/7.json", manifestEnv),
		Issued:   time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC),
		Expires:  time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC),
	}
}

// rootV1 trusts keys 0, 1, 2 with threshold 2.
func rootV1(t testing.TB) *manifest.TrustRoot {
	r, err := manifest.NewTrustRoot(2, pubs(t, 0, 1, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// goldenDocs builds the golden envelopes. Ed25519 is deterministic, so the same
// code always yields the same bytes: a change here is a change of the wire format.
func goldenDocs(t testing.TB) map[string][]byte {
	docs := map[string][]byte{}
	v1 := rootV1(t)
	docs["root-v1.json"] = must[[]byte](t)(v1.Sign(privs(t, 0, 1)...))
	v2 := must[*manifest.TrustRoot](t)(v1.Next(2, pubs(t, 1, 2, 3)...))
	docs["root-v2.json"] = must[[]byte](t)(v2.Sign(privs(t, 0, 1, 2)...))
	v3 := must[*manifest.TrustRoot](t)(v2.Next(1, pubs(t, 3, 4)...))
	docs["root-v3.json"] = must[[]byte](t)(v3.Sign(privs(t, 2, 3, 4)...))
	payload := must[[]byte](t)(sampleManifest().Marshal())
	docs["manifest.json"] = must[[]byte](t)(manifest.Sign(manifest.TypeManifest, payload, privs(t, 0, 1)...))
	head := must[[]byte](t)(sampleHead(t, docs["manifest.json"]).Marshal())
	docs["head.json"] = must[[]byte](t)(manifest.Sign(manifest.TypeHead, head, privs(t, 0, 1)...))
	return docs
}

func golden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	return b
}

// envelopeOf decodes an envelope for tampering.
func envelopeOf(t testing.TB, data []byte) *manifest.Envelope {
	t.Helper()
	env, err := manifest.DecodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func encode(t testing.TB, env *manifest.Envelope) []byte {
	t.Helper()
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeCorpus writes one seed in the go test fuzz v1 format.
func writeCorpus(t testing.TB, target, name string, data []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
