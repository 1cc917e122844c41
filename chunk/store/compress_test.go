package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

func textChunk(n int) []byte {
	return []byte(strings.Repeat("the store keeps compressed chunks where it pays. ", n/48+1))[:n]
}

func TestCompressedRoundTrip(t *testing.T) {
	ctx := context.Background()
	codec, err := chunk.NewCodec(chunk.CompressDefault)
	if err != nil {
		t.Fatal(err)
	}
	text := textChunk(40000)
	tests := []struct {
		name       string
		raw        []byte
		put        func(s *Store, c cid.Cid, raw []byte) error
		compressed bool
	}{
		{"Put compresses", text, func(s *Store, c cid.Cid, raw []byte) error { return s.Put(ctx, c, raw) }, true},
		{"PutVerified compresses", text, func(s *Store, c cid.Cid, raw []byte) error { return s.PutVerified(ctx, c, raw) }, true},
		{"PutVerifiedWire keeps the frame", text, func(s *Store, c cid.Cid, raw []byte) error {
			return s.PutVerifiedWire(ctx, c, raw, codec.Encode(raw))
		}, true},
		{"PutVerifiedWire of raw stays raw", text, func(s *Store, c cid.Cid, raw []byte) error {
			return s.PutVerifiedWire(ctx, c, raw, raw)
		}, false},
		{"incompressible stays raw", testChunk(3, 40000), func(s *Store, c cid.Cid, raw []byte) error { return s.Put(ctx, c, raw) }, false},
		{"raw starting with the magic", append([]byte("\x28\xb5\x2f\xfd"), testChunk(4, 1000)...), func(s *Store, c cid.Cid, raw []byte) error {
			return s.PutVerifiedWire(ctx, c, raw, raw)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{Codec: codec})
			c := chunk.Sum(tt.raw)
			if err := tt.put(s, c, tt.raw); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, c)
			if err != nil || !bytes.Equal(got, tt.raw) {
				t.Fatalf("Get: %d bytes, %v", len(got), err)
			}
			var buf bytes.Buffer
			if n, err := s.WriteTo(ctx, c, &buf); err != nil || n != int64(len(tt.raw)) || !bytes.Equal(buf.Bytes(), tt.raw) {
				t.Fatalf("WriteTo: %d bytes, %v", n, err)
			}
			wire, err := s.GetWire(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if compressed := len(wire) < len(tt.raw); compressed != tt.compressed {
				t.Fatalf("stored %d bytes for %d raw; want compressed: %v", len(wire), len(tt.raw), tt.compressed)
			}
			if dec, err := codec.Decode(c, wire, len(tt.raw)); err != nil || !bytes.Equal(dec, tt.raw) {
				t.Fatalf("wire form does not decode to the chunk: %v", err)
			}
			if n, err := s.Size(ctx, c); err != nil || n != int64(len(tt.raw)) {
				t.Fatalf("Size = %d, %v; want the raw size %d", n, err, len(tt.raw))
			}
			if chunks, b := s.Usage(); chunks != 1 || b != int64(len(tt.raw)) {
				t.Fatalf("Usage = %d chunks, %d bytes", chunks, b)
			}
			if err := s.Delete(ctx, c); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetWire(ctx, c); err == nil {
				t.Fatal("chunk still there after Delete")
			}
			if chunks, _ := s.Usage(); chunks != 0 {
				t.Fatalf("Usage = %d chunks after Delete", chunks)
			}
		})
	}
}

// TestReadsOldLayout opens a store written before compression: raw values
// under c/, bare uvarint sizes, and reads it, beside new compressed chunks.
func TestReadsOldLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := textChunk(30000)
	oc := chunk.Sum(old)
	s := openStore(t, dir, Options{})
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(append([]byte("c/"), oc.KeyString()...), old); err != nil {
			return err
		}
		return txn.Set(append([]byte("s/"), oc.KeyString()...), binary.AppendUvarint(nil, uint64(len(old))))
	})
	if err != nil {
		t.Fatal(err)
	}
	fresh := textChunk(50000)
	fc := chunk.Sum(fresh)
	if err := s.Put(ctx, fc, fresh); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, Options{})
	if chunks, b := s.Usage(); chunks != 2 || b != int64(len(old)+len(fresh)) {
		t.Fatalf("Usage = %d chunks, %d bytes", chunks, b)
	}
	for _, tc := range []struct {
		c   cid.Cid
		raw []byte
	}{{oc, old}, {fc, fresh}} {
		got, err := s.Get(ctx, tc.c)
		if err != nil || !bytes.Equal(got, tc.raw) {
			t.Fatalf("Get %s: %v", tc.c, err)
		}
		wire, err := s.GetWire(ctx, tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if tc.c == oc && !bytes.Equal(wire, old) {
			t.Fatal("old raw value not served as stored")
		}
	}
	seen := 0
	if err := s.ForEach(ctx, func(c cid.Cid, size int64) error {
		seen++
		if c == fc && size != int64(len(fresh)) {
			t.Errorf("ForEach size %d, want the raw %d", size, len(fresh))
		}
		return nil
	}); err != nil || seen != 2 {
		t.Fatalf("ForEach saw %d chunks, %v", seen, err)
	}
	if err := s.Delete(ctx, oc); err != nil {
		t.Fatal(err)
	}
	if has, _ := s.Has(ctx, oc); has {
		t.Fatal("old chunk still there after Delete")
	}
}

// TestAppendWire: AppendWire appends the form GetWire returns to dst, after
// dst's bytes, in dst's array where it has room (a chunk stored with a
// checksum is read straight into it), in a new one where it has not.
func TestAppendWire(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		raw    []byte
		noSum  bool
		room   int
		shares bool
	}{
		{"compressed", textChunk(40000), false, chunk.MaxSize, true},
		{"raw", testChunk(5, 40000), false, chunk.MaxSize, true},
		{"compressed, dst too small", textChunk(40000), false, 10, false},
		{"raw, dst too small", testChunk(5, 40000), false, 10, false},
		{"compressed, before checksums", textChunk(40000), true, chunk.MaxSize, true},
		{"raw, before checksums", testChunk(5, 40000), true, chunk.MaxSize, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			s.noSum = tt.noSum
			c := chunk.Sum(tt.raw)
			if err := s.Put(ctx, c, tt.raw); err != nil {
				t.Fatal(err)
			}
			want, err := s.GetWire(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			dst := append(make([]byte, 0, 3+tt.room), "hdr"...)
			out, err := s.AppendWire(ctx, c, dst)
			if err != nil {
				t.Fatal(err)
			}
			if string(out[:3]) != "hdr" || !bytes.Equal(out[3:], want) {
				t.Fatalf("AppendWire = %q + %d bytes; want hdr + the %d bytes GetWire returns", out[:min(3, len(out))], len(out)-3, len(want))
			}
			if shares := &out[0] == &dst[0]; shares != tt.shares {
				t.Errorf("the result in dst's array = %v, want %v", shares, tt.shares)
			}
		})
	}
}
