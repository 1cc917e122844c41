package repo

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/manifest"
)

// writeRepoRoot writes r, signed by keys, as the repository's root.json.
func writeRepoRoot(t *testing.T, repoDir string, r *manifest.TrustRoot, keys ...manifest.PrivateKey) {
	t.Helper()
	env, err := r.Sign(keys...)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(filepath.Join(repoDir, RootFile), env, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot lists every file of dir with its bytes.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPublishRefusesWhatNodesWould(t *testing.T) {
	a, b, foreign := newKey(t), newKey(t), newKey(t)
	tests := []struct {
		name    string
		root    *manifest.TrustRoot
		signers []manifest.PrivateKey // of the root
		keys    []manifest.PrivateKey
		pending bool
		want    error // nil: published
	}{
		{name: "the root's key", root: newRoot(t, 1, a), signers: []manifest.PrivateKey{a}, keys: []manifest.PrivateKey{a}},
		{name: "a foreign key", root: newRoot(t, 1, a), signers: []manifest.PrivateKey{a}, keys: []manifest.PrivateKey{foreign}, want: manifest.ErrUnknownKey},
		{name: "a foreign key beside the root's", root: newRoot(t, 1, a), signers: []manifest.PrivateKey{a}, keys: []manifest.PrivateKey{a, foreign}, want: manifest.ErrUnknownKey},
		{name: "a foreign key, pending", root: newRoot(t, 2, a, b), signers: []manifest.PrivateKey{a, b}, keys: []manifest.PrivateKey{foreign}, pending: true, want: manifest.ErrUnknownKey},
		{name: "below the threshold", root: newRoot(t, 2, a, b), signers: []manifest.PrivateKey{a, b}, keys: []manifest.PrivateKey{a}, want: manifest.ErrThreshold},
		{name: "the same key twice is one", root: newRoot(t, 2, a, b), signers: []manifest.PrivateKey{a, b}, keys: []manifest.PrivateKey{a, a}, want: manifest.ErrThreshold},
		{name: "two keys of two", root: newRoot(t, 2, a, b), signers: []manifest.PrivateKey{a, b}, keys: []manifest.PrivateKey{a, b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repoDir := t.TempDir()
			writeRepoRoot(t, repoDir, tt.root, tt.signers...)
			src, _ := releaseTree(t, 16)
			mustPublish(t, repoDir, src, publishOpts("1.0.0", tt.signers...))
			before := snapshot(t, repoDir)

			opts := publishOpts("1.1.0", tt.keys...)
			opts.Pending = tt.pending
			_, err := Publish(context.Background(), repoDir, src, opts)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("publish: %v", err)
				}
				if _, _, _, _, err := LoadRelease(context.Background(), DirReader(repoDir), tt.root, "stable", testNow); err != nil {
					t.Fatalf("nodes refuse what was published: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("publish: %v, want %v", err, tt.want)
			}
			if after := snapshot(t, repoDir); len(after) != len(before) {
				t.Fatalf("a refused publish changed the repository: %d files before, %d after", len(before), len(after))
			}
			for p, b := range before {
				if snapshot(t, repoDir)[p] != b {
					t.Fatalf("a refused publish changed %s", p)
				}
			}
		})
	}
}

func TestCoSigningSwitchesTheHeadAtTheThreshold(t *testing.T) {
	a, b, c := newKey(t), newKey(t), newKey(t)
	root := newRoot(t, 2, a, b, c)
	repoDir := t.TempDir()
	writeRepoRoot(t, repoDir, root, a, b, c)
	src, _ := releaseTree(t, 16)
	mustPublish(t, repoDir, src, publishOpts("1.0.0", a, b))

	head := func() string {
		_, _, m, _, err := LoadRelease(context.Background(), DirReader(repoDir), root, "stable", testNow)
		if err != nil {
			t.Fatalf("nodes see no valid release: %v", err)
		}
		return m.Version
	}
	opts := publishOpts("1.1.0", a)
	opts.Pending = true
	sum := mustPublish(t, repoDir, src, opts)
	if !sum.Pending || sum.Signing.Stage != "manifest" || len(sum.Signing.ManifestSigners) != 1 {
		t.Fatalf("pending publish: %+v %+v", sum, sum.Signing)
	}
	if got := head(); got != "1.0.0" {
		t.Fatalf("head moved to %s before the threshold", got)
	}
	if _, err := Publish(context.Background(), repoDir, src, publishOpts("1.2.0", a, b)); !errors.Is(err, ErrPending) {
		t.Fatalf("publish over a pending release: %v, want ErrPending", err)
	}

	steps := []struct {
		key   manifest.PrivateKey
		stage string
		want  error
	}{
		{key: newKey(t), want: manifest.ErrUnknownKey},
		{key: a, stage: "manifest"}, // again: still one signature
		{key: b, stage: "head"},     // manifest complete; head signed by b
		{key: c, stage: "done"},
	}
	for i, s := range steps {
		st, err := Sign(repoDir, "stable", []manifest.PrivateKey{s.key}, testNow)
		if s.want != nil {
			if !errors.Is(err, s.want) {
				t.Fatalf("step %d: sign: %v, want %v", i, err, s.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: sign: %v", i, err)
		}
		if st.Stage != s.stage {
			t.Fatalf("step %d: stage %q, want %q (%+v)", i, st.Stage, s.stage, st)
		}
		if want := map[bool]string{true: "1.1.0", false: "1.0.0"}[s.stage == "done"]; head() != want {
			t.Fatalf("step %d: head at %s, want %s", i, head(), want)
		}
	}
	if _, err := Sign(repoDir, "stable", []manifest.PrivateKey{a}, testNow); !errors.Is(err, ErrNoPending) {
		t.Fatalf("sign with nothing pending: %v", err)
	}
	rep, err := Verify(context.Background(), repoDir, root, VerifyOptions{Now: testNow})
	if err != nil || len(rep.Problems) != 0 || len(rep.Orphans) != 0 || rep.Manifests != 2 {
		t.Fatalf("verify after co-signing: %+v, %v", rep, err)
	}
}

func TestVerifyKeptReleasesAndOrphans(t *testing.T) {
	key := newKey(t)
	root := newRoot(t, 1, key)
	type fixture struct {
		repoDir string
		old     *manifest.Manifest // 1.0.0
		cur     *manifest.Manifest // 1.1.0
	}
	oldOnly := func(f fixture) cid.Cid {
		in := map[cid.Cid]bool{}
		for _, file := range f.cur.Files {
			for _, c := range file.Chunks {
				in[c.CID] = true
			}
		}
		for _, file := range f.old.Files {
			for _, c := range file.Chunks {
				if !in[c.CID] {
					return c.CID
				}
			}
		}
		t.Fatal("no chunk only the old release uses")
		return cid.Undef
	}
	tests := []struct {
		name    string
		tamper  func(t *testing.T, f fixture)
		object  string // a problem names this; "": none
		message string
		orphans int
	}{
		{name: "intact"},
		{
			name: "a flipped byte in the older manifest",
			tamper: func(t *testing.T, f fixture) {
				flipByte(t, filepath.Join(f.repoDir, ManifestPath("stable", 1)), func(n int) int { return n / 2 })
			},
			object: "manifest manifests/stable/1.json",
		},
		{
			name: "a flipped byte in a chunk only the older release uses",
			tamper: func(t *testing.T, f fixture) {
				flipByte(t, filepath.Join(f.repoDir, ChunkPath(oldOnly(f))), func(n int) int { return n / 2 })
			},
			object: "of stable 1.0.0", message: "do not match",
		},
		{
			name: "an older manifest removed: its chunks are orphans",
			tamper: func(t *testing.T, f fixture) {
				os.Remove(filepath.Join(f.repoDir, ManifestPath("stable", 1)))
			},
			orphans: -1, // some
		},
		{
			name: "a stray file among the chunks",
			tamper: func(t *testing.T, f fixture) {
				os.WriteFile(filepath.Join(f.repoDir, "chunks", "zz", ".tmp-123"), []byte("x"), 0o644)
			},
			orphans: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repoDir := t.TempDir()
			src, files := releaseTree(t, 64)
			mustPublish(t, repoDir, src, publishOpts("1.0.0", key))
			writeTree(t, src, map[string][]byte{"lib/module.so": scatterEdit(files["lib/module.so"], 9, 4, 0.5)})
			os.MkdirAll(filepath.Join(repoDir, "chunks", "zz"), 0o755)
			mustPublish(t, repoDir, src, publishOpts("1.1.0", key))
			var f fixture
			f.repoDir = repoDir
			var err error
			if f.old, err = root.VerifyManifestKept(readFile(t, filepath.Join(repoDir, ManifestPath("stable", 1)))); err != nil {
				t.Fatal(err)
			}
			if f.cur, err = root.VerifyManifestKept(readFile(t, filepath.Join(repoDir, ManifestPath("stable", 2)))); err != nil {
				t.Fatal(err)
			}
			if tt.tamper != nil {
				tt.tamper(t, f)
			}
			rep, err := Verify(context.Background(), repoDir, root, VerifyOptions{Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.orphans > 0 && len(rep.Orphans) != tt.orphans, tt.orphans < 0 && len(rep.Orphans) == 0, tt.orphans == 0 && len(rep.Orphans) != 0:
				t.Errorf("orphans %v, want %d", rep.Orphans, tt.orphans)
			}
			if tt.object == "" {
				if len(rep.Problems) != 0 || !rep.Channels[0].OK {
					t.Fatalf("problems %+v", rep.Problems)
				}
				return
			}
			if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Object, tt.object) || !strings.Contains(rep.Problems[0].Error, tt.message) {
				t.Fatalf("problems %+v, want one naming %q saying %q", rep.Problems, tt.object, tt.message)
			}
			if rep.Channels[0].OK {
				t.Errorf("channel reported OK: %+v", rep.Channels[0])
			}
		})
	}
}

func TestVerifyComparesTheRepositoryRoot(t *testing.T) {
	key, other := newKey(t), newKey(t)
	pinned := newRoot(t, 1, key)
	next, err := pinned.Next(1, other.Public())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		root    *manifest.TrustRoot // written as root.json; nil: none
		signers []manifest.PrivateKey
		message string // "": no problem
	}{
		{name: "none"},
		{name: "the pinned root", root: pinned, signers: []manifest.PrivateKey{key}},
		{name: "another root of the same version", root: newRoot(t, 1, other), signers: []manifest.PrivateKey{other}, message: "different root"},
		{name: "a later version no rotation reaches", root: next, signers: []manifest.PrivateKey{other}, message: "reaches only version 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repoDir := t.TempDir()
			src, _ := releaseTree(t, 16)
			mustPublish(t, repoDir, src, publishOpts("1.0.0", key))
			if tt.root != nil {
				writeRepoRoot(t, repoDir, tt.root, tt.signers...)
			}
			rep, err := Verify(context.Background(), repoDir, pinned, VerifyOptions{Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if tt.message == "" {
				if len(rep.Problems) != 0 {
					t.Fatalf("problems %+v", rep.Problems)
				}
				return
			}
			if len(rep.Problems) != 1 || rep.Problems[0].Object != RootFile || !strings.Contains(rep.Problems[0].Error, tt.message) {
				t.Fatalf("problems %+v, want root.json: %q", rep.Problems, tt.message)
			}
		})
	}
}

// TestCoSigningCrashAfterTheSwitch: Sign switched the head and stopped before
// removing the pending file. The next Sign or Publish sees that it is done.
func TestCoSigningCrashAfterTheSwitch(t *testing.T) {
	a, b := newKey(t), newKey(t)
	root := newRoot(t, 2, a, b)
	for _, next := range []string{"sign", "publish"} {
		t.Run(next, func(t *testing.T) {
			repoDir := t.TempDir()
			writeRepoRoot(t, repoDir, root, a, b)
			src, _ := releaseTree(t, 16)
			opts := publishOpts("1.0.0", a)
			opts.Pending = true
			mustPublish(t, repoDir, src, opts)
			if _, err := Sign(repoDir, "stable", []manifest.PrivateKey{b}, testNow); err != nil {
				t.Fatal(err)
			}
			pendingFile := filepath.Join(repoDir, filepath.FromSlash(PendingPath("stable")))
			left := readFile(t, pendingFile)
			if st, err := Sign(repoDir, "stable", []manifest.PrivateKey{a}, testNow); err != nil || st.Stage != "done" {
				t.Fatalf("sign: %+v, %v", st, err)
			}
			if err := os.WriteFile(pendingFile, left, 0o644); err != nil {
				t.Fatal(err)
			}
			// The pending file as the crash leaves it: its head lacks the last signature.
			var err error
			if next == "sign" {
				_, err = Sign(repoDir, "stable", []manifest.PrivateKey{a}, testNow)
			} else {
				_, err = Publish(context.Background(), repoDir, src, publishOpts("1.1.0", a, b))
			}
			if err != nil {
				t.Fatalf("%s after the crash: %v", next, err)
			}
			if _, err := os.Stat(pendingFile); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("pending file left: %v", err)
			}
		})
	}
}
