package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/patchmesh/patchmesh/mesh"
)

// allowed reports whether hostport (a URL's or CONNECT's host) is on the
// allow-list.
func (c *Cache) allowed(scheme, hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, map[string]string{"http": "80", "https": "443"}[scheme]
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, a := range c.o.Allow {
		a = strings.ToLower(a)
		ah, ap, err := net.SplitHostPort(a)
		if err != nil {
			ah, ap = a, ""
		}
		if ap != "" && ap != port {
			continue
		}
		if ah == host || (strings.HasPrefix(ah, "*.") && strings.HasSuffix(host, ah[1:])) {
			return true
		}
	}
	return false
}

func (c *Cache) refuse(w http.ResponseWriter, code int, msg string) {
	c.stats.refused.Add(1)
	http.Error(w, "patchmesh proxy: "+msg, code)
}

// ServeHTTP is the forward proxy: absolute-form GET and HEAD requests through
// the cache, CONNECT as a tunnel, to allowed hosts only.
func (c *Cache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		c.tunnel(w, r)
		return
	}
	if !r.URL.IsAbs() || (r.URL.Scheme != "http" && r.URL.Scheme != "https") || r.URL.Host == "" {
		c.refuse(w, http.StatusBadRequest, "this is a forward proxy: send absolute URLs (http_proxy=http://this-node:port)")
		return
	}
	if !c.allowed(r.URL.Scheme, r.URL.Host) {
		c.refuse(w, http.StatusForbidden, fmt.Sprintf("host %s is not in the allow-list (--proxy-allow)", r.URL.Host))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, CONNECT")
		c.refuse(w, http.StatusMethodNotAllowed, "only GET, HEAD and CONNECT are proxied")
		return
	}
	u := *r.URL
	u.Fragment, u.RawFragment = "", ""
	url := u.String()
	if why := requestBypasses(r); why != "" {
		c.pass(w, r, url, why)
		return
	}
	ua := r.Header.Get("User-Agent")
	revalidate := requestRevalidates(r)
	if c.o.Site != nil {
		if owner, self := c.o.Site.ObjectOwner([]byte(url)); !self {
			if c.viaOwner(w, r, owner, peerRequest{URL: url, UA: ua, Revalidate: revalidate}) {
				return
			}
		}
	}
	rec, resp, err := c.object(r.Context(), url, ua, revalidate)
	switch {
	case err != nil:
		c.o.Logger.Warn("proxy: upstream failed", "url", url, "err", err)
		http.Error(w, "patchmesh proxy: "+err.Error(), http.StatusBadGateway)
	case resp != nil:
		defer resp.Body.Close()
		writePassed(w, resp.StatusCode, resp.Header, resp.ContentLength, resp.Body)
	default:
		serveObject(w, r, rec.Header, rec.Checked, c.reader(r.Context(), rec))
	}
}

// pass forwards a request that the cache must not answer (Authorization,
// no-store) straight to upstream, with the client's end-to-end headers.
func (c *Cache) pass(w http.ResponseWriter, r *http.Request, url, why string) {
	req, err := http.NewRequest(r.Method, url, nil)
	if err != nil {
		http.Error(w, "patchmesh proxy: "+err.Error(), http.StatusBadRequest)
		return
	}
	req.Header = endToEnd(r.Header)
	resp, err := c.do(r.Context(), req)
	if err != nil {
		http.Error(w, "patchmesh proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	c.stats.passed.Add(1)
	c.o.Logger.Debug("proxy: passing through", "url", url, "why", why)
	writePassed(w, resp.StatusCode, resp.Header, resp.ContentLength, resp.Body)
}

// writePassed copies an answer the cache does not hold to the client.
func writePassed(w http.ResponseWriter, status int, h http.Header, size int64, body io.Reader) {
	for k, v := range endToEnd(h) {
		w.Header()[k] = v
	}
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.Header().Add("Via", "1.1 patchmesh")
	w.WriteHeader(status)
	_, _ = io.Copy(w, body)
}

// serveObject answers r from a cached body: ranges and the client's own
// conditional requests included, as http.ServeContent does them.
func serveObject(w http.ResponseWriter, r *http.Request, hdr http.Header, checked time.Time, body io.ReadSeeker) {
	h := w.Header()
	for k, v := range hdr {
		h[k] = v
	}
	if _, ok := hdr["Content-Type"]; !ok {
		h["Content-Type"] = nil // as upstream sent it: no type, and no sniffing read
	}
	h.Set("Age", strconv.FormatInt(int64(max(time.Since(checked), 0)/time.Second), 10))
	h.Add("Via", "1.1 patchmesh")
	mod, _ := http.ParseTime(hdr.Get("Last-Modified"))
	http.ServeContent(w, r, "", mod, body)
}

// peerRequest asks an owner for an object, from Offset of the body whose
// version is ID (empty: any fresh one, and then the answer starts at 0).
type peerRequest struct {
	URL        string `json:"url"`
	UA         string `json:"ua,omitempty"`
	Revalidate bool   `json:"revalidate,omitempty"`
	ID         string `json:"id,omitempty"`
	Offset     int64  `json:"offset,omitempty"`
}

// peerAnswer heads an owner's answer; the body follows it.
type peerAnswer struct {
	Status  int         `json:"status"`
	Header  http.Header `json:"header"`
	Size    int64       `json:"size"`             // of the whole body; -1: unknown
	Cached  bool        `json:"cached,omitempty"` // a stored object: ID and Checked are set
	ID      string      `json:"id,omitempty"`
	Checked time.Time   `json:"checked,omitzero"`
}

// maxAnswerHead bounds the head of an answer.
const maxAnswerHead = 256 << 10

func writeAnswer(w io.Writer, a peerAnswer) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(b)))); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func readAnswer(r *bufio.Reader) (peerAnswer, error) {
	var a peerAnswer
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return a, fmt.Errorf("read answer: %w", err)
	}
	if n > maxAnswerHead {
		return a, fmt.Errorf("read answer: head of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return a, fmt.Errorf("read answer: %w", err)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("read answer: %w", err)
	}
	if a.Status < 100 || a.Status > 999 || a.Header == nil {
		return a, errors.New("read answer: malformed head")
	}
	return a, nil
}

// ServeObject answers a member that asks this node, as the owner, for an
// object (mesh.Objects).
func (c *Cache) ServeObject(ctx context.Context, req []byte, w io.Writer) error {
	var pr peerRequest
	if err := json.Unmarshal(req, &pr); err != nil {
		return fmt.Errorf("serve object: %w", err)
	}
	cw := &countWriter{w: w, n: &c.stats.servedPeer}
	u, err := parseURL(pr.URL)
	if err != nil || !c.allowed(u.Scheme, u.Host) {
		c.stats.refused.Add(1)
		return writeAnswer(w, peerAnswer{Status: http.StatusForbidden, Header: http.Header{}, Size: 0})
	}
	var rec *record
	if pr.ID != "" {
		// A continuation: only the body it started with will do.
		if rec = c.load(pr.URL); rec == nil || rec.id() != pr.ID || pr.Offset > rec.Size {
			return writeAnswer(w, peerAnswer{Status: http.StatusConflict, Header: http.Header{}})
		}
	} else {
		var resp *http.Response
		rec, resp, err = c.object(ctx, pr.URL, pr.UA, pr.Revalidate)
		if err != nil {
			msg := []byte(err.Error())
			h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
			if err := writeAnswer(w, peerAnswer{Status: http.StatusBadGateway, Header: h, Size: int64(len(msg))}); err != nil {
				return err
			}
			_, err = w.Write(msg)
			return err
		}
		if resp != nil {
			defer resp.Body.Close()
			if err := writeAnswer(w, peerAnswer{Status: resp.StatusCode, Header: endToEnd(resp.Header), Size: resp.ContentLength}); err != nil {
				return err
			}
			_, err := io.Copy(cw, resp.Body)
			return err
		}
	}
	if err := writeAnswer(w, peerAnswer{Status: http.StatusOK, Header: rec.Header, Size: rec.Size, Cached: true, ID: rec.id(), Checked: rec.Checked}); err != nil {
		return err
	}
	rd := c.reader(ctx, rec)
	rd.pos = pr.Offset
	_, err = io.Copy(cw, rd)
	return err
}

// viaOwner answers r through the object's owner. It returns false, having
// written nothing, when the owner could not be asked: the caller then
// fetches the object itself.
func (c *Cache) viaOwner(w http.ResponseWriter, r *http.Request, owner string, pr peerRequest) bool {
	ctx := r.Context()
	open := func(pr peerRequest) (io.ReadCloser, *bufio.Reader, peerAnswer, error) {
		b, _ := json.Marshal(pr)
		rc, err := c.o.Site.OpenObject(ctx, mesh.ObjectRequest{Member: owner, Req: b, Wait: c.o.FillTimeout, Idle: c.o.IdleTimeout})
		if err != nil {
			return nil, nil, peerAnswer{}, err
		}
		br := bufio.NewReader(rc)
		a, err := readAnswer(br)
		if err != nil {
			rc.Close()
			return nil, nil, a, err
		}
		return rc, br, a, nil
	}
	rc, br, a, err := open(pr)
	if err != nil {
		c.o.Logger.Info("proxy: owner did not answer; fetching it here", "url", pr.URL, "peer", owner, "err", err)
		return false
	}
	body := &countReader{r: br, n: &c.stats.peer}
	if !a.Cached {
		defer rc.Close()
		writePassed(w, a.Status, a.Header, a.Size, body)
		return true
	}
	ro := &remoteObject{size: a.Size, rc: rc, body: body, open: func(off int64) (io.ReadCloser, io.Reader, error) {
		rc, br, a2, err := open(peerRequest{URL: pr.URL, ID: a.ID, Offset: off})
		if err == nil && (a2.Status != http.StatusOK || !a2.Cached) {
			rc.Close()
			err = fmt.Errorf("owner %s: object changed (status %d)", owner, a2.Status)
		}
		if err != nil {
			return nil, nil, err
		}
		return rc, &countReader{r: br, n: &c.stats.peer}, nil
	}}
	defer ro.Close()
	serveObject(w, r, a.Header, a.Checked, ro)
	return true
}

// remoteObject reads an owner's cached body, opening a new stream at the
// right offset when the reader seeks (ranges).
type remoteObject struct {
	size  int64
	pos   int64
	rcPos int64
	rc    io.ReadCloser
	body  io.Reader
	open  func(off int64) (io.ReadCloser, io.Reader, error)
}

func (o *remoteObject) Read(p []byte) (int, error) {
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if o.rc == nil || o.rcPos != o.pos {
		o.Close()
		rc, body, err := o.open(o.pos)
		if err != nil {
			return 0, err
		}
		o.rc, o.body, o.rcPos = rc, body, o.pos
	}
	n, err := o.body.Read(p)
	o.pos += int64(n)
	o.rcPos = o.pos
	if errors.Is(err, io.EOF) && o.pos < o.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *remoteObject) Seek(off int64, whence int) (int64, error) {
	return seek(&o.pos, o.size, off, whence)
}

func (o *remoteObject) Close() {
	if o.rc != nil {
		o.rc.Close()
		o.rc = nil
	}
}

type countReader struct {
	r interface{ Read([]byte) (int, error) }
	n interface{ Add(int64) int64 }
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countWriter struct {
	w io.Writer
	n interface{ Add(int64) int64 }
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
