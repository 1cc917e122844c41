package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/api"
)

// TestNodeFollowsTwoChannels: one node follows an engine (its first channel)
// and its signature databases (--follow db=DIR) from one repository. Both
// install folders get their release; a file both releases hold crosses the
// WAN once; new engine releases, and the collection after them, leave the
// databases' install and chunks intact.
func TestNodeFollowsTwoChannels(t *testing.T) {
	pub := newPublisher(t)
	engine := filepath.Join(pub.Dir, "engine")
	db := filepath.Join(pub.Dir, "db")
	makeTree(t, engine, 3, 41)
	makeTree(t, db, 2, 42)
	// The engine's big file is in the databases too: its chunks are fetched
	// once, and kept for db when the engine moves on.
	shared, err := os.ReadFile(filepath.Join(engine, "bin/app"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "shared.bin"), shared, 0o644); err != nil {
		t.Fatal(err)
	}
	// A file of engine 1.0.0 alone, whose chunks are collected once it is pruned.
	makeTree(t, filepath.Join(pub.Dir, "scratch"), 1, 43)
	extra, err := os.ReadFile(filepath.Join(pub.Dir, "scratch", "bin/app"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(engine, "extra.bin"), extra, 0o644); err != nil {
		t.Fatal(err)
	}
	s1 := pub.Publish("1.0.0", engine)
	sdb := pub.Publish("1.0.0", db, "--channel", "db")
	if sdb.ReusedBytes == 0 {
		t.Fatalf("publishing db wrote all its chunks (%+v): the shared file's chunks were not shared", sdb)
	}
	cr := newCountingRepo(t, pub.Repo)
	dbDir := filepath.Join(t.TempDir(), "db")
	n := newNode(t, nodeOpts{Name: "two", Trust: pub.Trust, Sources: []string{cr.URL},
		Extra: []string{"--follow", "db=" + dbDir, "--keep", "1"}})

	waitFor(t, 60*time.Second, func() bool {
		st, err := n.status()
		return err == nil && len(st.Channels) == 2 && st.Channels[0].Current != nil && st.Channels[1].Current != nil
	}, "both channels to be applied")
	sameTree(t, engine, filepath.Join(n.Install, "current"))
	sameTree(t, db, filepath.Join(dbDir, "current"))
	st := n.Status(t)
	if c := st.Channels[1]; c.Name != "db" || c.InstallDir != dbDir || c.Current.Version != "1.0.0" {
		t.Errorf("status of the db channel: %+v", c)
	}
	if st.Channel != "stable" || st.Current == nil || st.Current.Version != "1.0.0" || len(st.Releases) != 1 {
		t.Errorf("the top-level status is not the first channel's alone: channel %s, current %+v, releases %+v", st.Channel, st.Current, st.Releases)
	}
	if got, want := cr.stats.ChunkBytes.Load(), s1.NewBytes+sdb.NewBytes; got != want {
		t.Errorf("the seed served %d chunk bytes; want %d, each chunk of both channels once", got, want)
	}
	dbm := readManifest(t, pub.Repo, sdb.ManifestPath)
	for _, f := range dbm.Files {
		for _, r := range f.Chunks {
			if g := cr.Gets(repo.ChunkPath(r.CID)); g != 1 {
				t.Errorf("chunk %s of db's %s fetched %d times, want once", r.CID, f.Path, g)
			}
		}
	}
	out := mustPM(t, "status", "--api", n.API)
	if !bytes.Contains([]byte(out.stdout), []byte("db")) || !bytes.Contains([]byte(out.stdout), []byte(dbDir)) {
		t.Errorf("patchmesh status does not list the db channel:\n%s", out.stdout)
	}

	// Three more engine releases, each a new build: with --keep 1 the node
	// prunes engine 1.0.0 and collects the chunks only it needed, and none
	// of db's, the shared ones included.
	old := readManifest(t, pub.Repo, s1.ManifestPath)
	if err := os.Remove(filepath.Join(engine, "extra.bin")); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"2.0.0", "3.0.0", "4.0.0"} {
		makeTree(t, engine, 3, uint64(50+i))
		pub.Publish(v, engine)
		if r := n.Update(t); r.code != 0 {
			t.Fatalf("update %d to %s: %+v", i, v, r)
		}
		n.WaitVersion(t, v, 30*time.Second)
	}
	sameTree(t, engine, filepath.Join(n.Install, "current"))
	waitFor(t, 90*time.Second, func() bool {
		log, _ := os.ReadFile(n.log)
		return bytes.Contains(log, []byte("chunks collected"))
	}, "the store to be collected after the engine's releases")
	sameTree(t, db, filepath.Join(dbDir, "current"))
	if c := n.Status(t).Channels[1]; c.Current == nil || c.Current.Version != "1.0.0" {
		t.Errorf("db channel after the engine's releases: %+v", c)
	}
	// Rollback and retry of a channel the node does not follow say so.
	if _, err := api.NewClient(n.API, "").Rollback(context.Background(), "nosuch", ""); !errors.Is(err, api.ErrNoChannel) {
		t.Errorf("rollback of an unknown channel: %v, want ErrNoChannel", err)
	}
	n.Stop()

	s, err := store.Open(filepath.Join(n.Data, "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	has := func(c cid.Cid) bool {
		ok, err := s.Has(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, f := range dbm.Files {
		for _, r := range f.Chunks {
			if !has(r.CID) {
				t.Errorf("chunk %s of db's %s was collected", r.CID, f.Path)
			}
		}
	}
	var extraChunks []cid.Cid
	for _, f := range old.Files {
		if f.Path == "extra.bin" {
			for _, r := range f.Chunks {
				extraChunks = append(extraChunks, r.CID)
			}
		}
	}
	if len(extraChunks) == 0 {
		t.Fatal("engine 1.0.0 has no extra.bin")
	}
	for _, c := range extraChunks {
		if has(c) {
			t.Errorf("chunk %s of the pruned engine 1.0.0's extra.bin was not collected", c)
		}
	}
}
