package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

type httpSource struct {
	base   *url.URL
	opts   Options
	client *http.Client
	tr     *http.Transport
}

func newHTTP(u *url.URL, opts Options) (*httpSource, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("source %s: no host", u.Redacted())
	}
	proxy := http.ProxyFromEnvironment
	if opts.Proxy != "" {
		pu, err := url.Parse(opts.Proxy)
		if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
			return nil, fmt.Errorf("source %s: proxy %q is not an http(s) URL", u.Redacted(), opts.Proxy)
		}
		proxy = http.ProxyURL(pu)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("source %s: read CA file: %w", u.Redacted(), err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("source %s: CA file %s holds no PEM certificate", u.Redacted(), opts.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 proxy,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		// Many chunk downloads run at once, each over a kept-alive
		// connection to the same server.
		MaxIdleConns:           opts.Conns,
		MaxIdleConnsPerHost:    opts.Conns,
		MaxResponseHeaderBytes: 64 << 10,
		// Chunks do not compress; and a transparent gunzip would hide the
		// Content-Length that lets an oversized body fail before it is read.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	base := *u
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	base.RawQuery, base.Fragment = "", ""
	return &httpSource{
		base:   &base,
		opts:   opts,
		tr:     tr,
		client: &http.Client{Transport: tr},
	}, nil
}

func (s *httpSource) String() string { return s.base.Redacted() }

// Close drops idle connections.
func (s *httpSource) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}

func (s *httpSource) Open(ctx context.Context, path string, max int64) (io.ReadCloser, error) {
	if err := checkRequest(path, max); err != nil {
		return nil, err
	}
	start := time.Now()
	u := *s.base
	u.Path += "/" + path
	name := s.String() + "/" + path

	// The timeout covers the request up to the headers; the body has its own
	// bounds (guard), so the timer stops once the headers are in.
	reqCtx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(s.opts.Timeout, func() { cancel(errTimeout) })
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, u.String(), nil)
	if err != nil {
		timer.Stop()
		cancel(nil)
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	req.Header.Set("User-Agent", s.opts.UserAgent)
	resp, err := s.client.Do(req)
	timedOut := !timer.Stop()
	// Do wraps its errors in a *url.Error that names the method and URL
	// again; ours already name them.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	fail := func(err error) (io.ReadCloser, error) {
		if resp != nil {
			// Drain a short error page so the connection can be reused,
			// without waiting on a server that stalls.
			if resp.ContentLength >= 0 && resp.ContentLength <= 4<<10 {
				t := time.AfterFunc(s.opts.IdleTimeout, func() { cancel(errTimeout) })
				_, _ = io.Copy(io.Discard, resp.Body)
				t.Stop()
			}
			resp.Body.Close()
		}
		cancel(nil)
		return nil, err
	}
	switch {
	case ctx.Err() != nil:
		return fail(fmt.Errorf("get %s: %w", name, ctx.Err()))
	case timedOut:
		return fail(fmt.Errorf("get %s: no response in %v: %w", name, s.opts.Timeout, errTimeout))
	case isTimeout(err):
		return fail(fmt.Errorf("get %s: %w (%w)", name, errTimeout, err))
	case err != nil:
		return fail(fmt.Errorf("get %s: %w", name, err))
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fail(fmt.Errorf("get %s: %s: %w", name, resp.Status, ErrNotFound))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fail(fmt.Errorf("get %s: server answered %s", name, resp.Status))
	case resp.ContentLength > max:
		return fail(fmt.Errorf("get %s: %d bytes, over %d: %w", name, resp.ContentLength, max, ErrTooLarge))
	}
	body := resp.Body
	abort := func() { body.Close() }
	release := func(bool) error {
		err := body.Close()
		cancel(nil)
		return err
	}
	g := newGuard(ctx, name, body, max, s.opts, start, abort, release)
	g.size = resp.ContentLength
	return g, nil
}

// isTimeout reports a transport timeout (dial, TLS handshake, headers).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
