package repo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
)

func TestUpdateRootFollowsRotations(t *testing.T) {
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	root1 := newRoot(t, 1, k1)
	root2, err := root1.Next(1, k2.Public())
	if err != nil {
		t.Fatal(err)
	}
	root3, err := root2.Next(1, k3.Public())
	if err != nil {
		t.Fatal(err)
	}
	sign := func(r *manifest.TrustRoot, keys ...manifest.PrivateKey) []byte {
		env, err := r.Sign(keys...)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	good2, good3 := sign(root2, k1, k2), sign(root3, k2, k3)
	tests := []struct {
		name        string
		roots       map[uint64][]byte
		wantVersion uint64
		wantEnv     []byte
		wantErr     error  // errors.Is; nil: no error
		message     string // part of the error
		verifyOK    bool   // a release signed by k3 verifies
	}{
		{name: "no rotation", wantVersion: 1},
		{name: "chain 1 to 2 to 3", roots: map[uint64][]byte{2: good2, 3: good3}, wantVersion: 3, wantEnv: good3, verifyOK: true},
		{name: "chain stops at 2", roots: map[uint64][]byte{2: good2}, wantVersion: 2, wantEnv: good2},
		{name: "a gap is not crossed", roots: map[uint64][]byte{3: good3}, wantVersion: 1},
		{
			name: "root 2 not signed by the old key", roots: map[uint64][]byte{2: sign(root2, k2), 3: good3},
			wantVersion: 1, wantErr: manifest.ErrThreshold, message: "trust root 2",
		},
		{
			name: "root 2 signed by the old key only", roots: map[uint64][]byte{2: sign(root2, k1), 3: good3},
			wantVersion: 1, wantErr: manifest.ErrThreshold, message: "trust root 2",
		},
		{
			name: "root 3 signed by a key rotated out", roots: map[uint64][]byte{2: good2, 3: sign(root3, k1, k3)},
			wantVersion: 2, wantEnv: good2, wantErr: manifest.ErrThreshold, message: "trust root 3",
		},
		{
			name: "root 3 in the place of root 2", roots: map[uint64][]byte{2: good3},
			wantVersion: 1, wantErr: manifest.ErrRootVersion, message: "trust root 2",
		},
		{
			name: "an oversized root", roots: map[uint64][]byte{2: bytes.Repeat([]byte(" "), manifest.MaxRootSize+1)},
			wantVersion: 1, wantErr: manifest.ErrTooLarge, message: "read trust root 2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repoDir := t.TempDir()
			for v, env := range tt.roots {
				if err := WriteFileAtomic(filepath.Join(repoDir, filepath.FromSlash(RootPath(v))), env, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, env, err := UpdateRoot(context.Background(), DirReader(repoDir), root1)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("update root: %v", err)
			}
			if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.message)) {
				t.Fatalf("update root: %v; want %q about %q", err, tt.wantErr, tt.message)
			}
			if got.Version != tt.wantVersion || !bytes.Equal(env, tt.wantEnv) {
				t.Errorf("update root reached version %d (envelope %d bytes), want %d (%d bytes)", got.Version, len(env), tt.wantVersion, len(tt.wantEnv))
			}

			// Verify walks the same chain from the pinned root before it checks releases.
			src, _ := releaseTree(t, 4)
			mustPublish(t, repoDir, src, publishOpts("1.0.0", k3))
			rep, err := Verify(context.Background(), repoDir, root1, VerifyOptions{Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if rep.RootVersion != tt.wantVersion {
				t.Errorf("verify used root %d, want %d", rep.RootVersion, tt.wantVersion)
			}
			if ok := len(rep.Problems) == 0; ok != tt.verifyOK {
				t.Errorf("verify of a release signed by the newest key: problems %+v, want ok=%v", rep.Problems, tt.verifyOK)
			}
			if tt.wantErr != nil && (len(rep.Problems) == 0 || rep.Problems[0].Object != "trust root") {
				t.Errorf("verify problems %+v do not name the trust root", rep.Problems)
			}
		})
	}
}

func TestWriteFileAtomicReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "sub", "doc.json")
	for _, data := range [][]byte{[]byte("first"), []byte("second, longer")} {
		if err := WriteFileAtomic(name, data, 0o640); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, name); !bytes.Equal(got, data) {
			t.Fatalf("read %q, want %q", got, data)
		}
	}
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	ents, err := os.ReadDir(filepath.Dir(name))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("folder holds %d entries, want the file alone (no temporary files left)", len(ents))
	}
	// A failed write leaves the old content.
	if err := os.Mkdir(filepath.Join(dir, "sub", "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "sub", "blocker"), []byte("x"), 0o644); err == nil {
		t.Error("writing over a directory succeeded")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "sub")); len(ents) != 2 {
		t.Errorf("a failed write left %d entries, want 2", len(ents))
	}
}

func TestLayout(t *testing.T) {
	tests := []struct {
		channel string
		ok      bool
	}{
		{"stable", true}, {"beta-2", true}, {"a.b_c", true},
		{"", false}, {"Stable", false}, {"../x", false}, {".hidden", false}, {"a/b", false}, {strings.Repeat("a", 65), false},
	}
	for _, tt := range tests {
		if err := ValidChannel(tt.channel); (err == nil) != tt.ok {
			t.Errorf("ValidChannel(%q) = %v, want ok=%v", tt.channel, err, tt.ok)
		}
	}
	c := chunk.Sum([]byte("patchmesh"))
	p := ChunkPath(c)
	s := c.String()
	if p != "chunks/"+s[len(s)-3:len(s)-1]+"/"+s {
		t.Errorf("chunk path %s", p)
	}
	if HeadPath("stable") != "channels/stable/head.json" || ManifestPath("stable", 7) != "manifests/stable/7.json" || RootPath(2) != "roots/2.json" {
		t.Error("document paths changed; they are the repository format")
	}
}
