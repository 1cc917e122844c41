package install

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
)

// Prune removes old releases: it keeps current, previous, any release being staged,
// and the Keep newest others, preferring good releases over bad ones (bad releases are
// removed first). A bad release's record is kept after its files are gone, so IsBad still
// knows it. It returns the names removed.
func (in *Installer) Prune() (removed []string, err error) {
	in.applyMu.Lock()
	defer in.applyMu.Unlock()

	in.mu.Lock()
	var cands []*record
	for i := range in.st.Releases {
		r := &in.st.Releases[i]
		if r.Pruned || r.Name == in.current || r.Name == in.previous || in.staging[r.Name] > 0 {
			continue
		}
		cands = append(cands, r)
	}
	// Good before bad, newest first within each: the head of the list is kept.
	slices.SortFunc(cands, func(a, b *record) int {
		if ab, bb := a.State == StateBad, b.State == StateBad; ab != bb {
			if ab {
				return 1
			}
			return -1
		}
		return compareUint(b.Seq, a.Seq)
	})
	var victims []string
	if len(cands) > in.cfg.Keep {
		for _, r := range cands[in.cfg.Keep:] {
			victims = append(victims, r.Name)
		}
	}
	// Move the trees out of releases/ under the lock, delete them after: a crash
	// halfway leaves garbage in staging/, which Open removes.
	var trash []string
	var errs []error
	for _, name := range victims {
		t := filepath.Join(in.stagingDir(), name+".prune"+tmpMark+rand.Text())
		if err := os.Rename(in.Dir(name), t); err != nil {
			errs = append(errs, fmt.Errorf("prune release %s: %w", name, err))
			continue
		}
		trash = append(trash, t)
		removed = append(removed, name)
		if r := in.st.find(name); r.State == StateBad {
			r.Pruned = true
		} else {
			in.st.remove(name)
		}
	}
	in.dropOldBadLocked()
	if len(removed) > 0 {
		if err := fsutil.SyncDir(in.releasesDir()); err != nil {
			errs = append(errs, fmt.Errorf("prune: %w", err))
		}
		if err := in.saveLocked(); err != nil {
			errs = append(errs, fmt.Errorf("prune: %w", err))
		}
	}
	in.mu.Unlock()

	for _, t := range trash {
		if err := removeTree(t); err != nil {
			errs = append(errs, fmt.Errorf("prune: remove %s: %w", t, err))
		}
	}
	if len(removed) > 0 {
		in.log.Info("pruned releases", "releases", removed)
	}
	return removed, errors.Join(errs...)
}

// dropOldBadLocked forgets the oldest pruned bad releases beyond maxPrunedBad.
func (in *Installer) dropOldBadLocked() {
	var pruned []record
	for _, r := range in.st.Releases {
		if r.Pruned {
			pruned = append(pruned, r)
		}
	}
	if len(pruned) <= maxPrunedBad {
		return
	}
	slices.SortFunc(pruned, func(a, b record) int { return compareUint(a.Seq, b.Seq) })
	for _, r := range pruned[:len(pruned)-maxPrunedBad] {
		in.st.remove(r.Name)
	}
}
