package node

import (
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/manifest"
)

// heldBases indexes the regular files of the releases this node keeps by
// sha256, from their verified manifests in the store, and the folders they
// are installed in.
func (n *Node) heldBases() (bases map[string]*manifest.File, dirs map[string]string) {
	out := make(map[string]*manifest.File)
	dirs = make(map[string]string)
	keep := make(map[string]bool)
	for _, r := range n.inst.Releases() {
		keep[r.Name] = true
	}
	root := n.trustRoot()
	for name, rec := range n.records() {
		if !keep[name] {
			continue
		}
		env, err := n.store.GetMeta(manifestKey(rec.Channel, rec.Sequence))
		if err != nil {
			continue
		}
		m, err := root.VerifyManifest(env, time.Now())
		if err != nil {
			continue
		}
		for i := range m.Files {
			if f := &m.Files[i]; !f.IsLink() && f.Size > 0 {
				out[f.SHA256] = f
				dirs[f.SHA256] = n.inst.Dir(name)
			}
		}
	}
	return out, dirs
}

// deltaObjects adds the CIDs of m's delta objects to set.
func deltaObjects(set map[cid.Cid]bool, m *manifest.Manifest) {
	for _, d := range m.Deltas {
		set[d.Object.CID] = true
	}
}
