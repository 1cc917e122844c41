package pipeline

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/manifest"
)

// TestDecodeSlotKeepsDictionary: consecutive deltas with the same bases read
// them from the store once; other bases are read again, and the dictionary
// is always the bytes the ranges name.
func TestDecodeSlotKeepsDictionary(t *testing.T) {
	st := newMemStore(t)
	chunks := make(map[cid.Cid][]byte)
	data := randomBytes(9, 200<<10)
	f := regular("lib/old.so", 0o644, data, chunks)
	for c, b := range chunks {
		if err := st.PutVerified(testContext(t), c, b); err != nil {
			t.Fatal(err)
		}
	}
	r := &run{p: &Pipeline{st: st}}
	whole := []deltaBase{{file: &f, r: manifest.BaseRange{SHA256: f.SHA256, Offset: 0, Size: f.Size}}}
	part := []deltaBase{{file: &f, r: manifest.BaseRange{SHA256: f.SHA256, Offset: 1000, Size: 5000}}}
	tests := []struct {
		name    string
		bases   []deltaBase
		want    []byte
		readsUp bool // the store is read
	}{
		{"first", whole, data, true},
		{"same bases again", whole, data, false},
		{"other range", part, data[1000:6000], true},
		{"back to the first", whole, data, true},
		{"and again", whole, data, false},
	}
	var s decodeSlot
	defer s.dec.Close()
	for _, tt := range tests {
		before := st.gets
		got, err := s.dictFor(testContext(t), r, tt.bases)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !bytes.Equal(got, tt.want) {
			t.Errorf("%s: dictionary of %d bytes differs from the range", tt.name, len(got))
		}
		if read := st.gets > before; read != tt.readsUp {
			t.Errorf("%s: store read %v, want %v", tt.name, read, tt.readsUp)
		}
	}
}

// TestDecodeSlotReadsInstalledBase: a held base is read from its installed
// copy when that has the base's size, and from the store otherwise.
func TestDecodeSlotReadsInstalledBase(t *testing.T) {
	st := newMemStore(t)
	chunks := make(map[cid.Cid][]byte)
	data := randomBytes(11, 100<<10)
	f := regular("lib/old.so", 0o644, data, chunks)
	for c, b := range chunks {
		if err := st.PutVerified(testContext(t), c, b); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		installed []byte // nil: not there
		storeRead bool
	}{
		{"installed copy", data, false},
		{"no installed copy", nil, true},
		{"installed copy of another size", data[:1000], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.installed != nil {
				if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "lib/old.so"), tt.installed, 0o444); err != nil {
					t.Fatal(err)
				}
			}
			r := &run{p: &Pipeline{st: st, opts: Options{BaseDirs: map[string]string{f.SHA256: dir}}}}
			var s decodeSlot
			before := st.gets
			got, err := s.dictFor(testContext(t), r, []deltaBase{{file: &f, r: manifest.BaseRange{SHA256: f.SHA256, Offset: 500, Size: 9000}}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data[500:9500]) {
				t.Error("dictionary differs from the range")
			}
			if read := st.gets > before; read != tt.storeRead {
				t.Errorf("store read %v, want %v", read, tt.storeRead)
			}
		})
	}
}
