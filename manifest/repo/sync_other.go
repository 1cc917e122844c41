//go:build !linux

package repo

import (
	"path/filepath"
	"sort"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
)

// syncEachChunk is true: outside Linux there is no syncfs(2) (sync(2) on BSD and
// macOS may return before the data is written), so each chunk is fsynced by the
// worker that wrote it, before its rename, and the workers overlap those waits.
const syncEachChunk = true

// flusher is Linux's background syncfs; here it holds nothing.
type flusher struct{}

// startWriteback does nothing: each chunk was synced as it was written.
func (w *chunkWriter) startWriteback() error { return nil }

// wrote does nothing: see startWriteback.
func (w *chunkWriter) wrote(int) {}

// stopWriteback does nothing: see startWriteback.
func (w *chunkWriter) stopWriteback() {}

// syncChunks makes the renames of the chunks written so far durable: an fsync of
// every shard folder this publish met, then of chunks/ and the repository folder,
// which may have been created by it. The chunk files themselves were synced as
// they were written (syncEachChunk).
func (w *chunkWriter) syncChunks() error {
	w.mu.Lock()
	dirs := make([]string, 0, len(w.dirs)+2)
	for d := range w.dirs {
		dirs = append(dirs, d)
	}
	w.mu.Unlock()
	sort.Strings(dirs)
	if len(dirs) > 0 { // chunks/ exists only once a chunk was stored
		dirs = append(dirs, filepath.Join(w.repoDir, chunksDir))
	}
	dirs = append(dirs, w.repoDir)
	for _, d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}
