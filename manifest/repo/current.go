package repo

import (
	"fmt"
	"path/filepath"

	"github.com/patchmesh/patchmesh/manifest"
)

// CurrentRelease reads a channel's head and the manifest it names without
// checking signatures: a publisher (or `patchmesh mirror`) compares a tree
// against what it published last. It returns fs.ErrNotExist (wrapped) when the
// channel has no head yet.
func CurrentRelease(repoDir, channel string) (*manifest.Head, *manifest.Manifest, error) {
	h, err := ReadHeadUnverified(repoDir, channel)
	if err != nil {
		return nil, nil, fmt.Errorf("read head %s: %w", channel, err)
	}
	m, err := readManifestUnverified(filepath.Join(repoDir, filepath.FromSlash(h.Manifest.Path)))
	if err != nil {
		return h, nil, fmt.Errorf("read manifest of %s %s: %w", channel, h.Version, err)
	}
	return h, m, nil
}
