package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jlaffaye/ftp"
)

const (
	// ftpMaxConns bounds the logged-in connections to one FTP server. FTP
	// moves one file per control connection, so this is also the number of
	// concurrent transfers; Open waits for a free one.
	ftpMaxConns = 4
	// ftpPoolIdle closes a pooled connection unused this long, before the
	// server's own idle timeout (often 300s) drops it under us.
	ftpPoolIdle = 60 * time.Second
	// statusNotFound is FTP's "file unavailable" reply (RFC 959), which
	// servers give for a missing file.
	statusNotFound = 550
)

type ftpSource struct {
	addr       string // host:port
	user, pass string
	base       string // directory under the login directory, no trailing slash
	name       string // redacted URL
	opts       Options
	slots      chan struct{}

	mu     sync.Mutex
	idle   []*ftpConn
	closed bool
}

// ftpConn is a logged-in control connection. It is used by one transfer at a
// time: taken from the pool by Open, put back when its reader is closed.
type ftpConn struct {
	sc     *ftp.ServerConn
	ctrl   net.Conn
	expiry *time.Timer // while pooled
}

func newFTP(u *url.URL, opts Options) (*ftpSource, error) {
	if u.Hostname() == "" {
		return nil, fmt.Errorf("source %s: no host", u.Redacted())
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "21")
	}
	user, pass := "anonymous", "anonymous"
	if u.User != nil {
		user = u.User.Username()
		if p, ok := u.User.Password(); ok {
			pass = p
		}
	}
	if strings.ContainsAny(user+pass, "\r\n") {
		return nil, fmt.Errorf("source %s: user or password holds a line break", u.Redacted())
	}
	name := *u
	name.Path = strings.TrimSuffix(name.Path, "/")
	name.RawPath, name.RawQuery, name.Fragment = "", "", ""
	return &ftpSource{
		addr:  addr,
		user:  user,
		pass:  pass,
		base:  strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/"),
		name:  name.Redacted(),
		opts:  opts,
		slots: make(chan struct{}, ftpMaxConns),
	}, nil
}

func (s *ftpSource) String() string { return s.name }

// Close logs out the pooled connections; connections in use are logged out
// when their readers are closed.
func (s *ftpSource) Close() error {
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, c := range idle {
		if c.expiry.Stop() {
			c.quit()
		}
	}
	return nil
}

func (s *ftpSource) Open(ctx context.Context, path string, max int64) (io.ReadCloser, error) {
	if err := checkRequest(path, max); err != nil {
		return nil, err
	}
	start := time.Now()
	name := s.name + "/" + path
	remote := path
	if s.base != "" {
		remote = s.base + "/" + path
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("retr %s: %w", name, ctx.Err())
	}
	handedOff := false
	defer func() {
		if !handedOff {
			<-s.slots
		}
	}()

	for attempt := 0; ; attempt++ {
		c, pooled, err := s.get(ctx)
		if err != nil {
			return nil, fmt.Errorf("retr %s: %w", name, err)
		}
		resp, err := c.retr(ctx, remote, s.opts.Timeout)
		if err == nil {
			handedOff = true
			body := &ftpBody{resp: resp}
			abort := func() { _ = resp.SetDeadline(time.Unix(1, 0)) }
			release := func(clean bool) error {
				defer func() { <-s.slots }()
				if clean && body.done {
					s.put(c)
					return nil
				}
				// An unfinished transfer leaves the control connection in
				// an unknown state: log out rather than reuse it.
				c.quit()
				_ = resp.Close()
				return nil
			}
			return newGuard(ctx, name, body, max, s.opts, start, abort, release), nil
		}
		var reply *textproto.Error
		switch {
		case ctx.Err() != nil:
			c.quit()
			return nil, fmt.Errorf("retr %s: %w", name, ctx.Err())
		case errors.As(err, &reply):
			s.put(c) // the server answered; the connection is fine
			if reply.Code == statusNotFound {
				return nil, fmt.Errorf("retr %s: %s: %w", name, strings.TrimSpace(reply.Msg), ErrNotFound)
			}
			return nil, fmt.Errorf("retr %s: server answered %d %s", name, reply.Code, strings.TrimSpace(reply.Msg))
		case pooled && attempt == 0:
			// The server may have dropped an idle connection: one retry on
			// a fresh one.
			s.opts.Logger.Debug("ftp pooled connection broken, redialling", "source", s.name, "err", err)
			c.quit()
			continue
		default:
			c.quit()
			return nil, fmt.Errorf("retr %s: %w", name, err)
		}
	}
}

// get returns a pooled connection or a new logged-in one.
func (s *ftpSource) get(ctx context.Context) (c *ftpConn, pooled bool, err error) {
	s.mu.Lock()
	closed := s.closed
	for c == nil && len(s.idle) > 0 {
		c = s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		if !c.expiry.Stop() {
			c = nil // being expired; expire logs it out
		}
	}
	s.mu.Unlock()
	if closed {
		return nil, false, net.ErrClosed
	}
	if c != nil {
		return c, true, nil
	}
	c, err = s.dial(ctx)
	return c, false, err
}

func (s *ftpSource) put(c *ftpConn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.quit()
		return
	}
	c.expiry = time.AfterFunc(ftpPoolIdle, func() { s.expire(c) })
	s.idle = append(s.idle, c)
	s.mu.Unlock()
}

func (s *ftpSource) expire(c *ftpConn) {
	s.mu.Lock()
	s.idle = slices.DeleteFunc(s.idle, func(x *ftpConn) bool { return x == c })
	s.mu.Unlock()
	c.quit()
}

func (s *ftpSource) dial(ctx context.Context) (*ftpConn, error) {
	c := &ftpConn{}
	d := net.Dialer{Timeout: s.opts.Timeout, KeepAlive: 30 * time.Second}
	dial := func(network, addr string) (net.Conn, error) {
		if c.ctrl != nil {
			// A passive data connection, dialled later under another
			// Open's context: bounded by the dialer's timeout.
			return d.Dial(network, addr)
		}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// Bounds the greeting and login; each command sets its own.
		_ = conn.SetDeadline(time.Now().Add(s.opts.Timeout))
		c.ctrl = conn
		return conn, nil
	}
	sc, err := ftp.Dial(s.addr, ftp.DialWithDialFunc(dial), ftp.DialWithShutTimeout(s.opts.Timeout))
	if err != nil {
		if c.ctrl != nil {
			c.ctrl.Close()
		}
		return nil, fmt.Errorf("connect %s: %w", s.addr, err)
	}
	c.sc = sc
	stop := context.AfterFunc(ctx, func() { _ = c.ctrl.SetDeadline(time.Unix(1, 0)) })
	err = sc.Login(s.user, s.pass)
	if !stop() {
		c.quit()
		return nil, fmt.Errorf("login %s: %w", s.addr, ctx.Err())
	}
	if err != nil {
		c.quit()
		return nil, fmt.Errorf("login %s as %s: %w", s.addr, s.user, err)
	}
	s.opts.Logger.Debug("ftp logged in", "source", s.name)
	return c, nil
}

// retr starts the transfer of remote; the control connection is bounded by
// timeout and by ctx.
func (c *ftpConn) retr(ctx context.Context, remote string, timeout time.Duration) (*ftp.Response, error) {
	_ = c.ctrl.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = c.ctrl.SetDeadline(time.Unix(1, 0)) })
	resp, err := c.sc.Retr(remote)
	if !stop() {
		c.quit()
		if resp != nil {
			_ = resp.Close() // returns at once: the control connection is closed
		}
		return nil, ctx.Err()
	}
	return resp, err
}

// quit logs out without waiting for the reply and closes the connection.
func (c *ftpConn) quit() {
	_ = c.ctrl.SetDeadline(time.Now().Add(time.Second))
	_ = c.sc.Quit()
}

// ftpBody reads a transfer and, at its end, the server's completion reply: in
// FTP stream mode a data connection closed early looks like a normal end of
// file, and only the reply tells them apart.
type ftpBody struct {
	resp *ftp.Response
	done bool
}

func (b *ftpBody) Read(p []byte) (int, error) {
	n, err := b.resp.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		if cerr := b.resp.Close(); cerr != nil {
			return n, fmt.Errorf("transfer not confirmed: %w", cerr)
		}
		b.done = true
	}
	return n, err
}
