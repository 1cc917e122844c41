//go:build unix

package repo

import (
	"io/fs"
	"syscall"
)

// fileID names an inode.
type fileID struct{ dev, ino uint64 }

// hardLinked returns the inode of a regular file with more than one name.
func hardLinked(info fs.FileInfo) (fileID, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink < 2 {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true
}
