package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patchmesh/patchmesh/manifest/batch"
)

// Files is what a repository server serves from: a folder, or a node's own store.
type Files interface {
	// Open returns the file at a clean, slash-separated repository path, or an
	// error wrapping fs.ErrNotExist.
	Open(ctx context.Context, name string) (*File, error)
}

// File is one servable file.
type File struct {
	Content   io.ReadSeeker
	Size      int64
	ModTime   time.Time
	ETag      string // quoted strong validator
	Immutable bool   // content never changes under this name (chunks, manifests)
	Close     func() error
}

// Stats counts what a repository server served. Safe for concurrent use.
type Stats struct {
	Requests   atomic.Int64
	Bytes      atomic.Int64 // body bytes of every response
	ChunkBytes atomic.Int64 // body bytes of chunk responses
	Chunks     atomic.Int64 // chunk responses with a body
	NotFound   atomic.Int64
}

// StatsSnapshot is Stats as plain numbers, for JSON.
type StatsSnapshot struct {
	Requests   int64 `json:"requests"`
	Bytes      int64 `json:"bytes"`
	ChunkBytes int64 `json:"chunk_bytes"`
	Chunks     int64 `json:"chunks"`
	NotFound   int64 `json:"not_found"`
}

// Snapshot returns the counters now.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{s.Requests.Load(), s.Bytes.Load(), s.ChunkBytes.Load(), s.Chunks.Load(), s.NotFound.Load()}
}

// HandlerOptions configure NewHandler. The zero value serves without logs.
type HandlerOptions struct {
	Logger *slog.Logger // errors opening files; nil: none
	// Access is called once for every request, when its response has
	// ended. Zero: no access log.
	Access func(AccessEntry)
	Stats  *Stats // nil: not counted
	// Batch answers POST batch.Path: many chunk files in one response
	// (package batch). Each chunk counts in Stats as if served on its own.
	// Zero: refused with 405, as a static server would.
	Batch bool
}

// AccessEntry is one answered request, for an access log.
type AccessEntry struct {
	Start     time.Time
	Duration  time.Duration
	Remote    string // the client's host:port
	Method    string
	Path      string // the request's path, as sent
	Query     string // raw, without "?"
	Proto     string
	Status    int
	Bytes     int64 // body bytes sent
	Referer   string
	UserAgent string
}

// LogAccess returns an Access function that writes each request to l as one
// record "http" at level: at Debug, a busy server's requests cost nothing
// unless debug logs are on.
func LogAccess(l *slog.Logger, level slog.Level) func(AccessEntry) {
	return func(e AccessEntry) {
		if !l.Enabled(context.Background(), level) {
			return
		}
		l.LogAttrs(context.Background(), level, "http",
			slog.String("method", e.Method), slog.String("path", e.Path),
			slog.Int("status", e.Status), slog.Int64("bytes", e.Bytes),
			slog.Duration("dur", e.Duration), slog.String("remote", e.Remote))
	}
}

// NewHandler serves a repository read-only over HTTP: GET and HEAD, Range,
// ETag/If-None-Match, exact lengths, no directory listing, nothing outside the tree.
func NewHandler(files Files, opts HandlerOptions) http.Handler {
	return &handler{files: files, opts: opts}
}

type handler struct {
	files Files
	opts  HandlerOptions
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
	name, ok := cleanRequestPath(r.URL.Path)
	isBatch := ok && name == batch.Path && r.Method == http.MethodPost && h.opts.Batch
	defer func() {
		if h.opts.Stats != nil {
			h.opts.Stats.Requests.Add(1)
			h.opts.Stats.Bytes.Add(cw.n)
			if cw.status == http.StatusNotFound {
				h.opts.Stats.NotFound.Add(1)
			}
			// Error pages under chunks/ are not chunk bytes.
			served := cw.status == http.StatusOK || cw.status == http.StatusPartialContent
			if ok && served && !isBatch && strings.HasPrefix(name, chunksDir+"/") && cw.n > 0 {
				h.opts.Stats.ChunkBytes.Add(cw.n)
				h.opts.Stats.Chunks.Add(1)
			}
		}
		if h.opts.Access != nil {
			h.opts.Access(AccessEntry{Start: start, Duration: time.Since(start), Remote: r.RemoteAddr,
				Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Proto: r.Proto,
				Status: cw.status, Bytes: cw.n, Referer: r.Referer(), UserAgent: r.UserAgent()})
		}
	}()
	if isBatch {
		h.serveBatch(cw, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		cw.Header().Set("Allow", "GET, HEAD")
		http.Error(cw, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !ok {
		http.NotFound(cw, r)
		return
	}
	f, err := h.files.Open(r.Context(), name)
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(cw, r)
		return
	}
	if err != nil {
		http.Error(cw, "internal error", http.StatusInternalServerError)
		if h.opts.Logger != nil {
			h.opts.Logger.Error("open", "path", name, "err", err)
		}
		return
	}
	if f.Close != nil {
		defer f.Close()
	}
	hdr := cw.Header()
	if f.ETag != "" {
		hdr.Set("ETag", f.ETag)
	}
	if f.Immutable {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	if strings.HasSuffix(name, ".json") {
		hdr.Set("Content-Type", "application/json")
	} else {
		hdr.Set("Content-Type", "application/octet-stream")
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(cw, r, "", f.ModTime, f.Content)
}

// cleanRequestPath maps a URL path to a repository path, refusing anything that is
// not a plain file name inside the tree (hidden and temporary files included).
func cleanRequestPath(p string) (string, bool) {
	if p == "" || p[0] != '/' || strings.ContainsRune(p, 0) || strings.Contains(p, "\\") {
		return "", false
	}
	name := strings.TrimPrefix(p, "/")
	if name == "" || path.Clean(name) != name {
		return "", false
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == ".." || strings.HasPrefix(el, ".") {
			return "", false
		}
	}
	return name, true
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom keeps the server's sendfile path for file bodies while counting them.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// DirFiles serves a repository folder. Opening goes through os.Root, so neither
// "..", absolute names nor symlinks lead outside the folder.
type DirFiles struct {
	root *os.Root

	// shards keeps the chunk folders ("chunks/ab") open: through the root,
	// each chunk request opened and closed every folder on its path, a tenth
	// of a seed's CPU samples while a node pulled a release. A chunk's name
	// is its content, so a file found in a folder since removed or replaced
	// is still the right one; one not found there is looked up again.
	mu     sync.Mutex
	shards map[string]*os.Root
}

// maxShards bounds the chunk folders kept open; a repository has 1024.
const maxShards = 4096

// OpenDir opens a repository folder for serving.
func OpenDir(dir string) (*DirFiles, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	return &DirFiles{root: root, shards: make(map[string]*os.Root)}, nil
}

// Close releases the folder.
func (d *DirFiles) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, r := range d.shards {
		r.Close()
		delete(d.shards, name)
	}
	return d.root.Close()
}

// open opens name, a chunk in its folder's kept root if it can.
func (d *DirFiles) open(name string) (*os.File, error) {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if path.Dir(dir) != chunksDir {
		return d.root.Open(name)
	}
	r := d.shard(dir)
	if r == nil {
		return d.root.Open(name)
	}
	f, err := r.Open(base)
	if err == nil {
		return f, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		// The folder may have been removed, or removed and made again:
		// forget it. A request that took it before fails on it closed, and
		// looks again from the top too.
		d.mu.Lock()
		if d.shards[dir] == r {
			delete(d.shards, dir)
			r.Close()
		}
		d.mu.Unlock()
	}
	return d.root.Open(name)
}

// shard returns the kept root of the chunk folder dir, opening it if need
// be, or nil when it cannot be opened or kept. It opens outside the lock: a
// folder on a slow mount must not hold up the requests for the others.
func (d *DirFiles) shard(dir string) *os.Root {
	d.mu.Lock()
	r := d.shards[dir]
	d.mu.Unlock()
	if r != nil {
		return r
	}
	r, err := d.root.OpenRoot(dir)
	if err != nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if kept := d.shards[dir]; kept != nil {
		r.Close() // another request opened it meanwhile
		return kept
	}
	if len(d.shards) >= maxShards {
		r.Close()
		return nil
	}
	d.shards[dir] = r
	return r
}

// Open implements Files.
func (d *DirFiles) Open(_ context.Context, name string) (*File, error) {
	f, err := d.open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		// Escapes and other refusals of os.Root look like missing files to clients.
		return nil, fmt.Errorf("%s: %w (%v)", name, fs.ErrNotExist, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	out := &File{Content: f, Size: st.Size(), ModTime: st.ModTime(), Close: f.Close}
	switch {
	case strings.HasPrefix(name, chunksDir+"/"):
		out.ETag = `"` + path.Base(name) + `"`
		out.Immutable = true
	default:
		out.ETag = fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano())
		out.Immutable = strings.HasPrefix(name, "manifests/") || strings.HasPrefix(name, rootsDir+"/")
	}
	return out, nil
}
