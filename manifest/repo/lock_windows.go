package repo

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// lockRepo takes the repository's publish lock so two publishers cannot interleave.
// LockFileEx is the Windows counterpart of flock: held by the handle, released
// when the process dies, refused at once to another handle.
func lockRepo(repoDir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(repoDir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock repository: %w", err)
	}
	h := windows.Handle(f.Fd())
	ol := new(windows.Overlapped)
	if err := windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock repository %s: %w (%v); wait for it to finish", repoDir, ErrLocked, err)
	}
	return func() { windows.UnlockFileEx(h, 0, 1, 0, ol); f.Close() }, nil
}
