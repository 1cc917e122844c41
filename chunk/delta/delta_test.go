package delta

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// decode decodes with a decoder of its own, as a node decodes its first delta.
func decode(obj, dict []byte, size int, dst []byte) ([]byte, error) {
	var d Decoder
	defer d.Close()
	return d.Decode(obj, dict, size, dst)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	old := randBytes(r, 1<<20)
	// The new version: the old one with a few edits.
	edited := bytes.Clone(old)
	copy(edited[1000:], randBytes(r, 500))
	edited = append(edited[:300000:300000], append(randBytes(r, 2000), edited[300000:]...)...)
	tests := []struct {
		name      string
		level     Level
		dict      []byte
		data      []byte
		maxObject int // the object is at most this big
	}{
		{"edited against its base", Best, old, edited, 8 << 10},
		{"edited against its base, fast", Fast, old, edited, 16 << 10},
		{"no dictionary", Best, nil, bytes.Repeat([]byte("patchmesh "), 10000), 1 << 10},
		{"random without base", Best, nil, randBytes(r, 4096), 4096 + 64},
		{"empty output", Best, old, nil, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := Encode(tt.level, tt.dict, tt.data, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(obj) > tt.maxObject {
				t.Errorf("object is %d bytes, want at most %d", len(obj), tt.maxObject)
			}
			got, err := decode(obj, tt.dict, len(tt.data), []byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[6:], tt.data) || string(got[:6]) != "prefix" {
				t.Fatal("decoded bytes differ")
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	old := randBytes(r, 64<<10)
	data := append(bytes.Clone(old[:30000]), randBytes(r, 100)...)
	obj, err := Encode(Best, old, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	bomb, err := Encode(Best, nil, make([]byte, 4<<20), nil)
	if err != nil {
		t.Fatal(err)
	}
	otherBase := bytes.Clone(old)
	otherBase[10] ^= 1
	damaged := bytes.Clone(obj)
	damaged[len(damaged)/2] ^= 0x55
	tests := []struct {
		name string
		obj  []byte
		dict []byte
		size int
	}{
		{"missing dictionary", obj, nil, len(data)},
		{"shorter than announced", obj, old, len(data) + 1},
		{"longer than announced (a bomb)", bomb, nil, 1 << 20},
		{"damaged frame", damaged, old, len(data)},
		{"not a frame", []byte("hello, world"), nil, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.obj, tt.dict, tt.size, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode = %d bytes, %v; want ErrCorrupt", len(got), err)
			}
		})
	}
	// A wrong base decodes to wrong bytes or fails: the caller's CID check
	// catches the first case; here it must at least not be the right output.
	if got, err := decode(obj, otherBase, len(data), nil); err == nil && bytes.Equal(got, data) {
		t.Fatal("decoded the right bytes from the wrong base")
	}
}

// TestDecoderReused: one Decoder decodes deltas with other dictionaries, and
// none, one after the other, and refuses one whose dictionary it lacks.
func TestDecoderReused(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var d Decoder
	defer d.Close()
	for i := range 6 {
		base := randBytes(r, 200<<10)
		data := append(bytes.Clone(base[1000:150000]), randBytes(r, 300)...)
		if i%3 == 2 {
			base = nil
		}
		obj, err := Encode(Best, base, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.Decode(obj, base, len(data), nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("delta %d: %v, equal %v", i, err, bytes.Equal(got, data))
		}
		if base != nil {
			if _, err := d.Decode(obj, nil, len(data), nil); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("delta %d without its dictionary: %v, want ErrCorrupt", i, err)
			}
		}
	}
}

// TestEncoderReused: one Encoder makes deltas one after the other with the
// same dictionary (kept indexed), an equal one in another slice, a caller's
// buffer rewritten in place, none, and each level; every delta decodes with
// its own dictionary, and one made with a kept index is as small as a fresh
// encoder's.
func TestEncoderReused(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	a := randBytes(r, 300<<10)
	b := randBytes(r, 300<<10)
	c := randBytes(r, 300<<10)
	buf := bytes.Clone(c)
	edit := func(base []byte, from, to int) []byte {
		out := bytes.Clone(base[from:to])
		copy(out[len(out)/2:], randBytes(r, 200))
		return out
	}
	steps := []struct {
		name  string
		level Level
		dict  func() []byte
		data  []byte
	}{
		{"first", Best, func() []byte { return a }, edit(a, 0, 100<<10)},
		{"same dictionary", Best, func() []byte { return a }, edit(a, 100<<10, 250<<10)},
		{"equal copy", Best, func() []byte { return bytes.Clone(a) }, edit(a, 50<<10, 90<<10)},
		{"caller's buffer", Best, func() []byte { return buf }, edit(c, 0, 100<<10)},
		{"buffer rewritten", Best, func() []byte { copy(buf, b); return buf }, edit(b, 0, 120<<10)},
		{"none", Best, func() []byte { return nil }, randBytes(r, 10<<10)},
		{"after none", Best, func() []byte { return b }, edit(b, 10<<10, 60<<10)},
		{"other level", Fast, func() []byte { return a }, edit(a, 0, 80<<10)},
		{"back to best", Best, func() []byte { return b }, edit(b, 200<<10, 290<<10)},
		// Around a block: a delta shorter than one is encoded at Close, with
		// no reset of its own when the dictionary changed.
		{"one block", Best, func() []byte { return a }, edit(a, 0, zstdBlock)},
		{"a byte short of a block", Best, func() []byte { return a }, edit(a, 1, zstdBlock)},
		{"short, new dictionary", Best, func() []byte { return c }, edit(c, 5, zstdBlock)},
		{"a block, new dictionary", Best, func() []byte { return b }, edit(b, 3, 3+zstdBlock)},
		// Small deltas go to the better level's encoder and back.
		{"small", Best, func() []byte { return a[:8<<10] }, edit(a, 0, 20<<10)},
		{"small, same dictionary", Best, func() []byte { return a[:8<<10] }, edit(a, 0, 10<<10)},
		{"better after small", Better, func() []byte { return b[:8<<10] }, edit(b, 0, 30<<10)},
		{"best after small", Best, func() []byte { return a }, edit(a, 0, 40<<10)},
	}
	var e Encoder
	defer e.Close()
	for _, st := range steps {
		dict := st.dict()
		want := bytes.Clone(dict) // what the delta must be decoded against
		obj, err := e.Encode(st.level, dict, st.data, []byte("x"))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if obj[0] != 'x' {
			t.Fatalf("%s: dst not kept", st.name)
		}
		obj = obj[1:]
		// Every frame announces its size, which also sets its window.
		var h zstd.Header
		if err := h.Decode(obj); err != nil || !h.HasFCS || h.FrameContentSize != uint64(len(st.data)) {
			t.Fatalf("%s: frame header %+v (%v), want content size %d", st.name, h, err, len(st.data))
		}
		got, err := decode(obj, want, len(st.data), nil)
		if err != nil || !bytes.Equal(got, st.data) {
			t.Fatalf("%s: %v, equal %v", st.name, err, bytes.Equal(got, st.data))
		}
		fresh, err := Encode(st.level, want, st.data, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(obj) > len(fresh)+len(fresh)/20 {
			t.Errorf("%s: %d bytes, a fresh encoder makes %d", st.name, len(obj), len(fresh))
		}
	}
}

// TestDecodeBombBounded: a delta that decodes to far more than it announces
// is refused without decoding it all.
func TestDecodeBombBounded(t *testing.T) {
	bomb, err := Encode(Best, nil, make([]byte, 48<<20), nil)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var d Decoder
	defer d.Close()
	if _, err := d.Decode(bomb, nil, 1<<20, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Decode = %v, want ErrCorrupt", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 24<<20 {
		t.Errorf("refusing a 48 MiB bomb announced as 1 MiB allocated %d MiB", grew>>20)
	}
}
