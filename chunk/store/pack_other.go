//go:build !linux

package store

import "os"

// punchHole does nothing here: GC frees a pack once none of it is used.
func punchHole(*os.File, int64, int64) {}

// writeAt writes bufs, one after the other, at off in f.
func writeAt(f *os.File, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}
