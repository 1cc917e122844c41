package pipeline

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/patchmesh/patchmesh/manifest"
)

// stagedTree builds a release's directories and links in a staging folder so that
// no symlink can redirect a write: every parent of a path written is a directory
// made here, in this folder (a planted link or file where one belongs is refused,
// not followed), and symlinks are created after every other entry. A verified
// manifest already puts no path under a symlink; this holds even if one did.
type stagedTree struct {
	root *os.Root
	// made holds the directories this tree created, with the mode each gets once
	// its contents are written: its manifest entry's, or 0755.
	made map[string]uint32
}

func newStagedTree(root *os.Root) *stagedTree {
	return &stagedTree{root: root, made: make(map[string]uint32)}
}

// dirs creates every directory entry of m, and the directories above them.
func (t *stagedTree) dirs(m *manifest.Manifest) error {
	for i := range m.Files {
		if f := &m.Files[i]; f.IsDir() {
			if err := t.mkdir(f.Path); err != nil {
				return err
			}
			t.made[f.Path] = f.Mode
		}
	}
	return nil
}

// parent makes sure the directory holding p exists and was made here.
func (t *stagedTree) parent(p string) error {
	if d := path.Dir(p); d != "." {
		return t.mkdir(d)
	}
	return nil
}

func (t *stagedTree) mkdir(p string) error {
	if _, ok := t.made[p]; ok {
		return nil
	}
	if err := t.parent(p); err != nil {
		return err
	}
	// Owner-only while the contents are written: the final mode may not let the
	// installer write, and nobody else has a use for a half-written directory.
	// Mkdir fails on anything already there, a symlink included.
	if err := t.root.Mkdir(filepath.FromSlash(p), 0o700); err != nil {
		return fmt.Errorf("directory %s: %w", p, err)
	}
	t.made[p] = 0o755
	return nil
}

// links creates the hard links of m and then its symlinks, whose targets are
// written verbatim and never followed. Call it after every regular file is written.
func (t *stagedTree) links(m *manifest.Manifest) error {
	for _, symlinks := range []bool{false, true} {
		for i := range m.Files {
			f := &m.Files[i]
			if !(symlinks && f.IsLink() || !symlinks && f.IsHardlink()) {
				continue
			}
			if err := t.parent(f.Path); err != nil {
				return err
			}
			name := filepath.FromSlash(f.Path)
			if symlinks {
				if err := t.root.Symlink(f.Link, name); err != nil {
					return fmt.Errorf("symlink %s: %w", f.Path, err)
				}
				continue
			}
			// The file and its parents are this tree's own, so Link does not
			// meet a symlink on either side.
			if err := t.root.Link(filepath.FromSlash(f.Link), name); err != nil {
				return fmt.Errorf("hard link %s to %s: %w", f.Path, f.Link, err)
			}
		}
	}
	return nil
}

// chmodDirs gives every directory its mode, deepest first, so that a directory
// the owner cannot enter or write is closed only after its contents are done.
func (t *stagedTree) chmodDirs() error {
	dirs := make([]string, 0, len(t.made))
	for d := range t.made {
		dirs = append(dirs, d)
	}
	// A descendant sorts after its ancestor, which is a prefix of it.
	slices.SortFunc(dirs, func(a, b string) int { return strings.Compare(b, a) })
	for _, d := range dirs {
		if err := t.root.Chmod(filepath.FromSlash(d), manifest.FileMode(t.made[d])); err != nil {
			return fmt.Errorf("directory %s: %w", d, err)
		}
	}
	return nil
}
