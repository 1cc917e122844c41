package chunk

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/klauspost/compress/zstd"
)

func newTestCodec(t testing.TB, level Compression) *Codec {
	t.Helper()
	k, err := NewCodec(level)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// compressible returns n bytes of text-like data that zstd shrinks well.
func compressible(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.WriteString("patchmesh moves chunks of releases between the nodes of a site; ")
		b.WriteByte(byte('a' + i%26))
	}
	return b.Bytes()[:n]
}

func TestCodecEncode(t *testing.T) {
	k := newTestCodec(t, CompressDefault)
	tests := []struct {
		name  string
		raw   []byte
		frame bool
	}{
		{"compressible", compressible(16 << 10), true},
		{"random stays raw", pseudoRandom(7, 16<<10), false},
		{"tiny stays raw", []byte("abc"), false},
		{"empty stays raw", []byte{}, false},
		{"max size", compressible(MaxSize), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := k.Encode(tt.raw)
			if got := IsFrame(wire) && len(wire) < len(tt.raw); got != tt.frame {
				t.Fatalf("compressed = %v (%d -> %d bytes), want %v", got, len(tt.raw), len(wire), tt.frame)
			}
			if !tt.frame && !bytes.Equal(wire, tt.raw) {
				t.Fatal("raw wire form differs from the chunk")
			}
			if tt.frame && len(wire) > len(tt.raw)*15/16 {
				t.Fatalf("kept a frame of %d bytes for %d raw", len(wire), len(tt.raw))
			}
			got, err := k.Decode(Sum(tt.raw), wire, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.raw) {
				t.Fatal("round trip changed the chunk")
			}
		})
	}
	off := newTestCodec(t, CompressOff)
	if raw := compressible(16 << 10); !bytes.Equal(off.Encode(raw), raw) {
		t.Fatal("CompressOff compressed")
	}
}

func TestCodecDecode(t *testing.T) {
	k := newTestCodec(t, CompressDefault)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := compressible(32 << 10)
	frame := k.Encode(raw)

	bomb := enc.EncodeAll(make([]byte, MaxSize+1), nil)
	// A frame without a content size, so only decoding finds the excess.
	var noFCS bytes.Buffer
	sw, _ := zstd.NewWriter(&noFCS, zstd.WithWindowSize(MaxSize))
	sw.Write(make([]byte, 2*MaxSize))
	sw.Close()
	// Two frames, each within MaxSize, that together exceed it.
	concat := append(enc.EncodeAll(make([]byte, MaxSize/2+1), nil), enc.EncodeAll(make([]byte, MaxSize/2+1), nil)...)

	// Without a frame checksum a flipped byte decodes to other bytes; a cut
	// frame does not decode at all.
	corrupt := bytes.Clone(frame)
	corrupt[len(corrupt)/2] ^= 0xff
	truncated := frame[:len(frame)-10]

	magicRaw := append([]byte(frameMagic), pseudoRandom(8, 8<<10)...)

	// A delta-like object: a frame that needs a dictionary, named by its own bytes.
	dict := compressible(64 << 10)
	denc, err := zstd.NewWriter(nil, zstd.WithEncoderDictRaw(7, dict))
	if err != nil {
		t.Fatal(err)
	}
	delta := denc.EncodeAll(append(compressible(20<<10), "changed"...), nil)
	// A frame that decodes fine but is itself the chunk (a .zst file cut whole).
	zstFile := enc.EncodeAll(pseudoRandom(9, 4<<10), nil)

	tests := []struct {
		name string
		c    cid.Cid
		wire []byte
		size int
		want []byte
		err  error
	}{
		{"raw", Sum(raw), raw, 0, raw, nil},
		{"compressed", Sum(raw), frame, 0, raw, nil},
		{"compressed with declared size", Sum(raw), frame, len(raw), raw, nil},
		{"declared size too small", Sum(raw), frame, len(raw) - 1, nil, ErrTooLarge},
		{"bomb with content size", Sum(make([]byte, MaxSize+1)), bomb, 0, nil, ErrTooLarge},
		{"bomb without content size", Sum(make([]byte, 2*MaxSize)), noFCS.Bytes(), 0, nil, ErrTooLarge},
		{"concatenated frames past MaxSize", Sum(make([]byte, MaxSize+2)), concat, 0, nil, ErrTooLarge},
		{"corrupt frame", Sum(raw), corrupt, 0, nil, ErrMismatch},
		{"truncated frame", Sum(raw), truncated, 0, nil, ErrBadFrame},
		{"raw chunk starting with the magic", Sum(magicRaw), magicRaw, 0, magicRaw, nil},
		{"frame needing a dictionary passes raw", Sum(delta), delta, 0, delta, nil},
		{"frame that is the chunk itself", Sum(zstFile), zstFile, 0, zstFile, nil},
		{"raw mismatch", Sum(raw), raw[1:], 0, nil, ErrMismatch},
		{"frame of other bytes", Sum(raw), k.Encode(compressible(20 << 10)), 0, nil, ErrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Decode(tt.c, tt.wire, tt.size)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("decoded %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

func TestParseCompression(t *testing.T) {
	for c := CompressDefault; c <= CompressBest; c++ {
		got, err := ParseCompression(c.String())
		if err != nil || got != c {
			t.Fatalf("ParseCompression(%q) = %v, %v", c.String(), got, err)
		}
		if _, err := NewCodec(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ParseCompression("gzip"); err == nil {
		t.Fatal("accepted gzip")
	}
}
