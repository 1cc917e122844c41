//go:build linux

package repo

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncEachChunk is false: syncChunks makes every chunk durable with one syncfs.
const syncEachChunk = false

// syncChunks makes the chunks written so far durable. One syncfs(2) on the
// repository's file system is far cheaper than an fsync per chunk and covers the
// shard folders too.
func (w *chunkWriter) syncChunks() error { return syncFS(w.repoDir) }

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
