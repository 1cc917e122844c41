package install

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
)

// Stage installs release name: it calls write with a fresh, empty directory under
// staging/, and when write succeeds it fsyncs every file and directory, clears the
// files' write bits (keeping the other mode bits the writer set) and renames the tree to
// releases/<name>. When write fails or ctx is cancelled the staging directory is removed
// and releases/ is untouched. A name that is already installed is not staged again and
// Stage returns nil without calling write.
func (in *Installer) Stage(ctx context.Context, name string, write func(ctx context.Context, dir string) error) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("stage release: %w", err)
	}
	if write == nil {
		return fmt.Errorf("stage release %s: nil write function", name)
	}
	if in.installed(name) {
		return nil
	}
	in.mu.Lock()
	in.staging[name]++
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		if in.staging[name]--; in.staging[name] == 0 {
			delete(in.staging, name)
		}
		in.mu.Unlock()
	}()

	tmp, err := os.MkdirTemp(in.stagingDir(), name+".")
	if err != nil {
		return fmt.Errorf("stage release %s: %w", name, err)
	}
	done := false
	defer func() {
		if !done {
			if err := removeTree(tmp); err != nil {
				in.log.Warn("cannot remove staging directory", "release", name, "path", tmp, "err", err)
			}
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("stage release %s: %w", name, err)
	}
	if err := write(ctx, tmp); err != nil {
		return fmt.Errorf("stage release %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stage release %s: %w", name, err)
	}
	if err := seal(ctx, tmp); err != nil {
		return fmt.Errorf("stage release %s: %w", name, err)
	}

	in.mu.Lock()
	defer in.mu.Unlock()
	if err := os.Rename(tmp, in.Dir(name)); err != nil {
		if in.installed(name) {
			// A concurrent Stage of the same name won; its tree is as good as ours.
			return nil
		}
		return fmt.Errorf("stage release %s: %w", name, err)
	}
	done = true
	if err := fsutil.SyncDir(in.releasesDir()); err != nil {
		return fmt.Errorf("stage release %s: %w", name, err)
	}
	r := in.st.add(name, time.Now())
	r.Pruned = false
	if err := in.saveLocked(); err != nil {
		return fmt.Errorf("stage release %s: %w", name, err)
	}
	in.log.Info("staged release", "release", name)
	return nil
}

// seal makes a staged tree durable and read-only-ish: every regular file loses its write
// bits (keeping setuid, setgid and sticky) and is fsynced, then every directory is
// fsynced, deepest first. Directories keep their modes so that Prune can remove the
// tree later. Symlinks are left alone: a release may hold one to /etc/shadow, and
// nothing here opens, reads or chmods through a link.
func seal(ctx context.Context, root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case d.IsDir(): // WalkDir does not follow links: a link to a directory is not one
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			return sealFile(p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seal %s: %w", root, err)
	}
	for _, d := range slices.Backward(dirs) {
		if err := syncNoFollow(d); err != nil {
			return fmt.Errorf("seal %s: %w", root, err)
		}
	}
	return nil
}

// modeBits are the bits of an fs.FileMode that chmod sets.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// sealFile clears the write bits of the regular file p and fsyncs it, through one
// descriptor opened without following a link, so what it changes is what it checked.
func sealFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("seal %s: not a regular file (%s)", p, fi.Mode().Type())
	}
	if m := fi.Mode() & modeBits; m&0o222 != 0 {
		if err := f.Chmod(m &^ 0o222); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return f.Close()
}

// syncNoFollow fsyncs the directory p, refusing a symlink in its place.
func syncNoFollow(p string) error {
	d, err := os.OpenFile(p, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}
