package chunk

// Origin says where a chunk's bytes came from: an update source (WAN), a
// member of the site (Peer), or, the zero Origin, this node's own store. It
// lives here, the lowest package the mesh and the node's pipeline share, so
// both speak of it with one type.
type Origin struct {
	WAN  bool   // from this node's update sources
	Peer string // from this site member, by name
}

// Local reports whether the bytes were in the store already.
func (o Origin) Local() bool { return !o.WAN && o.Peer == "" }
