package manifest_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/patchmesh/patchmesh/manifest"
)

func TestValidateDeltas(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	good := func() manifest.Delta {
		return manifest.Delta{
			Object: chunkOf("a delta object"),
			Path:   "bin/agent",
			Runs:   []manifest.Run{{First: 0, Count: 1}, {First: 2, Count: 1}},
			Bases:  []manifest.BaseRange{{SHA256: sha, Offset: 0, Size: 100}},
		}
	}
	tests := []struct {
		name   string
		change func(m *manifest.Manifest, d *manifest.Delta)
		want   error // nil: valid
	}{
		{"valid", func(*manifest.Manifest, *manifest.Delta) {}, nil},
		{"no base: compressed only", func(_ *manifest.Manifest, d *manifest.Delta) { d.Bases = nil }, nil},
		{"base in the release", func(m *manifest.Manifest, d *manifest.Delta) { d.Bases[0].SHA256 = m.Files[1].SHA256 }, nil},
		{"not a file of the release", func(_ *manifest.Manifest, d *manifest.Delta) { d.Path = "bin/nothing" }, manifest.ErrMalformed},
		{"a symlink", func(_ *manifest.Manifest, d *manifest.Delta) { d.Path = "bin/current" }, manifest.ErrMalformed},
		{"no runs", func(_ *manifest.Manifest, d *manifest.Delta) { d.Runs = nil }, manifest.ErrMalformed},
		{"run past the file", func(_ *manifest.Manifest, d *manifest.Delta) { d.Runs = []manifest.Run{{First: 2, Count: 2}} }, manifest.ErrMalformed},
		{"runs not ascending", func(_ *manifest.Manifest, d *manifest.Delta) { d.Runs[0], d.Runs[1] = d.Runs[1], d.Runs[0] }, manifest.ErrMalformed},
		{"runs touching", func(_ *manifest.Manifest, d *manifest.Delta) {
			d.Runs = []manifest.Run{{First: 0, Count: 1}, {First: 1, Count: 1}}
		}, manifest.ErrMalformed},
		{"empty run", func(_ *manifest.Manifest, d *manifest.Delta) { d.Runs[0].Count = 0 }, manifest.ErrMalformed},
		{"object too large", func(_ *manifest.Manifest, d *manifest.Delta) { d.Object.Size = manifest.MaxChunkSize + 1 }, manifest.ErrMalformed},
		{"listed twice", func(m *manifest.Manifest, d *manifest.Delta) { m.Deltas = append(m.Deltas, *d) }, manifest.ErrMalformed},
		{"base is the file itself", func(m *manifest.Manifest, d *manifest.Delta) { d.Bases[0].SHA256 = m.Files[0].SHA256 }, manifest.ErrMalformed},
		{"bad base digest", func(_ *manifest.Manifest, d *manifest.Delta) { d.Bases[0].SHA256 = "AB" + sha[2:] }, manifest.ErrMalformed},
		{"negative base offset", func(_ *manifest.Manifest, d *manifest.Delta) { d.Bases[0].Offset = -1 }, manifest.ErrMalformed},
		{"bases over the cap", func(_ *manifest.Manifest, d *manifest.Delta) {
			d.Bases[0].Size = manifest.MaxDeltaBase
			d.Bases = append(d.Bases, manifest.BaseRange{SHA256: sha, Size: 1})
		}, manifest.ErrMalformed},
		{"too many bases", func(_ *manifest.Manifest, d *manifest.Delta) {
			for range manifest.MaxDeltaBases {
				d.Bases = append(d.Bases, d.Bases[0])
			}
		}, manifest.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleManifest()
			m.Files[0] = fileOf("bin/agent", 0o755, "chunk one of the agent", "chunk two", "chunk three")
			d := good()
			tt.change(m, &d)
			m.Deltas = append([]manifest.Delta{d}, m.Deltas...)
			err := m.Validate()
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			// A valid manifest with deltas survives its JSON form.
			b, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var back manifest.Manifest
			if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil || len(back.Deltas) != 1 || back.Deltas[0].Runs[1] != d.Runs[1] {
				t.Fatalf("round trip: %v %+v", err, back.Deltas)
			}
		})
	}
}

// TestUnwrapEnvelope: an unwrapped envelope wraps back to its exact bytes,
// and carries the payload raw.
func TestUnwrapEnvelope(t *testing.T) {
	m := sampleManifest()
	payload, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	env, err := manifest.Sign(manifest.TypeManifest, payload, privs(t, 1, 2)...)
	if err != nil {
		t.Fatal(err)
	}
	un, err := manifest.UnwrapEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(un), string(payload)) {
		t.Error("the unwrapped form does not hold the payload raw")
	}
	back, err := manifest.WrapEnvelope(un)
	if err != nil || string(back) != string(env) {
		t.Fatalf("wrapped back: %v, equal %v", err, string(back) == string(env))
	}
	for _, bad := range [][]byte{nil, {0xff}, append([]byte{200}, un[1:]...)} {
		if _, err := manifest.WrapEnvelope(bad); !errors.Is(err, manifest.ErrMalformed) {
			t.Errorf("WrapEnvelope(%.10q) = %v, want ErrMalformed", bad, err)
		}
	}
}
