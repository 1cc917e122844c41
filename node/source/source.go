// Package source reads files of a patchmesh static repository from an ordered
// list of update sources — HTTP, HTTPS and FTP servers or local and mounted
// folders — and moves on to the next source when one fails.
//
// The package knows nothing of the repository's formats: it fetches
// slash-separated repository-relative paths ("channels/stable/head.json",
// "chunks/ab/<cid>") with a size bound, an idle (stall) bound and a time bound.
package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

var (
	// ErrNotFound means the source answered that it has no such file
	// (HTTP 404/410, FTP 550, ENOENT). It is not a failure of the source.
	ErrNotFound = errors.New("file not found")
	// ErrTooLarge means the file is larger than the caller's bound.
	ErrTooLarge = errors.New("file larger than allowed")
	// ErrStalled means no byte arrived for Options.IdleTimeout.
	ErrStalled = errors.New("transfer stalled")
	// ErrInvalidPath means the requested path is not a clean relative path
	// inside the repository ("..", absolute, empty or control characters).
	// No source is contacted.
	ErrInvalidPath = errors.New("invalid repository path")
	// errTimeout is a whole-request timeout (Options.Timeout). Callers need
	// not tell it apart from other failures: it is one.
	errTimeout = errors.New("timed out")
)

// Source is one update source: a repository root on a server or in a folder.
// Sources that hold connections (HTTP, FTP) also implement io.Closer; List.Close
// closes them.
type Source interface {
	// Open returns the file at a slash-separated repository-relative path. The
	// reader fails with ErrTooLarge when the body exceeds max bytes and with
	// ErrStalled when no byte arrives for the idle timeout.
	Open(ctx context.Context, path string, max int64) (io.ReadCloser, error)
	// String returns the URL with any password redacted.
	String() string
}

// smallBody is the largest bound (max) for which Options.Timeout covers the
// whole request including the body. Larger bodies may legitimately take long on
// a slow WAN link; the idle timeout bounds them instead.
const smallBody = 1 << 20

// Options configures a source. The zero value of every field means the
// DefaultOptions value for it.
type Options struct {
	// Timeout bounds connecting, TLS, FTP login and waiting for the response
	// headers; for reads bounded by max ≤ 1 MiB it bounds the whole request
	// including the body. Zero: 30s.
	Timeout time.Duration
	// IdleTimeout fails a transfer with ErrStalled when no byte arrives for
	// this long. Zero: 15s.
	IdleTimeout time.Duration
	// CAFile names a PEM file of extra roots for https, added to the system
	// roots. Empty: system roots only.
	CAFile string
	// Proxy is an http(s) proxy URL for http and https sources. Empty: from
	// HTTP_PROXY, HTTPS_PROXY and NO_PROXY.
	Proxy string
	// UserAgent is sent with HTTP requests. Empty: "patchmesh".
	UserAgent string
	// Logger receives debug logs. Nil: logs are discarded.
	Logger *slog.Logger
	// Throttle, if set, paces the body bytes read from the source (a WAN
	// rate cap), shared by every source and request given the same one. Time
	// waiting on it counts neither as a stall nor against Timeout. Nil: none.
	Throttle Throttle
	// Conns is how many requests to one HTTP server the caller runs at once:
	// as many connections are kept alive for reuse. Zero: 64.
	Conns int
}

// Throttle paces bytes: WaitN returns when n more bytes fit the cap, or ctx ends.
type Throttle interface {
	WaitN(ctx context.Context, n int) error
}

// DefaultOptions returns the options used for zero fields.
func DefaultOptions() Options {
	return Options{
		Timeout:     30 * time.Second,
		IdleTimeout: 15 * time.Second,
		UserAgent:   "patchmesh",
		Logger:      slog.New(slog.DiscardHandler),
		Conns:       64,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = d.UserAgent
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	if o.Conns <= 0 {
		o.Conns = d.Conns
	}
	return o
}

// New returns the source for rawURL: http://, https://, ftp:// (user:pass@
// optional, anonymous otherwise) or file:///abs/dir; a plain absolute path is a
// folder too. IPv6 literals ("http://[::1]:8080/repo") work.
//
// An ftp URL path is relative to the login directory, as in RFC 1738; start it
// with %2F for an absolute one ("ftp://host/%2Fsrv/repo").
func New(rawURL string, opts Options) (Source, error) {
	opts = opts.withDefaults()
	if filepath.IsAbs(rawURL) {
		return newFolder(rawURL, opts.Throttle)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse source %q: %w", rawURL, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return newHTTP(u, opts)
	case "ftp":
		return newFTP(u, opts)
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("source %s: file URL with host %q: mount the share and use file:///mount/point", u.Redacted(), u.Host)
		}
		p := filepath.FromSlash(u.Path)
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("source %s: file URL needs an absolute path (file:///abs/dir)", u.Redacted())
		}
		return newFolder(p, opts.Throttle)
	case "":
		return nil, fmt.Errorf("source %q: neither a URL (http, https, ftp, file) nor an absolute path", rawURL)
	default:
		return nil, fmt.Errorf("source %s: unsupported scheme %q (want http, https, ftp or file)", u.Redacted(), u.Scheme)
	}
}

// checkRequest refuses paths that could leave the repository or inject
// protocol commands, and meaningless bounds, before any source is contacted.
func checkRequest(path string, max int64) error {
	if max <= 0 {
		return fmt.Errorf("open %q: max must be positive, got %d", path, max)
	}
	if !fs.ValidPath(path) || path == "." || strings.ContainsAny(path, `\:`) {
		return fmt.Errorf("open %q: %w", path, ErrInvalidPath)
	}
	for _, r := range path {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("open %q: %w", path, ErrInvalidPath)
		}
	}
	return nil
}
