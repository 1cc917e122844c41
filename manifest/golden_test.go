package manifest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchmesh/patchmesh/manifest"
)

// TestGolden pins the wire format: the golden envelopes must be what the current
// code produces, byte for byte, and must verify. -update rewrites them together with
// the fuzz seed corpora.
func TestGolden(t *testing.T) {
	docs := goldenDocs(t)
	if *update {
		dir := filepath.Join("testdata", "golden")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range docs {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		writeSeeds(t, docs)
	}
	for name, want := range docs {
		if got := golden(t, name); !bytes.Equal(got, want) {
			t.Errorf("%s: the encoding changed (old nodes may refuse new documents); if intended, run with -update\nstored: %.200s\nnow:    %.200s", name, got, want)
		}
	}
	root, err := rootV1(t).VerifyNext(docs["root-v2.json"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.VerifyNext(docs["root-v3.json"]); err != nil {
		t.Fatal(err)
	}
	r1, err := manifest.ParseTrustRoot(docs["root-v1.json"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.VerifyManifest(docs["manifest.json"], now); err != nil {
		t.Fatal(err)
	}
	if _, err := r1.VerifyHead(docs["head.json"], now); err != nil {
		t.Fatal(err)
	}
}
