package repo

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
)

// WriteFileAtomic writes data to name so that readers see the old content or the new,
// never a mix: a temporary file in the same directory, fsync, rename, fsync of the directory.
func WriteFileAtomic(name string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return fsutil.WriteFile(name, data, perm, tempPrefix+"*")
}
