//go:build !linux

package pipeline

import "os"

// startWriteback does nothing here; the staging fsync does all the work.
func startWriteback(*os.File, int64, int64) {}
