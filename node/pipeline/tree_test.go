package pipeline

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchmesh/patchmesh/manifest"
)

// emptyFile is a regular file of no bytes: assemble writes it without the store.
func emptyFile(p string, mode uint32) manifest.File {
	return manifest.File{Path: p, Mode: mode, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
}

func assembleInto(t *testing.T, dir string, files ...manifest.File) error {
	t.Helper()
	m := &manifest.Manifest{Files: files}
	r := &run{p: New(nil, nil, Options{}), m: m, plan: planRelease(m)}
	r.ready = newReadiness(len(r.plan.jobs))
	return r.assemble(context.Background(), dir)
}

// TestAssembleDoesNotWriteThroughLinks plants links in the staging folder, where
// the manifest puts directories or files, and checks that nothing is written
// through them: the assembly fails and the folder they point at stays empty.
func TestAssembleDoesNotWriteThroughLinks(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, dir, outside string)
		files []manifest.File
	}{
		{
			name:  "symlink where a parent directory goes",
			plant: func(t *testing.T, dir, outside string) { symlinkT(t, outside, filepath.Join(dir, "etc")) },
			files: []manifest.File{emptyFile("etc/passwd", 0o644)},
		},
		{
			name: "relative symlink where a parent directory goes",
			plant: func(t *testing.T, dir, outside string) {
				symlinkT(t, "sub", filepath.Join(dir, "etc"))
				mkdirT(t, filepath.Join(dir, "sub"))
			},
			files: []manifest.File{emptyFile("etc/passwd", 0o644)},
		},
		{
			name:  "symlink where a directory entry goes",
			plant: func(t *testing.T, dir, outside string) { symlinkT(t, outside, filepath.Join(dir, "var")) },
			files: []manifest.File{{Path: "var", Type: manifest.TypeDir, Mode: 0o700}},
		},
		{
			name: "dangling symlink where a file goes",
			plant: func(t *testing.T, dir, outside string) {
				symlinkT(t, filepath.Join(outside, "x"), filepath.Join(dir, "x"))
			},
			files: []manifest.File{emptyFile("x", 0o644)},
		},
		{
			name:  "directory the installer did not make",
			plant: func(t *testing.T, dir, outside string) { mkdirT(t, filepath.Join(dir, "bin")) },
			files: []manifest.File{emptyFile("bin/tool", 0o755)},
		},
		{
			// Validate refuses it; the assembly must not rely on that.
			name:  "manifest path through its own symlink",
			plant: func(*testing.T, string, string) {},
			files: []manifest.File{{Path: "etc", Mode: 0o777, Link: "/nonexistent-outside"}, emptyFile("etc/passwd", 0o644)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			tt.plant(t, dir, outside)
			if err := assembleInto(t, dir, tt.files...); err == nil {
				t.Fatal("assembled over a planted link or directory")
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("written through a link: %s holds %v", outside, ents)
			}
			if fi, err := os.Lstat(filepath.Join(dir, "sub", "passwd")); err == nil {
				t.Errorf("written through a relative link: sub/passwd %v", fi.Mode())
			}
		})
	}
}

// TestAssembleTree checks kinds and modes: links with any target created as they
// are, directory modes set after their contents, setuid and setgid kept.
func TestAssembleTree(t *testing.T) {
	dir := t.TempDir()
	err := assembleInto(t, dir,
		emptyFile("bin/tool", 0o4755),
		manifest.File{Path: "bin/tool2", Type: manifest.TypeHardlink, Mode: 0o4755, Link: "bin/tool"},
		emptyFile("etc/conf", 0o2640),
		manifest.File{Path: "etc/shadow", Mode: 0o777, Link: "/etc/shadow"},
		manifest.File{Path: "etc/gone", Mode: 0o777, Link: "../../nowhere"},
		manifest.File{Path: "locked", Type: manifest.TypeDir, Mode: 0o500},
		emptyFile("locked/inside", 0o444),
		manifest.File{Path: "var/empty/deeper", Type: manifest.TypeDir, Mode: 0o750},
		manifest.File{Path: "var", Type: manifest.TypeDir, Mode: 0o1777},
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "locked"), 0o700) })
	modes := map[string]fs.FileMode{
		"bin":              fs.ModeDir | 0o755,
		"bin/tool":         0o755 | fs.ModeSetuid,
		"bin/tool2":        0o755 | fs.ModeSetuid,
		"etc":              fs.ModeDir | 0o755,
		"etc/conf":         0o640 | fs.ModeSetgid,
		"etc/shadow":       fs.ModeSymlink | 0o777,
		"etc/gone":         fs.ModeSymlink | 0o777,
		"locked":           fs.ModeDir | 0o500,
		"locked/inside":    0o444,
		"var":              fs.ModeDir | fs.ModeSticky | 0o777,
		"var/empty":        fs.ModeDir | 0o755,
		"var/empty/deeper": fs.ModeDir | 0o750,
	}
	for p, want := range modes {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	for p, want := range map[string]string{"etc/shadow": "/etc/shadow", "etc/gone": "../../nowhere"} {
		if got, err := os.Readlink(filepath.Join(dir, p)); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", p, got, err, want)
		}
	}
	a, _ := os.Stat(filepath.Join(dir, "bin/tool"))
	b, _ := os.Stat(filepath.Join(dir, "bin/tool2"))
	if !os.SameFile(a, b) {
		t.Error("bin/tool2 is not a hard link of bin/tool")
	}
}

func symlinkT(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func mkdirT(t *testing.T, name string) {
	t.Helper()
	if err := os.Mkdir(name, 0o755); err != nil {
		t.Fatal(err)
	}
}
