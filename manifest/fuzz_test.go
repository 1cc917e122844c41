package manifest_test

import (
	"bytes"
	"testing"

	"github.com/patchmesh/patchmesh/manifest"
)

// The fuzz targets feed each input two ways: as an envelope (what a hostile mirror
// sends) and as a payload signed with the test keys (what a buggy or hostile
// publisher signs, which reaches the decoders past the signature check). Nothing may
// panic, and anything accepted must re-marshal, re-sign and re-verify to the same
// document.

// writeSeeds writes the seed corpora from the golden documents (called by -update).
func writeSeeds(t *testing.T, docs map[string][]byte) {
	payload := func(name string) []byte { return envelopeOf(t, docs[name]).Payload }
	for target, names := range map[string][]string{
		"FuzzVerifyManifest": {"manifest.json", "head.json"},
		"FuzzVerifyHead":     {"head.json", "manifest.json"},
		"FuzzParseTrustRoot": {"root-v1.json", "root-v2.json"},
		"FuzzVerifyNext":     {"root-v2.json", "root-v3.json"},
	} {
		for _, name := range names {
			writeCorpus(t, target, "envelope-"+name, docs[name])
			writeCorpus(t, target, "payload-"+name, payload(name))
		}
	}
}

func addSeeds(f *testing.F, names ...string) {
	for _, name := range names {
		b := golden(f, name)
		f.Add(b)
		f.Add(envelopeOf(f, b).Payload)
	}
}

// fuzzSigners are the keys that sign fuzz payloads; roots in the corpus use them.
func fuzzSigners(t testing.TB) []manifest.PrivateKey { return privs(t, 0, 1, 2, 3, 4) }

func FuzzVerifyManifest(f *testing.F) {
	addSeeds(f, "manifest.json")
	root := rootV1(f)
	signers := fuzzSigners(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(m *manifest.Manifest) {
			p1, err := m.Marshal()
			if err != nil {
				t.Fatalf("accepted manifest does not marshal: %v", err)
			}
			env, err := manifest.Sign(manifest.TypeManifest, p1, signers...)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := root.VerifyManifest(env, now)
			if err != nil {
				t.Fatalf("re-signed manifest does not verify: %v\n%s", err, p1)
			}
			if p2, _ := m2.Marshal(); !bytes.Equal(p1, p2) {
				t.Fatalf("round trip changed the manifest:\n%s\n%s", p1, p2)
			}
		}
		if m, err := root.VerifyManifest(data, now); err == nil {
			check(m)
		}
		if env, err := manifest.Sign(manifest.TypeManifest, data, signers...); err == nil {
			if m, err := root.VerifyManifest(env, now); err == nil {
				check(m)
			}
		}
	})
}

func FuzzVerifyHead(f *testing.F) {
	addSeeds(f, "head.json")
	root := rootV1(f)
	signers := fuzzSigners(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(h *manifest.Head) {
			p1, err := h.Marshal()
			if err != nil {
				t.Fatalf("accepted head does not marshal: %v", err)
			}
			env, err := manifest.Sign(manifest.TypeHead, p1, signers...)
			if err != nil {
				t.Fatal(err)
			}
			h2, err := root.VerifyHead(env, now)
			if err != nil {
				t.Fatalf("re-signed head does not verify: %v\n%s", err, p1)
			}
			if p2, _ := h2.Marshal(); !bytes.Equal(p1, p2) {
				t.Fatalf("round trip changed the head:\n%s\n%s", p1, p2)
			}
		}
		if h, err := root.VerifyHead(data, now); err == nil {
			check(h)
		}
		if env, err := manifest.Sign(manifest.TypeHead, data, signers...); err == nil {
			if h, err := root.VerifyHead(env, now); err == nil {
				check(h)
			}
		}
	})
}

// ownKeys reports whether every key of r is a fuzz signer, so a re-signed r verifies.
func ownKeys(t testing.TB, r *manifest.TrustRoot) bool {
	ours := map[manifest.KeyID]bool{}
	for _, k := range fuzzSigners(t) {
		ours[k.ID()] = true
	}
	for id := range r.Keys {
		if !ours[id] {
			return false
		}
	}
	return true
}

func FuzzParseTrustRoot(f *testing.F) {
	addSeeds(f, "root-v1.json", "root-v2.json")
	signers := fuzzSigners(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(r *manifest.TrustRoot) {
			p1, err := r.Marshal()
			if err != nil {
				t.Fatalf("accepted root does not marshal: %v", err)
			}
			if !ownKeys(t, r) {
				return
			}
			r2, err := manifest.ParseTrustRoot(must[[]byte](t)(r.Sign(signers...)))
			if err != nil {
				t.Fatalf("re-signed root does not verify: %v\n%s", err, p1)
			}
			if p2, _ := r2.Marshal(); !bytes.Equal(p1, p2) {
				t.Fatalf("round trip changed the root:\n%s\n%s", p1, p2)
			}
		}
		if r, err := manifest.ParseTrustRoot(data); err == nil {
			check(r)
		}
		if env, err := manifest.Sign(manifest.TypeRoot, data, signers...); err == nil {
			if r, err := manifest.ParseTrustRoot(env); err == nil {
				check(r)
			}
		}
	})
}

func FuzzVerifyNext(f *testing.F) {
	addSeeds(f, "root-v2.json")
	old := rootV1(f)
	signers := fuzzSigners(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(n *manifest.TrustRoot) {
			if n.Version != old.Version+1 {
				t.Fatalf("accepted rotation from version %d to %d", old.Version, n.Version)
			}
			p1, err := n.Marshal()
			if err != nil {
				t.Fatalf("accepted root does not marshal: %v", err)
			}
			if !ownKeys(t, n) {
				return
			}
			n2, err := old.VerifyNext(must[[]byte](t)(n.Sign(signers...)))
			if err != nil {
				t.Fatalf("re-signed root does not verify: %v\n%s", err, p1)
			}
			if p2, _ := n2.Marshal(); !bytes.Equal(p1, p2) {
				t.Fatalf("round trip changed the root:\n%s\n%s", p1, p2)
			}
		}
		if n, err := old.VerifyNext(data); err == nil {
			check(n)
		}
		if env, err := manifest.Sign(manifest.TypeRoot, data, signers...); err == nil {
			if n, err := old.VerifyNext(env); err == nil {
				check(n)
			}
		}
	})
}
