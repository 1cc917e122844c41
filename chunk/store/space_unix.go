//go:build unix

package store

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// folderID names a folder: a replaced folder has another one.
type folderID struct{ ino, dev uint64 }

func statFolder(dir string) (folderID, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return folderID{}, err
	}
	return folderID{ino: uint64(st.Ino), dev: uint64(st.Dev)}, nil
}

// freeSpace returns the bytes available to this process on dir's file system.
func freeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
