package integration

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestNodeAppliesExactTree publishes a tree shaped like a Debian package's —
// symlinks absolute, leaving the tree and dangling, nested empty directories, a
// directory of mode 0750, setgid and setuid files, an executable, a hard-linked
// pair, an empty file — and has a real node apply it. The release must equal the
// tree by `diff -r --no-dereference` and by a walk comparing kinds, modes (less
// the write bits the installer clears) and link targets.
func TestNodeAppliesExactTree(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	outside := filepath.Join(pub.Dir, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	makeDebianTree(t, src)
	s := pub.Publish("1.0.0", src, "--health-check", "usr/lib/agent/health")
	if s.Links != 3 || s.Hardlinks != 1 {
		t.Errorf("publish: %d symlinks, %d hard links; want 3 and 1", s.Links, s.Hardlinks)
	}
	seed := newSeed(t, pub.Repo)
	n := newNode(t, nodeOpts{Name: "exact", Trust: pub.Trust, Sources: []string{seed.URL}})
	n.WaitVersion(t, "1.0.0", 60*time.Second)

	got, err := filepath.EvalSymlinks(filepath.Join(n.Install, "current"))
	if err != nil {
		t.Fatal(err)
	}
	diff, err := exec.LookPath("diff")
	if err != nil {
		t.Fatalf("diff is needed to compare trees: %v", err)
	}
	out, err := exec.Command(diff, "-r", "--no-dereference", src, got).CombinedOutput()
	if err != nil {
		t.Errorf("diff -r --no-dereference %s %s: %v\n%s", src, got, err, out)
	}
	sameKindsAndModes(t, src, got)
	sameKindsAndModes(t, got, src) // nothing extra in the release

	a, errA := os.Lstat(filepath.Join(got, "usr/bin/agent"))
	b, errB := os.Lstat(filepath.Join(got, "usr/bin/agent-compat"))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Errorf("usr/bin/agent and usr/bin/agent-compat are not one hard-linked file (%v, %v)", errA, errB)
	}
	if ents, err := os.ReadDir(outside); err != nil || len(ents) != 0 {
		t.Errorf("the folder a release links to was written: %v %v", ents, err)
	}
}

// makeDebianTree writes the tree of TestNodeAppliesExactTree into src, with a
// symlink to the folder "outside" beside it.
func makeDebianTree(t *testing.T, src string) {
	t.Helper()
	files := []struct {
		path string
		mode fs.FileMode
		data string
	}{
		{"usr/bin/agent", 0o755, "#!/bin/sh\necho agent\n"},
		{"usr/bin/agent-setgid", 0o755 | fs.ModeSetgid, "#!/bin/sh\necho mail\n"},
		{"usr/lib/agent/health", 0o755, "#!/bin/sh\nexit 0\n"},
		{"usr/share/doc/agent/copyright", 0o644, "Copyright 2026\n"},
		{"etc/agent/empty.conf", 0o644, ""},
		{"etc/agent/private/key", 0o640, "secret\n"},
	}
	for _, f := range files {
		p := filepath.Join(src, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"var/spool/agent/queue/new", "var/lib/agent", "run/agent"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "etc/agent/private"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "var/lib/agent"), 0o750); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"usr/lib/agent/spool": "/var/spool/agent",                   // absolute
		"etc/agent/outside":   filepath.Join("../../..", "outside"), // out of the tree
		"etc/agent/local":     "local.d/missing.conf",               // dangling
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(src, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(src, "usr/bin/agent"), filepath.Join(src, "usr/bin/agent-compat")); err != nil {
		t.Fatal(err)
	}
}

// sameKindsAndModes fails unless every entry under want exists under got with the
// same kind and link target, and the same mode less the write bits the installer
// clears from files.
func sameKindsAndModes(t *testing.T, want, got string) {
	t.Helper()
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == want {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		wi, err := d.Info()
		if err != nil {
			return err
		}
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		wm, gm := wi.Mode(), gi.Mode()
		if wm.IsRegular() {
			wm &^= 0o222
			gm &^= 0o222
		}
		if wm != gm {
			return fmt.Errorf("%s: mode %v in %s, %v in %s", rel, wi.Mode(), want, gi.Mode(), got)
		}
		if wm&fs.ModeSymlink != 0 {
			wl, _ := os.Readlink(p)
			gl, err := os.Readlink(filepath.Join(got, rel))
			if err != nil || wl != gl {
				return fmt.Errorf("%s: link to %q in %s, %q (%v) in %s", rel, wl, want, gl, err, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
