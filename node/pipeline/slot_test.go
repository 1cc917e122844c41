package pipeline

import (
	"bytes"
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
