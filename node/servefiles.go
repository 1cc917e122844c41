package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"

	"github.com/ipfs/go-cid"
	"github.com/patchmesh/patchmesh/manifest"
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
	h := fileview.NewHandler(fileview.Options{Current: n.fileRelease, Pending: n.filePending, Digests: n.releaseDigests, Index: c.Index, Logger: n.log})
	n.log.Info("serving the current release's files", "addr", ln.Addr().String(), "tls", tlsConf != nil, "index", c.Index)
	return ln, h, nil
}

// fileRelease is the release the file view serves: the first channel's
// current one.
func (n *Node) fileRelease() (fileview.Release, bool) {
	inst := n.followers[0].inst
	name := inst.Current()
	if name == "" {
		return fileview.Release{}, false
	}
	return fileview.Release{Name: name, Dir: inst.Dir(name)}, true
}

// releaseDigests maps a release's regular files to their sha256, from its
// verified manifest; nil when the manifest is gone or no longer verifies.
func (n *Node) releaseDigests(name string) map[string]string {
	rec, ok := n.followers[0].records()[name]
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

// filePending is the release the first channel is downloading, whose files
// the view serves while nothing is installed yet.
func (n *Node) filePending() (fileview.Pending, bool) {
	f := n.followers[0]
	n.mu.Lock()
	m, name := f.st.fetching, f.st.fetchingName
	n.mu.Unlock()
	if m == nil {
		return nil, false
	}
	return &pendingFiles{n: n, m: m, name: name}, true
}

// pendingFiles serves the files of a verified manifest whose release is not
// installed yet, chunk by chunk: from the store, else through the site or
// the sources as any chunk (verified, and stored for the download too).
type pendingFiles struct {
	n    *Node
	m    *manifest.Manifest
	name string
}

func (p *pendingFiles) Name() string { return p.name }

func (p *pendingFiles) Open(ctx context.Context, rel string) (io.ReadSeeker, int64, string, bool) {
	for i := range p.m.Files {
		f := &p.m.Files[i]
		if f.Path != rel {
			continue
		}
		if f.Type == manifest.TypeHardlink {
			// Served as the file it links to.
			return p.Open(ctx, f.Link)
		}
		if !f.IsRegular() {
			return nil, 0, "", false
		}
		return newChunkFile(ctx, f.Chunks, p.fetch), f.Size, f.SHA256, true
	}
	return nil, 0, "", false
}

// fetch returns chunk c, verified: from the store, or fetched.
func (p *pendingFiles) fetch(ctx context.Context, c cid.Cid) ([]byte, error) {
	if data, err := p.n.store.Get(ctx, c); err == nil {
		return data, nil
	}
	data, _, err := p.n.chunks.Fetch(ctx, c)
	return data, err
}

// chunkFile reads a file made of chunks, fetching each when a read reaches
// it; one chunk is held at a time.
type chunkFile struct {
	ctx    context.Context
	chunks []manifest.ChunkRef
	ends   []int64 // ends[i]: offset just past chunk i
	fetch  func(context.Context, cid.Cid) ([]byte, error)
	pos    int64

	held int // index of data's chunk; -1: none
	data []byte
}

func newChunkFile(ctx context.Context, chunks []manifest.ChunkRef, fetch func(context.Context, cid.Cid) ([]byte, error)) *chunkFile {
	ends := make([]int64, len(chunks))
	var at int64
	for i, c := range chunks {
		at += int64(c.Size)
		ends[i] = at
	}
	return &chunkFile{ctx: ctx, chunks: chunks, ends: ends, fetch: fetch, held: -1}
}

func (f *chunkFile) size() int64 {
	if len(f.ends) == 0 {
		return 0
	}
	return f.ends[len(f.ends)-1]
}

func (f *chunkFile) Read(b []byte) (int, error) {
	if f.pos >= f.size() {
		return 0, io.EOF
	}
	i := sort.Search(len(f.ends), func(i int) bool { return f.ends[i] > f.pos })
	if i != f.held {
		c := f.chunks[i]
		data, err := f.fetch(f.ctx, c.CID)
		if err != nil {
			return 0, fmt.Errorf("read chunk %s: %w", c.CID, err)
		}
		if len(data) != int(c.Size) {
			return 0, fmt.Errorf("read chunk %s: %d bytes, the manifest says %d", c.CID, len(data), c.Size)
		}
		f.held, f.data = i, data
	}
	start := f.ends[i] - int64(len(f.data))
	n := copy(b, f.data[f.pos-start:])
	f.pos += int64(n)
	return n, nil
}

func (f *chunkFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += f.pos
	case io.SeekEnd:
		off += f.size()
	default:
		return f.pos, fmt.Errorf("seek: bad whence %d", whence)
	}
	if off < 0 {
		return f.pos, fmt.Errorf("seek to %d: negative offset", off)
	}
	f.pos = off
	return off, nil
}
