package manifest_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

func TestCheckSigners(t *testing.T) {
	root := rootV1(t) // keys 0, 1, 2; threshold 2
	tests := []struct {
		name string
		keys []byte
		want error
	}{
		{name: "two of three", keys: []byte{0, 1}},
		{name: "all three", keys: []byte{0, 1, 2}},
		{name: "one", keys: []byte{0}, want: manifest.ErrThreshold},
		{name: "one twice", keys: []byte{1, 1}, want: manifest.ErrThreshold},
		{name: "a foreign key", keys: []byte{9}, want: manifest.ErrUnknownKey},
		{name: "a foreign key beside enough trusted ones", keys: []byte{0, 1, 9}, want: manifest.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := root.CheckSigners(privs(t, tt.keys...)...)
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Fatalf("CheckSigners = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignedByAndCoSigning(t *testing.T) {
	root := rootV1(t)
	payload := must[[]byte](t)(sampleManifest().Marshal())
	env := must[[]byte](t)(manifest.Sign(manifest.TypeManifest, payload, key(t, 0), key(t, 9)))
	if ids := must[[]manifest.KeyID](t)(root.SignedBy(env)); !slices.Equal(ids, []manifest.KeyID{key(t, 0).ID()}) {
		t.Fatalf("SignedBy = %v, want key 0 only (9 is foreign)", ids)
	}
	if _, err := root.VerifyManifestKept(env); !errors.Is(err, manifest.ErrThreshold) {
		t.Fatalf("one trusted signature: %v, want ErrThreshold", err)
	}
	env = must[[]byte](t)(manifest.AddSignature(env, key(t, 2)))
	if ids := must[[]manifest.KeyID](t)(root.SignedBy(env)); len(ids) != 2 {
		t.Fatalf("SignedBy after co-signing = %v", ids)
	}
	m, err := root.VerifyManifestKept(env)
	if err != nil {
		t.Fatal(err)
	}
	// Expired long ago: a kept manifest is judged by its signatures, not its age.
	if _, err := root.VerifyManifest(env, m.Expires.Add(time.Hour)); !errors.Is(err, manifest.ErrExpired) {
		t.Fatalf("VerifyManifest after expiry: %v", err)
	}
}
