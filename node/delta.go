package node

import (
	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/manifest"
)

// heldBases indexes the regular files of the releases this node keeps by
// sha256, from their verified manifests in the store, and the folders they
// are installed in.
func (n *Node) heldBases() (bases map[string]*manifest.File, dirs map[string]string) {
	bases = make(map[string]*manifest.File)
	dirs = make(map[string]string)
	n.keptManifests(func(fl *follower, rec releaseRecord, m *manifest.Manifest, err error) {
		if err != nil {
			return // its files are no base: the deltas' chunks come as chunks
		}
		for i := range m.Files {
			if f := &m.Files[i]; !f.IsLink() && f.Size > 0 {
				bases[f.SHA256] = f
				dirs[f.SHA256] = fl.inst.Dir(rec.Name)
			}
		}
	})
	return bases, dirs
}

// deltaObjects adds the CIDs of m's delta objects to set.
func deltaObjects(set map[cid.Cid]bool, m *manifest.Manifest) {
	for _, d := range m.Deltas {
		set[d.Object.CID] = true
	}
}
