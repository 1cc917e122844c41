//go:build unix

package repo

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockRepo takes the repository's publish lock so two publishers cannot interleave.
func lockRepo(repoDir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(repoDir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock repository: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock repository %s: %w (%v); wait for it to finish", repoDir, ErrLocked, err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
