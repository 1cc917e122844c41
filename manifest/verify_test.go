package manifest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

func pinned(t *testing.T) *manifest.TrustRoot {
	t.Helper()
	r, err := manifest.ParseTrustRoot(golden(t, "root-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantErr checks err against every sentinel in want (nil want: no error).
func wantErr(t *testing.T, err error, want ...error) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted, want %v", want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("got %v, want %v", err, w)
		}
	}
}

func TestVerifyManifestSignatures(t *testing.T) {
	root := pinned(t) // keys 0, 1, 2; threshold 2
	payload := envelopeOf(t, golden(t, "manifest.json")).Payload
	signed := func(keys ...byte) []byte {
		return must[[]byte](t)(manifest.Sign(manifest.TypeManifest, payload, privs(t, keys...)...))
	}
	tamper := func(keys []byte, f func(*manifest.Envelope)) []byte {
		env := envelopeOf(t, signed(keys...))
		f(env)
		return encode(t, env)
	}
	flip := func(b []byte, i int) { b[i] ^= 0x01 }
	tests := []struct {
		name string
		env  []byte
		want []error
	}{
		{"golden", golden(t, "manifest.json"), nil},
		{"2 of 3: keys 0 and 2", signed(0, 2), nil},
		{"2 of 3: keys 1 and 2", signed(1, 2), nil},
		{"all 3 keys", signed(0, 1, 2), nil},
		{"extra unknown signer ignored", signed(0, 7, 1), nil},
		{"flipped payload byte", tamper([]byte{0, 1}, func(e *manifest.Envelope) { flip(e.Payload, 40) }),
			[]error{manifest.ErrThreshold, manifest.ErrSignature}},
		{"flipped signature byte", tamper([]byte{0, 1}, func(e *manifest.Envelope) { flip(e.Signatures[1].Sig, 5) }),
			[]error{manifest.ErrThreshold, manifest.ErrSignature}},
		{"flipped keyid", tamper([]byte{0, 1}, func(e *manifest.Envelope) {
			id := []byte(e.Signatures[0].KeyID)
			id[3] ^= 0x01
			e.Signatures[0].KeyID = manifest.KeyID(id)
		}), []error{manifest.ErrThreshold, manifest.ErrUnknownKey}},
		{"truncated signature", tamper([]byte{0, 1}, func(e *manifest.Envelope) { e.Signatures[0].Sig = e.Signatures[0].Sig[:10] }),
			[]error{manifest.ErrThreshold, manifest.ErrSignature}},
		{"below threshold", signed(1), []error{manifest.ErrThreshold}},
		{"wrong keys only", signed(5, 6), []error{manifest.ErrThreshold, manifest.ErrUnknownKey}},
		{"one key signing twice counts once", tamper([]byte{0}, func(e *manifest.Envelope) {
			e.Signatures = append(e.Signatures, e.Signatures[0])
		}), []error{manifest.ErrThreshold}},
		{"no signatures", tamper([]byte{0}, func(e *manifest.Envelope) { e.Signatures = nil }), []error{manifest.ErrThreshold}},
		{"signature moved to another keyid", tamper([]byte{0, 1}, func(e *manifest.Envelope) {
			e.Signatures[1].Sig = e.Signatures[0].Sig
		}), []error{manifest.ErrThreshold, manifest.ErrSignature}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := root.VerifyManifest(tt.env, now)
			wantErr(t, err, tt.want...)
			if err == nil && m.Version != "1.4.2" {
				t.Errorf("version %q", m.Version)
			}
		})
	}
}

// A document signed as one type must never verify as another.
func TestTypeConfusion(t *testing.T) {
	root := pinned(t)
	head := golden(t, "head.json")
	man := golden(t, "manifest.json")
	headAsManifest := envelopeOf(t, head)
	headAsManifest.Type = manifest.TypeManifest // relabelled: the signatures cover the old type
	manPayloadAsHead := must[[]byte](t)(manifest.Sign(manifest.TypeHead, envelopeOf(t, man).Payload, privs(t, 0, 1)...))
	rootAsHead := envelopeOf(t, golden(t, "root-v1.json"))
	rootAsHead.Type = manifest.TypeHead

	if _, err := root.VerifyManifest(head, now); !errors.Is(err, manifest.ErrMalformed) || !strings.Contains(err.Error(), manifest.TypeHead) {
		t.Errorf("head as manifest: %v", err)
	}
	_, err := root.VerifyManifest(encode(t, headAsManifest), now)
	wantErr(t, err, manifest.ErrThreshold, manifest.ErrSignature)
	if _, err := root.VerifyHead(man, now); !errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("manifest as head: %v", err)
	}
	// Signed as a head, a manifest payload still does not decode as a head.
	_, err = root.VerifyHead(manPayloadAsHead, now)
	wantErr(t, err, manifest.ErrMalformed)
	_, err = root.VerifyHead(encode(t, rootAsHead), now)
	wantErr(t, err, manifest.ErrThreshold)
	if _, err := manifest.ParseTrustRoot(head); !errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("head as root: %v", err)
	}
}

func TestStrictDecoding(t *testing.T) {
	root := pinned(t)
	payload := string(envelopeOf(t, golden(t, "manifest.json")).Payload)
	cid0 := chunkOf("chunk one of the agent").CID
	replace := func(old, new string) string {
		if !strings.Contains(payload, old) {
			t.Fatalf("payload lacks %q", old)
		}
		return strings.Replace(payload, old, new, 1)
	}
	tests := []struct {
		name    string
		payload string
	}{
		{"unknown top-level field", replace(`{"channel"`, `{"mirror":"x","channel"`)},
		{"unknown file field", replace(`{"path":"bin/agent"`, `{"owner":"root","path":"bin/agent"`)},
		{"field name in other case", replace(`"channel"`, `"Channel"`)},
		{"duplicate key", replace(`"sequence":7`, `"sequence":7,"sequence":9`)},
		{"duplicate key by case", replace(`"sequence":7`, `"sequence":7,"SEQUENCE":9`)},
		{"trailing garbage", payload + "garbage"},
		{"second document", payload + `{}`},
		{"chunk with three elements", replace(`,22]`, `,22,1]`)},
		{"chunk as object", replace(`["`+cid0.String()+`",22]`, `{"cid":"`+cid0.String()+`","size":22}`)},
		{"chunk size as float", replace(`,22]`, `,22.0]`)},
		{"chunk size in exponent form", replace(`,22]`, `,2.2e1]`)},
		{"chunk size over 32 bits", replace(`,22]`, `,4294967318]`)},
		{"non-canonical CID (base58)", replace(cid0.String(), must[string](t)(cid0.StringOfBase('z')))},
		{"negative sequence", replace(`"sequence":7`, `"sequence":-7`)},
		{"string sequence", replace(`"sequence":7`, `"sequence":"7"`)},
		{"not JSON", "\x00\x01"},
		{"empty", ""},
		{"null", "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := must[[]byte](t)(manifest.Sign(manifest.TypeManifest, []byte(tt.payload), privs(t, 0, 1)...))
			_, err := root.VerifyManifest(env, now)
			wantErr(t, err, manifest.ErrMalformed)
		})
	}

	envTests := []struct {
		name string
		env  string
	}{
		{"unknown envelope field", strings.Replace(string(golden(t, "manifest.json")), `{"type"`, `{"x":1,"type"`, 1)},
		{"trailing garbage after envelope", string(golden(t, "manifest.json")) + "]"},
		{"envelope without type", strings.Replace(string(golden(t, "manifest.json")), `"type":"patchmesh/manifest/v1"`, `"type":""`, 1)},
	}
	for _, tt := range envTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := root.VerifyManifest([]byte(tt.env), now)
			wantErr(t, err, manifest.ErrMalformed)
		})
	}
	// Whitespace around the envelope is not data.
	if _, err := root.VerifyManifest(append(golden(t, "manifest.json"), "\n\n"...), now); err != nil {
		t.Errorf("trailing newline refused: %v", err)
	}
}

// Oversized input is refused before parsing: the inputs here are not even JSON,
// and the error is ErrTooLarge, not ErrMalformed.
func TestSizeCaps(t *testing.T) {
	root := pinned(t)
	over := func(n int) []byte { return bytes.Repeat([]byte{'['}, n+1) }
	if _, err := root.VerifyManifest(over(manifest.MaxManifestSize), now); !errors.Is(err, manifest.ErrTooLarge) || errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("manifest: %v", err)
	}
	if _, err := root.VerifyHead(over(manifest.MaxHeadSize), now); !errors.Is(err, manifest.ErrTooLarge) || errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("head: %v", err)
	}
	if _, err := manifest.ParseTrustRoot(over(manifest.MaxRootSize)); !errors.Is(err, manifest.ErrTooLarge) || errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("root: %v", err)
	}
	if _, err := root.VerifyNext(over(manifest.MaxRootSize)); !errors.Is(err, manifest.ErrTooLarge) {
		t.Errorf("next root: %v", err)
	}
	// A head is small: a valid manifest-sized payload signed as a head is refused by size.
	big := must[[]byte](t)(manifest.Sign(manifest.TypeManifest, bytes.Repeat([]byte(" "), manifest.MaxHeadSize), privs(t, 0, 1)...))
	bigHead := envelopeOf(t, big)
	bigHead.Type = manifest.TypeHead
	if _, err := root.VerifyHead(encode(t, bigHead), now); !errors.Is(err, manifest.ErrTooLarge) {
		t.Errorf("big head: %v", err)
	}
	// The publisher learns at signing time, not from every node.
	if _, err := manifest.Sign(manifest.TypeHead, bytes.Repeat([]byte(" "), manifest.MaxHeadSize), key(t, 0)); !errors.Is(err, manifest.ErrTooLarge) {
		t.Errorf("signing an oversized head: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	root := pinned(t)
	head := golden(t, "head.json")
	man := golden(t, "manifest.json")
	h := sampleHead(t, man)
	m := sampleManifest()
	tests := []struct {
		name   string
		verify func(time.Time) error
		at     time.Time
		want   []error
	}{
		{"head before expiry", verifyHead(root, head), h.Expires.Add(-time.Second), nil},
		{"head at expiry", verifyHead(root, head), h.Expires, []error{manifest.ErrExpired}},
		{"head after expiry", verifyHead(root, head), h.Expires.Add(24 * time.Hour), []error{manifest.ErrExpired}},
		{"manifest before expiry", verifyManifest(root, man), m.Expires.Add(-time.Second), nil},
		{"manifest after expiry", verifyManifest(root, man), m.Expires.Add(time.Second), []error{manifest.ErrExpired}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.verify(tt.at)
			wantErr(t, err, tt.want...)
			if err != nil && !strings.Contains(err.Error(), "clock") {
				t.Errorf("message should tell the user to check the clock: %v", err)
			}
		})
	}

	// An expired trust root verifies nothing.
	r := rootV1(t)
	r.Expires = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	expiring := must[*manifest.TrustRoot](t)(manifest.ParseTrustRoot(must[[]byte](t)(r.Sign(privs(t, 0, 1)...))))
	_, err := expiring.VerifyHead(head, now)
	wantErr(t, err, manifest.ErrExpired)
	if !strings.Contains(err.Error(), "trust root") {
		t.Errorf("message should name the trust root: %v", err)
	}
}

func verifyHead(r *manifest.TrustRoot, env []byte) func(time.Time) error {
	return func(at time.Time) error { _, err := r.VerifyHead(env, at); return err }
}

func verifyManifest(r *manifest.TrustRoot, env []byte) func(time.Time) error {
	return func(at time.Time) error { _, err := r.VerifyManifest(env, at); return err }
}

func TestHeadAndManifestAgree(t *testing.T) {
	root := pinned(t)
	man := golden(t, "manifest.json")
	h := must[*manifest.Head](t)(root.VerifyHead(golden(t, "head.json"), now))
	m := must[*manifest.Manifest](t)(root.VerifyManifest(man, now))
	wantErr(t, h.Manifest.Check(man))
	wantErr(t, manifest.CheckHead(h, m))

	older := *m
	older.Sequence = 6
	wantErr(t, manifest.CheckHead(h, &older), manifest.ErrMismatch)
	other := *m
	other.Channel = "beta"
	wantErr(t, manifest.CheckHead(h, &other), manifest.ErrMismatch)

	stale := must[[]byte](t)(manifest.Sign(manifest.TypeManifest, must[[]byte](t)(older.Marshal()), privs(t, 0, 1)...))
	wantErr(t, h.Manifest.Check(stale), manifest.ErrMismatch)
	flipped := bytes.Clone(man)
	flipped[len(flipped)/2] ^= 1
	wantErr(t, h.Manifest.Check(flipped), manifest.ErrMismatch)
}

func TestCheckNewer(t *testing.T) {
	tests := []struct {
		seen, seq uint64
		want      []error
	}{
		{0, 1, nil},
		{7, 7, nil},
		{7, 8, nil},
		{7, 6, []error{manifest.ErrRollback}},
		{7, 0, []error{manifest.ErrRollback}},
	}
	for _, tt := range tests {
		wantErr(t, manifest.CheckNewer(tt.seen, tt.seq), tt.want...)
	}
}

func TestAddSignature(t *testing.T) {
	root := pinned(t)
	payload := must[[]byte](t)(sampleManifest().Marshal())
	env := must[[]byte](t)(manifest.Sign(manifest.TypeManifest, payload, key(t, 0)))
	_, err := root.VerifyManifest(env, now)
	wantErr(t, err, manifest.ErrThreshold)

	// A second publisher co-signs on another machine.
	env = must[[]byte](t)(manifest.AddSignature(env, key(t, 2)))
	_, err = root.VerifyManifest(env, now)
	wantErr(t, err)

	// Signing again replaces, never duplicates.
	again := must[[]byte](t)(manifest.AddSignature(env, key(t, 2)))
	if n := len(envelopeOf(t, again).Signatures); n != 2 {
		t.Errorf("%d signatures after re-signing, want 2", n)
	}
	if _, err := manifest.AddSignature([]byte("{"), key(t, 1)); !errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	root := pinned(t)
	m := sampleManifest()
	p1 := must[[]byte](t)(m.Marshal())
	got := must[*manifest.Manifest](t)(root.VerifyManifest(must[[]byte](t)(manifest.Sign(manifest.TypeManifest, p1, privs(t, 1, 2)...)), now))
	if p2 := must[[]byte](t)(got.Marshal()); !bytes.Equal(p1, p2) {
		t.Fatalf("round trip changed the manifest:\n%s\n%s", p1, p2)
	}
	if got.TotalSize() != 31+18+17 {
		t.Errorf("TotalSize %d", got.TotalSize())
	}
	if got.Files[1].Chunks[0] != m.Files[1].Chunks[0] {
		t.Errorf("chunk %v, want %v", got.Files[1].Chunks[0], m.Files[1].Chunks[0])
	}
}

// Chunk references in other JSON spellings decode like the compact form.
func TestChunkRefSpellings(t *testing.T) {
	c := chunkOf("x").CID.String()
	tests := []struct {
		json string
		ok   bool
	}{
		{`["` + c + `",1]`, true},
		{`[ "` + c + `" , 1 ]`, true},
		{"[\n\"" + c + "\",\n1\n]", true},
		{`["` + c + `",01]`, false},
		{`["` + c + `",-1]`, false},
		{`["` + c + `",1,1]`, false},
		{`["` + c + `"]`, false},
		{`["` + strings.ToUpper(c) + `",1]`, false},
		{`[1,"` + c + `"]`, false},
		{`{"cid":"` + c + `"}`, false},
	}
	for _, tt := range tests {
		var ref manifest.ChunkRef
		err := json.Unmarshal([]byte(tt.json), &ref)
		if tt.ok != (err == nil) {
			t.Errorf("%s: got %v, want ok=%v", tt.json, err, tt.ok)
		}
		if err == nil && (ref.CID.String() != c || ref.Size != 1) {
			t.Errorf("%s: decoded %v", tt.json, ref)
		}
	}
}

// The entry types round-trip through signing and strict decoding, in the form the
// package documentation gives; a manifest without them encodes as before (TestGolden).
func TestManifestEntryTypes(t *testing.T) {
	root := pinned(t)
	m := sampleManifest()
	m.Files[0].Mode = 0o4755
	m.Files = append(m.Files,
		manifest.File{Path: "var/empty", Type: manifest.TypeDir, Mode: 0o750},
		manifest.File{Path: "bin/agent2", Type: manifest.TypeHardlink, Mode: 0o4755, Link: "bin/agent"},
		manifest.File{Path: "etc/spool", Mode: 0o777, Link: "/var/spool/agent"},
	)
	p1 := must[[]byte](t)(m.Marshal())
	for _, want := range []string{
		`{"path":"var/empty","type":"dir","mode":488,"size":0,"sha256":"","chunks":[]}`,
		`{"path":"bin/agent2","type":"hardlink","mode":2541,"size":0,"sha256":"","link":"bin/agent","chunks":[]}`,
		`{"path":"etc/spool","mode":511,"size":0,"sha256":"","link":"/var/spool/agent","chunks":[]}`,
	} {
		if !bytes.Contains(p1, []byte(want)) {
			t.Errorf("payload lacks %s:\n%s", want, p1)
		}
	}
	got := must[*manifest.Manifest](t)(root.VerifyManifest(must[[]byte](t)(manifest.Sign(manifest.TypeManifest, p1, privs(t, 1, 2)...)), now))
	if p2 := must[[]byte](t)(got.Marshal()); !bytes.Equal(p1, p2) {
		t.Fatalf("round trip changed the manifest:\n%s\n%s", p1, p2)
	}
	if f := got.Files[len(got.Files)-3]; !f.IsDir() || f.IsRegular() || f.IsLink() {
		t.Errorf("directory decoded as %+v", f)
	}
	if f := got.Files[len(got.Files)-2]; !f.IsHardlink() || f.IsLink() || f.IsRegular() {
		t.Errorf("hard link decoded as %+v", f)
	}
}

func TestFileModeBits(t *testing.T) {
	for _, bits := range []uint32{0, 0o644, 0o755, 0o4755, 0o2755, 0o1777, 0o7777, 0o2750} {
		if got := manifest.ModeBits(manifest.FileMode(bits)); got != bits {
			t.Errorf("ModeBits(FileMode(%#o)) = %#o", bits, got)
		}
	}
	if m := manifest.FileMode(0o4755); m&fs.ModeSetuid == 0 || m.Perm() != 0o755 {
		t.Errorf("FileMode(0o4755) = %v", m)
	}
	if got := manifest.ModeBits(fs.ModeDir | fs.ModeSetgid | 0o750); got != 0o2750 {
		t.Errorf("ModeBits(dir setgid 0750) = %#o, want 0o2750", got)
	}
}

// TestFileOver4GiB: chunk sizes are 32-bit, a file's size is not. A 5 GiB file of
// 1 MiB chunks validates, round-trips and counts whole in TotalSize.
func TestFileOver4GiB(t *testing.T) {
	m := sampleManifest()
	big := manifest.File{Path: "var/disk.img", Mode: 0o644, SHA256: m.Files[0].SHA256}
	c := chunkOf("x")
	c.Size = manifest.MaxChunkSize
	for range 5 << 10 {
		big.Chunks = append(big.Chunks, c)
	}
	big.Size = 5 << 30
	m.Files = append(m.Files, big)
	p := must[[]byte](t)(m.Marshal())
	got := must[*manifest.Manifest](t)(pinned(t).VerifyManifest(must[[]byte](t)(manifest.Sign(manifest.TypeManifest, p, privs(t, 1, 2)...)), now))
	if f := got.Files[len(got.Files)-1]; f.Size != 5<<30 {
		t.Errorf("size %d after the round trip, want %d", f.Size, int64(5<<30))
	}
	if got.TotalSize() != 5<<30+31+18+17 {
		t.Errorf("TotalSize %d", got.TotalSize())
	}
	m.Files[len(m.Files)-1].Size = 1 << 30 // the sum modulo 2^32 would match this
	if err := m.Validate(); !errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("a size off by 4 GiB validated: %v", err)
	}
}
