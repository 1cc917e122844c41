//go:build unix && !linux

package store

import "golang.org/x/sys/unix"

// readOnlyFS reports whether dir's file system is mounted read-only.
func readOnlyFS(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err
	}
	return uint64(st.Flags)&uint64(unix.MNT_RDONLY) != 0, nil
}
