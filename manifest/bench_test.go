package manifest_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/patchmesh/patchmesh/manifest"
)

// bigManifest describes a 1 GiB release: 256 files of 64 chunks of 64 KiB.
func bigManifest(b *testing.B, files, chunksPerFile int) *manifest.Manifest {
	m := sampleManifest()
	m.Files, m.Hooks = nil, manifest.Hooks{}
	var buf [8]byte
	for i := range files {
		f := fileOf(fmt.Sprintf("lib/module-%03d/data.bin", i), 0o644)
		for j := range chunksPerFile {
			binary.LittleEndian.PutUint64(buf[:], uint64(i*chunksPerFile+j))
			h, err := multihash.Sum(buf[:], multihash.SHA2_256, -1)
			if err != nil {
				b.Fatal(err)
			}
			f.Chunks = append(f.Chunks, manifest.ChunkRef{CID: cid.NewCidV1(cid.Raw, h), Size: 64 << 10})
			f.Size += 64 << 10
		}
		m.Files = append(m.Files, f)
	}
	return m
}

// BenchmarkVerifyManifest verifies the manifest of a 1 GiB release and reports the
// cost against plain encoding/json decoding of the same payload, measured in the
// same run, and the envelope bytes per chunk (which count against the WAN budget).
func BenchmarkVerifyManifest(b *testing.B) {
	const files, perFile = 256, 64
	m := bigManifest(b, files, perFile)
	payload := must[[]byte](b)(m.Marshal())
	env := must[[]byte](b)(manifest.Sign(manifest.TypeManifest, payload, privs(b, 0, 1)...))
	root := rootV1(b)
	b.SetBytes(int64(len(env)))
	n := 0
	for b.Loop() {
		if _, err := root.VerifyManifest(env, now); err != nil {
			b.Fatal(err)
		}
		n++
	}
	verify := b.Elapsed()
	// The baseline runs after the timed loop, as many times, in the same process.
	start := time.Now()
	for range n {
		var x manifest.Manifest
		if err := json.Unmarshal(payload, &x); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(verify)/float64(time.Since(start)), "x-json.Unmarshal")
	b.ReportMetric(float64(len(env))/float64(files*perFile), "envelope-B/chunk")
}
