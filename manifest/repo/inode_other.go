//go:build !unix

package repo

import "io/fs"

// fileID names an inode.
type fileID struct{ dev, ino uint64 }

// hardLinked reports no hard links where the platform does not tell them: each name
// is published as a copy of the file.
func hardLinked(fs.FileInfo) (fileID, bool) { return fileID{}, false }
