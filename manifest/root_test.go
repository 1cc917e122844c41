package manifest_test

import (
	"errors"
	"testing"

	"github.com/patchmesh/patchmesh/manifest"
)

func TestNewTrustRoot(t *testing.T) {
	tests := []struct {
		name      string
		threshold int
		keys      []manifest.PublicKey
		ok        bool
	}{
		{"1 of 1", 1, pubs(t, 0), true},
		{"2 of 3", 2, pubs(t, 0, 1, 2), true},
		{"3 of 3", 3, pubs(t, 0, 1, 2), true},
		{"threshold above keys", 4, pubs(t, 0, 1, 2), false},
		{"threshold 0", 0, pubs(t, 0), false},
		{"negative threshold", -1, pubs(t, 0), false},
		{"no keys", 1, nil, false},
		{"a key twice counts once", 2, pubs(t, 0, 0), false},
		{"zero key", 1, []manifest.PublicKey{{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := manifest.NewTrustRoot(tt.threshold, tt.keys...)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, manifest.ErrMalformed)) {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestParseTrustRoot(t *testing.T) {
	v1 := rootV1(t) // keys 0, 1, 2; threshold 2
	tests := []struct {
		name string
		env  []byte
		want []error
	}{
		{"own threshold", must[[]byte](t)(v1.Sign(privs(t, 1, 2)...)), nil},
		{"one own key of two", must[[]byte](t)(v1.Sign(privs(t, 1)...)), []error{manifest.ErrThreshold}},
		{"foreign keys only", must[[]byte](t)(v1.Sign(privs(t, 5, 6)...)), []error{manifest.ErrThreshold, manifest.ErrUnknownKey}},
		{"key listed under another id", func() []byte {
			p := string(must[[]byte](t)(v1.Marshal()))
			ids := v1.KeyIDs()
			p = replaceOnce(t, p, string(ids[0]), "00000000000000000000000000000000")
			return must[[]byte](t)(manifest.Sign(manifest.TypeRoot, []byte(p), privs(t, 0, 1, 2)...))
		}(), []error{manifest.ErrMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := manifest.ParseTrustRoot(tt.env)
			wantErr(t, err, tt.want...)
			if err == nil && (r.Version != 1 || r.Threshold != 2 || len(r.Keys) != 3) {
				t.Errorf("parsed %+v", r)
			}
		})
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	t.Fatalf("%q not found", old)
	return ""
}

func TestRotation(t *testing.T) {
	v1 := rootV1(t)                                                     // keys 0, 1, 2; threshold 2
	v2 := must[*manifest.TrustRoot](t)(v1.Next(2, pubs(t, 1, 2, 3)...)) // keys 1, 2, 3; threshold 2
	v3 := must[*manifest.TrustRoot](t)(v2.Next(1, pubs(t, 3, 4)...))
	sameVersion := must[*manifest.TrustRoot](t)(manifest.NewTrustRoot(1, pubs(t, 4)...))
	tests := []struct {
		name string
		env  []byte
		want []error
	}{
		{"1 to 2", golden(t, "root-v2.json"), nil},
		{"1 to 2, signed by 0, 1, 3", must[[]byte](t)(v2.Sign(privs(t, 0, 1, 3)...)), nil},
		{"1 to 3 skips a version", golden(t, "root-v3.json"), []error{manifest.ErrRootVersion}},
		{"1 to 1", must[[]byte](t)(sameVersion.Sign(privs(t, 0, 1, 4)...)), []error{manifest.ErrRollback}},
		{"not signed by the old threshold", must[[]byte](t)(v2.Sign(privs(t, 2, 3)...)), []error{manifest.ErrThreshold}},
		{"not signed by its own threshold", must[[]byte](t)(v2.Sign(privs(t, 0, 1)...)), []error{manifest.ErrThreshold}},
		{"signed by neither", must[[]byte](t)(v2.Sign(privs(t, 9)...)), []error{manifest.ErrThreshold}},
		{"a head is not a root", golden(t, "head.json"), []error{manifest.ErrMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := v1.VerifyNext(tt.env)
			wantErr(t, err, tt.want...)
			if err == nil && n.Version != 2 {
				t.Errorf("version %d", n.Version)
			}
		})
	}

	// Walk the chain, then documents signed by the retired key 0 fail under the new root.
	r2 := must[*manifest.TrustRoot](t)(v1.VerifyNext(golden(t, "root-v2.json")))
	r3 := must[*manifest.TrustRoot](t)(r2.VerifyNext(golden(t, "root-v3.json")))
	if r3.Threshold != v3.Threshold || len(r3.Keys) != 2 {
		t.Errorf("root v3 %+v", r3)
	}
	_, err := r2.VerifyManifest(golden(t, "manifest.json"), now) // signed by 0 and 1
	wantErr(t, err, manifest.ErrThreshold)
	_, err = r3.VerifyManifest(golden(t, "manifest.json"), now)
	wantErr(t, err, manifest.ErrThreshold, manifest.ErrUnknownKey)
}
