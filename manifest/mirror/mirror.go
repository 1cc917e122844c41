package mirror

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/source"
)

// ErrRefused wraps every refusal of what the upstream served: a file whose size
// or sha256 is not the index's, a bad index, or the validator's nonzero exit.
// Nothing is published.
var ErrRefused = errors.New("upstream tree refused")

// Config configures a Mirror. Upstream, Work, Repo and Publish.Channel and
// Publish.Keys are required; every other zero value is documented.
type Config struct {
	// Upstream is where the vendor's tree is: http://, https://, ftp://,
	// file:///dir or an absolute folder path. With URLs set and no Index it
	// may be empty, and only names the base paths are made relative to.
	Upstream string
	// Index is the path, relative to Upstream, of the vendor's index (a
	// sha256sums file or JSON, see the package documentation). Empty: none.
	Index string
	// URLs lists the files to fetch instead of crawling Upstream. A file's
	// path in the tree is its URL relative to Upstream when under it, else
	// its last path element.
	URLs []string
	// Work is the folder kept between runs (see the package documentation).
	Work string
	// Repo is the repository folder to publish into.
	Repo string
	// Publish is passed to repo.Publish. An empty Version becomes
	// "<UTC date>.<time>.<sequence>", e.g. 20250301.120000.7.
	Publish repo.PublishOptions
	// Validate is a shell command (sh -c; cmd /C on Windows) run on the
	// collected tree before it is published, in the tree's folder with
	// PATCHMESH_MIRROR_TREE set to it; a nonzero exit refuses the tree.
	// Empty: none.
	Validate string
	// ValidateTimeout bounds the validator. Zero: 10 minutes.
	ValidateTimeout time.Duration
	// Proxy is an http(s) proxy URL. Empty: HTTP_PROXY, HTTPS_PROXY and NO_PROXY.
	Proxy string
	// Timeout bounds connecting and waiting for response headers. Zero: 30s.
	Timeout time.Duration
	// IdleTimeout fails a transfer with no byte for this long. Zero: 30s.
	IdleTimeout time.Duration
	// Attempts per file on network errors, each resuming the partial
	// download. Zero: 3.
	Attempts int
	// MaxFiles bounds the files of a tree; MaxFileSize each file. Zero:
	// 100000 files of at most 16 GiB.
	MaxFiles    int
	MaxFileSize int64
	// Logger receives per-file debug logs and per-run info. Nil: discarded.
	Logger *slog.Logger
	// Now is the clock for versions. Nil: time.Now.
	Now func() time.Time
}

// Result of one run.
type Result struct {
	// Published is true when the tree changed and was published; Summary
	// is then the publish's.
	Published bool          `json:"published"`
	Summary   *repo.Summary `json:"summary,omitempty"`
	// Version is the published one, or the one the repository already had.
	Version string `json:"version"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
	// Downloaded files and bytes moved from the upstream in this run;
	// Resumed the bytes of partial downloads reused; Kept the files taken
	// from the previous tree unchanged.
	Downloaded      int   `json:"downloaded"`
	DownloadedBytes int64 `json:"downloaded_bytes"`
	ResumedBytes    int64 `json:"resumed_bytes"`
	Kept            int   `json:"kept"`
	// Renewed is true when the tree was unchanged and the head, past half
	// its life, was signed again with a new expiry.
	Renewed bool `json:"renewed,omitempty"`
	// Added, Changed and Removed compare the tree with the repository's head.
	Added   []string `json:"added,omitempty"`
	Changed []string `json:"changed,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// Mirror runs the collection; it holds the HTTP client across runs.
type Mirror struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	tr     *http.Transport
	base   *url.URL      // http(s) upstream, or nil
	src    source.Source // ftp or folder upstream, or nil
	dir    string        // folder upstream, for walking
}

// New checks cfg and prepares the upstream.
func New(cfg Config) (*Mirror, error) {
	if cfg.Work == "" || cfg.Repo == "" {
		return nil, errors.New("mirror: the work folder and the repository are required")
	}
	if cfg.Upstream == "" && len(cfg.URLs) == 0 {
		return nil, errors.New("mirror: no upstream and no URL list")
	}
	if cfg.Publish.Channel == "" {
		return nil, errors.New("mirror: no channel")
	}
	if err := repo.ValidChannel(cfg.Publish.Channel); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	if len(cfg.Publish.Keys) == 0 {
		return nil, errors.New("mirror: no signing key")
	}
	if cfg.Index != "" {
		if err := checkPath(cfg.Index); err != nil {
			return nil, fmt.Errorf("mirror: index: %w", err)
		}
	}
	if cfg.ValidateTimeout <= 0 {
		cfg.ValidateTimeout = 10 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.MaxFiles <= 0 {
		cfg.MaxFiles = 100000
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = 16 << 30
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Mirror{cfg: cfg, log: cfg.Logger}
	proxy := http.ProxyFromEnvironment
	if cfg.Proxy != "" {
		pu, err := url.Parse(cfg.Proxy)
		if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
			return nil, fmt.Errorf("mirror: proxy %q is not an http(s) URL", cfg.Proxy)
		}
		proxy = http.ProxyURL(pu)
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	m.tr = &http.Transport{
		Proxy:                  proxy,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    cfg.Timeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    8,
		MaxResponseHeaderBytes: 64 << 10,
		// A transparent gunzip would change the bytes checked against the index.
		DisableCompression: true,
	}
	m.client = &http.Client{Transport: m.tr, Timeout: 0} // bodies are bounded by the idle timeout instead
	if cfg.Upstream != "" {
		if filepath.IsAbs(cfg.Upstream) {
			m.dir = filepath.Clean(cfg.Upstream)
		} else {
			u, err := url.Parse(cfg.Upstream)
			if err != nil {
				return nil, fmt.Errorf("mirror: upstream: %w", err)
			}
			switch strings.ToLower(u.Scheme) {
			case "http", "https":
				if u.Host == "" {
					return nil, fmt.Errorf("mirror: upstream %s: no host", u.Redacted())
				}
				if !strings.HasSuffix(u.Path, "/") {
					u.Path += "/"
				}
				u.RawPath, u.RawQuery, u.Fragment = "", "", ""
				m.base = u
			case "file":
				m.dir = filepath.FromSlash(u.Path)
			case "ftp":
				if cfg.Index == "" && len(cfg.URLs) == 0 {
					return nil, fmt.Errorf("mirror: upstream %s: FTP has no listing patchmesh reads; give --index", u.Redacted())
				}
			default:
				return nil, fmt.Errorf("mirror: upstream %s: unsupported scheme %q (want http, https, ftp, file or a folder)", u.Redacted(), u.Scheme)
			}
		}
		if m.base == nil {
			src, err := source.New(cfg.Upstream, source.Options{Timeout: cfg.Timeout, IdleTimeout: cfg.IdleTimeout, Proxy: cfg.Proxy, Logger: cfg.Logger})
			if err != nil {
				return nil, fmt.Errorf("mirror: %w", err)
			}
			m.src = src
		}
	}
	return m, nil
}

// Close drops idle connections.
func (m *Mirror) Close() error {
	m.tr.CloseIdleConnections()
	if c, ok := m.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Every runs once now and then every interval until ctx is done, handing each
// run's outcome to report; a failed run is reported and the next one tried.
// It returns nil when ctx is cancelled.
func (m *Mirror) Every(ctx context.Context, every time.Duration, report func(*Result, error)) error {
	if every <= 0 {
		return fmt.Errorf("mirror: interval %v must be positive", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		res, err := m.Run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		report(res, err)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// fileState is what a run remembers of one file of the tree.
type fileState struct {
	URL          string `json:"url,omitempty"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

type state struct {
	Files map[string]fileState `json:"files"`
}

func (m *Mirror) treeDir() string    { return filepath.Join(m.cfg.Work, "tree") }
func (m *Mirror) nextDir() string    { return filepath.Join(m.cfg.Work, "next") }
func (m *Mirror) partialDir() string { return filepath.Join(m.cfg.Work, "partial") }
func (m *Mirror) statePath() string  { return filepath.Join(m.cfg.Work, "state.json") }

func (m *Mirror) loadState() (*state, error) {
	st := &state{Files: map[string]fileState{}}
	data, err := os.ReadFile(m.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, st); err != nil {
		// A damaged state only costs downloads: start over.
		m.log.Warn("mirror state unreadable; fetching everything again", "err", err)
		return &state{Files: map[string]fileState{}}, nil
	}
	if st.Files == nil {
		st.Files = map[string]fileState{}
	}
	return st, nil
}

// item is one file to collect.
type item struct {
	path   string
	url    string // http(s); empty for ftp and folder upstreams
	size   int64  // -1: unknown
	sha256 string // "": unknown
	data   []byte // the index itself, already in memory
}
