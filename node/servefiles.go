package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/patchmesh/patchmesh/node/fileview"
)

// fileListener listens for the file view (--serve-files): the current release's
// files by path, over HTTP or, with a certificate, HTTPS.
func (n *Node) fileListener() (net.Listener, http.Handler, error) {
	c := n.cfg.ServeFiles
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, nil, errors.New("serve-files: give both the TLS certificate and its key, or neither")
	}
	var tlsConf *tls.Config
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("serve-files: load TLS certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("serve-files: listen %s: %w", c.Addr, err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	h := fileview.NewHandler(fileview.Options{Current: n.fileRelease, Digests: n.releaseDigests, Index: c.Index, Logger: n.log})
	n.log.Info("serving the current release's files", "addr", ln.Addr().String(), "tls", tlsConf != nil, "index", c.Index)
	return ln, h, nil
}

// fileRelease is the release the file view serves: the current one.
func (n *Node) fileRelease() (fileview.Release, bool) {
	name := n.inst.Current()
	if name == "" {
		return fileview.Release{}, false
	}
	return fileview.Release{Name: name, Dir: n.inst.Dir(name)}, true
}

// releaseDigests maps a release's regular files to their sha256, from its
// verified manifest; nil when the manifest is gone or no longer verifies.
func (n *Node) releaseDigests(name string) map[string]string {
	rec, ok := n.records()[name]
	if !ok {
		return nil
	}
	m, err := n.storedManifest(rec)
	if err != nil {
		return nil
	}
	out := make(map[string]string, len(m.Files))
	for _, f := range m.Files {
		if f.IsRegular() {
			out[f.Path] = f.SHA256
		}
	}
	return out
}
