package chunk

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"
	mbase "github.com/multiformats/go-multibase"
	mh "github.com/multiformats/go-multihash"
)

func mustHash(t *testing.T, data []byte, code uint64) mh.Multihash {
	t.Helper()
	m, err := mh.Sum(data, code, -1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSumIsCIDv1RawSHA256(t *testing.T) {
	data := []byte("patchmesh")
	c := Sum(data)
	want := cid.NewCidV1(cid.Raw, mustHash(t, data, mh.SHA2_256))
	if !c.Equals(want) {
		t.Fatalf("Sum = %s; want %s", c, want)
	}
	if c.Version() != 1 || c.Type() != cid.Raw {
		t.Fatalf("Sum = %s: version %d codec %#x", c, c.Version(), c.Type())
	}
}

func TestVerify(t *testing.T) {
	data := pseudoRandom(20, 50000)
	c := Sum(data)
	flipped := bytes.Clone(data)
	flipped[31337] ^= 0x01
	big := make([]byte, MaxSize+1)
	tests := []struct {
		name string
		c    cid.Cid
		data []byte
		want error
	}{
		{"good", c, data, nil},
		{"one flipped bit", c, flipped, ErrMismatch},
		{"one byte short", c, data[:len(data)-1], ErrMismatch},
		{"empty chunk", Sum(nil), nil, nil},
		{"too large", Sum(big), big, ErrTooLarge},
		{"exactly MaxSize", Sum(big[:MaxSize]), big[:MaxSize], nil},
		{"v0", cid.NewCidV0(mustHash(t, data, mh.SHA2_256)), data, ErrUnsupported},
		{"dag-pb codec", cid.NewCidV1(cid.DagProtobuf, mustHash(t, data, mh.SHA2_256)), data, ErrUnsupported},
		{"sha2-512", cid.NewCidV1(cid.Raw, mustHash(t, data, mh.SHA2_512)), data, ErrUnsupported},
		{"undefined", cid.Undef, data, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.c, tt.data)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v; want %v", err, tt.want)
			}
			if err != nil && tt.c.Defined() && !bytes.Contains([]byte(err.Error()), []byte(tt.c.String())) {
				t.Errorf("error %q does not name the CID", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	data := []byte("chunk")
	good := Sum(data)
	b58, err := good.StringOfBase(mbase.Base58BTC)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		s    string
		want error // nil: accepted
	}{
		{"canonical", good.String(), nil},
		{"v0", cid.NewCidV0(mustHash(t, data, mh.SHA2_256)).String(), ErrUnsupported},
		{"dag-pb codec", cid.NewCidV1(cid.DagProtobuf, mustHash(t, data, mh.SHA2_256)).String(), ErrUnsupported},
		{"dag-cbor codec", cid.NewCidV1(cid.DagCBOR, mustHash(t, data, mh.SHA2_256)).String(), ErrUnsupported},
		{"sha2-512", cid.NewCidV1(cid.Raw, mustHash(t, data, mh.SHA2_512)).String(), ErrUnsupported},
		{"sha3-256", cid.NewCidV1(cid.Raw, mustHash(t, data, mh.SHA3_256)).String(), ErrUnsupported},
		{"identity", cid.NewCidV1(cid.Raw, mustHash(t, data, mh.IDENTITY)).String(), ErrUnsupported},
		{"base58 form", b58, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.s)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Parse(%q) = %v; want %v", tt.s, err, tt.want)
			}
			if err == nil && !c.Equals(good) {
				t.Fatalf("Parse = %s; want %s", c, good)
			}
		})
	}
	for _, s := range []string{"", "bafk", "not a cid", good.String() + "aa"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted garbage", s)
		}
	}
}
