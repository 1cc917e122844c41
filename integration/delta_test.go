package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

// readManifest reads a published manifest from the repository folder, unverified.
func readManifest(t *testing.T, repoDir, path string) *manifest.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	env, err := manifest.DecodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest.Manifest
	if err := json.Unmarshal(env.Payload, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestSiteUpdatesByDelta: a site of three nodes holding v1 moves to v2 by the
// deltas publish made against v1: the seed serves each delta object once and
// none of the chunks the deltas make, and every node rebuilds the new chunks
// from its own v1. A node that never held v1 gets v2 by chunks.
func TestSiteUpdatesByDelta(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 8, 21)
	cr := newCountingRepo(t, pub.Repo)
	key := siteKey(t)
	nodes := site(t, pub, key, 3, []string{cr.URL})

	s1 := pub.Publish("1.0.0", src)
	updateAll(t, nodes)
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 90*time.Second)
	}
	// The head names the compressed manifest: the site moves it once, by its
	// digest, and never the plain one.
	if got, plain := cr.Gets(repo.ManifestZstPath("stable", s1.Sequence)), cr.Gets(s1.ManifestPath); s1.ManifestZstBytes == 0 || got != 1 || plain != 0 {
		t.Errorf("v1: the seed served the compressed manifest (%d bytes) %d times and the plain one %d times; want once and never", s1.ManifestZstBytes, got, plain)
	}

	editTree(t, src, 24)
	// A new sibling built from the same sources: bin/app with other edits.
	// Its new chunks come from a delta whose base is bin/app of v2, which
	// the nodes rebuild first from v1.
	app, err := os.ReadFile(filepath.Join(src, "bin/app"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(app)-64; i += 1 << 20 {
		copy(app[i+7000:], "a sibling differs here")
	}
	if err := os.WriteFile(filepath.Join(src, "bin/app2"), app, 0o755); err != nil {
		t.Fatal(err)
	}
	s2 := pub.Publish("2.0.0", src)
	if s2.Deltas == 0 || s2.DeltaOutput != s2.NewBytes {
		t.Fatalf("publish made %d deltas rebuilding %d of %d new bytes; want deltas for all of them", s2.Deltas, s2.DeltaOutput, s2.NewBytes)
	}
	m2 := readManifest(t, pub.Repo, s2.ManifestPath)
	siblings := 0
	for _, d := range m2.Deltas {
		for _, b := range d.Bases {
			if d.Path == "bin/app2" && b.SHA256 == fileOf(m2, "bin/app").SHA256 {
				siblings++
			}
		}
	}
	if siblings == 0 {
		t.Fatalf("no delta of bin/app2 has bin/app of the same release as base: %+v", m2.Deltas)
	}
	before := cr.stats.Snapshot()
	updateAll(t, nodes)
	for _, n := range nodes {
		n.WaitVersion(t, "2.0.0", 90*time.Second)
		sameTree(t, src, filepath.Join(n.Install, "current"))
	}
	after := cr.stats.Snapshot()

	for _, d := range m2.Deltas {
		if got := cr.Gets(repo.ChunkPath(d.Object.CID)); got != 1 {
			t.Errorf("the seed served delta %s %d times to the site, want once", d.Object.CID, got)
		}
		f := fileOf(m2, d.Path)
		for _, r := range d.Runs {
			for _, c := range f.Chunks[r.First : r.First+r.Count] {
				if got := cr.Gets(repo.ChunkPath(c.CID)); got != 0 {
					t.Errorf("the seed served chunk %s, which a delta makes, %d times", c.CID, got)
				}
			}
		}
	}
	// The site pulled the manifest once, as its delta against v1's.
	if s2.ManifestDeltaBytes == 0 || s2.ManifestDeltaBytes > s2.ManifestBytes/4 {
		t.Errorf("manifest delta of %d bytes for a %d-byte manifest; want one, at most a quarter of it", s2.ManifestDeltaBytes, s2.ManifestBytes)
	}
	if got, plain := cr.Gets(repo.ManifestDeltaPath("stable", s2.Sequence, s2.PreviousSeq)), cr.Gets(s2.ManifestPath); got != 1 || plain != 0 {
		t.Errorf("the seed served the manifest's delta %d times and the manifest %d times; want once and never", got, plain)
	}
	served := after.ChunkBytes - before.ChunkBytes
	t.Logf("v2: %d new chunk bytes, %d bytes of deltas; the seed served %d chunk bytes to a site of 3", s2.NewBytes, s2.DeltaBytes, served)
	if served != s2.DeltaBytes {
		t.Errorf("the seed served %d chunk bytes for v2, want the %d bytes of its deltas", served, s2.DeltaBytes)
	}
	for _, n := range nodes {
		st := n.Status(t)
		if r := st.Current; r == nil || r.Rebuilt != s2.NewBytes {
			t.Errorf("%s: release record %+v, want all %d new bytes rebuilt from deltas", st.Node.Name, r, s2.NewBytes)
		}
	}

	// A node with no v1 can use only the deltas whose bases are all files of
	// v2 itself (bin/app2's): it gets the rest by chunks.
	inRelease := make(map[string]bool)
	for _, f := range m2.Files {
		inRelease[f.SHA256] = true
	}
	var want int64
	for _, d := range m2.Deltas {
		own := len(d.Bases) > 0
		for _, b := range d.Bases {
			own = own && inRelease[b.SHA256]
		}
		if own {
			want += d.Output(fileOf(m2, d.Path))
		}
	}
	fresh := newNode(t, nodeOpts{Name: "fresh", Trust: pub.Trust, Sources: []string{cr.URL}})
	fresh.Update(t)
	fresh.WaitVersion(t, "2.0.0", 60*time.Second)
	sameTree(t, src, filepath.Join(fresh.Install, "current"))
	if r := fresh.Status(t).Current; r == nil || want == 0 || r.Rebuilt != want {
		t.Errorf("fresh node: release record %+v, want %d bytes rebuilt, from bin/app2's deltas", r, want)
	}
}

func fileOf(m *manifest.Manifest, path string) *manifest.File {
	for i := range m.Files {
		if m.Files[i].Path == path {
			return &m.Files[i]
		}
	}
	return nil
}

// TestExpiredKeptManifestStillABase: a node keeps using the release it runs
// as the base of deltas, and keeps its chunks, after that release's manifest
// has expired. Expiry says whether a manifest may be installed, not whether
// the node's own stored copy is the one signed.
func TestExpiredKeptManifestStillABase(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 4, 31)
	cr := newCountingRepo(t, pub.Repo)
	n := newNode(t, nodeOpts{Name: "old", Trust: pub.Trust, Sources: []string{cr.URL}})

	const ttl = 4 * time.Second
	pub.Publish("1.0.0", src, "--manifest-ttl", ttl.String())
	expires := time.Now().Add(ttl)
	if r := n.Update(t); r.code != 0 {
		t.Fatalf("update to 1.0.0: %+v", r)
	}
	time.Sleep(time.Until(expires) + time.Second)

	editTree(t, src, 37)
	s2 := pub.Publish("2.0.0", src)
	if s2.Deltas == 0 {
		t.Fatalf("publish made no delta against 1.0.0: %+v", s2)
	}
	if r := n.Update(t); r.code != 0 {
		t.Fatalf("update to 2.0.0: %+v", r)
	}
	sameTree(t, src, filepath.Join(n.Install, "current"))
	if r := n.Status(t).Current; r == nil || r.Rebuilt == 0 {
		t.Errorf("release record %+v: no bytes rebuilt from deltas over the expired 1.0.0", r)
	}
	for _, d := range readManifest(t, pub.Repo, s2.ManifestPath).Deltas {
		if cr.Gets(repo.ChunkPath(d.Object.CID)) != 1 {
			t.Errorf("delta %s not fetched once", d.Object.CID)
		}
	}
	if log, _ := os.ReadFile(n.log); bytes.Contains(log, []byte("keeping all chunks")) {
		t.Errorf("collect found the expired release's manifest unreadable")
	}
}
