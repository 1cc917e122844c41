package node

import (
	"github.com/patchmesh/patchmesh/node/proxy"
)

// newProxy makes the caching proxy (--proxy-cache) over the node's store,
// sharing objects through the site when there is one.
func (n *Node) newProxy() error {
	c := n.cfg.ProxyCache
	if c.Addr == "" {
		return nil
	}
	o := proxy.Options{Allow: c.Allow, MaxObject: c.MaxObject, MaxBytes: c.MaxBytes, Store: n.store,
		UserAgent: "patchmesh/" + BuildVersion, Logger: n.log.With("part", "proxy")}
	if n.mesh != nil {
		o.Site = n.mesh
	}
	p, err := proxy.New(o)
	if err != nil {
		return err
	}
	n.proxy = p
	return nil
}
