package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, fmt.Errorf("parse url %q: not absolute", s)
	}
	return u, nil
}

// tunnel passes a CONNECT through to an allowed host, without caching: the
// bytes are TLS the proxy cannot read.
func (c *Cache) tunnel(w http.ResponseWriter, r *http.Request) {
	hostport := r.Host
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		c.refuse(w, http.StatusBadRequest, "CONNECT needs host:port")
		return
	}
	if !c.allowed("https", hostport) {
		c.refuse(w, http.StatusForbidden, fmt.Sprintf("host %s is not in the allow-list (--proxy-allow)", hostport))
		return
	}
	select {
	case c.tunSem <- struct{}{}:
		defer func() { <-c.tunSem }()
	default:
		http.Error(w, "patchmesh proxy: too many tunnels open", http.StatusServiceUnavailable)
		return
	}
	d := net.Dialer{Timeout: c.o.Timeout}
	up, err := d.DialContext(r.Context(), "tcp", hostport)
	if err != nil {
		http.Error(w, "patchmesh proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "patchmesh proxy: cannot tunnel on this connection", http.StatusInternalServerError)
		return
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer client.Close()
	_ = client.SetWriteDeadline(time.Now().Add(c.o.Timeout))
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	c.stats.tunnels.Add(1)
	// A client may have sent its first TLS bytes along with the CONNECT.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		if _, err := up.Write(b); err != nil {
			return
		}
	}
	// The tunnel ends with the node too, not only when a side stops.
	stop := context.AfterFunc(c.life, func() { client.Close(); up.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pipe(up, client, false); closeWrite(up) }()
	go func() { defer wg.Done(); c.pipe(client, up, true); closeWrite(client) }()
	wg.Wait()
}

// pipe copies src to dst until either ends or src idles for TunnelIdle.
func (c *Cache) pipe(dst, src net.Conn, fromUpstream bool) {
	buf := make([]byte, 32<<10)
	for {
		_ = src.SetReadDeadline(time.Now().Add(c.o.TunnelIdle))
		n, err := src.Read(buf)
		if n > 0 {
			if fromUpstream {
				c.stats.upstream.Add(int64(n))
			}
			_ = dst.SetWriteDeadline(time.Now().Add(c.o.TunnelIdle))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				// An idle or broken side ends both.
				_ = dst.Close()
				_ = src.Close()
			}
			return
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = c.Close()
	}
}
