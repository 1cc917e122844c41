package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/windows"
)

// folderID names a folder by its volume. Windows gives no inode through
// os.Stat, so a folder replaced on the same volume is not noticed; one
// removed still is.
type folderID struct{ dev string }

func statFolder(dir string) (folderID, error) {
	if _, err := os.Stat(dir); err != nil {
		return folderID{}, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return folderID{}, err
	}
	return folderID{dev: strings.ToUpper(filepath.VolumeName(abs))}, nil
}

// freeSpace returns the bytes available to this process on dir's volume.
func freeSpace(dir string) (int64, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return int64(avail), nil
}

// readOnlyFS reports false: a volume turned read-only shows as failed writes.
func readOnlyFS(dir string) (bool, error) {
	_, err := os.Stat(dir)
	return false, err
}
