//go:build !linux

package fsutil

import (
	"errors"
	"os"
)

// StartWriteback does nothing here: the kernel writes back on its own.
func StartWriteback(*os.File, int64, int64) {}

// DropCache does nothing here: the kernel evicts pages on its own.
func DropCache(*os.File, int64, int64) {}

// CachedPages is not available here.
func CachedPages(string) ([]bool, error) { return nil, errors.ErrUnsupported }
