// Package fileview serves the files of a node's current release over plain
// HTTP, by path, for agents that fetch their updates from "an HTTP server":
// Range, ETag, If-None-Match, If-Modified-Since and an optional directory
// index, as a static web server would.
//
// Each request resolves the current release once and then reads only from it:
// a reader in the middle of a file keeps reading the release it started with
// (the open file survives the switch and the pruning of its folder), and a
// request that starts after a switch sees the new release. Paths cannot leave
// the release folder, through ".." or through symlinks (os.Root).
package fileview

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Release is an installed release as the view serves it.
type Release struct {
	Name string // release name, e.g. "1.4.2-7"
	Dir  string // its folder
}

// Pending is a release still being downloaded, whose files the view serves
// while no release is installed: each part of a file is fetched on demand,
// through the site like any chunk, and verified before a byte of it is sent.
type Pending interface {
	// Name is the release's name.
	Name() string
	// Open returns a reader of the regular file at the slash path rel, its
	// size and sha256 (lowercase hex), or false when the release has no
	// such file. Reads fail when ctx ends.
	Open(ctx context.Context, rel string) (r io.ReadSeeker, size int64, sha256 string, ok bool)
}

// Options configure the handler. Current is required.
type Options struct {
	// Current returns the release to serve; false while there is none.
	Current func() (Release, bool)
	// Pending returns the release being downloaded, served while Current
	// has none. Nil, or false: the view answers 503 until one is installed.
	Pending func() (Pending, bool)
	// Digests returns the sha256 (lowercase hex) of a release's regular
	// files by slash path, from its manifest; the view uses them as ETags,
	// which then stay the same across releases for a file that did not
	// change, and on every node. It is called once per release. Nil, or a
	// file it does not name: the ETag is made of size and modification time.
	Digests func(name string) map[string]string
	// Index lists folders as HTML pages (for `wget --mirror` and people).
	// False: a folder is not found.
	Index bool
	// Logger receives debug logs. Nil: discarded.
	Logger *slog.Logger
}

type handler struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	name    string            // release whose digests are cached
	digests map[string]string // guarded by mu
}

// NewHandler returns the file view.
func NewHandler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &handler{o: o, log: o.Logger}
}

func (h *handler) digestsOf(name string) map[string]string {
	if h.o.Digests == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.name != name {
		h.name, h.digests = name, h.o.Digests(name)
	}
	return h.digests
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	upath := r.URL.Path
	if !strings.HasPrefix(upath, "/") {
		upath = "/" + upath
	}
	rel := strings.TrimPrefix(path.Clean(upath), "/")
	if strings.ContainsRune(rel, 0) || strings.Contains(rel, `\`) {
		http.NotFound(w, r)
		return
	}
	if rel == "" {
		rel = "."
	}
	// A release pruned between Current and OpenRoot is no longer current:
	// one more look finds the one that is.
	var (
		rls  Release
		root *os.Root
		err  error
	)
	for range 2 {
		var ok bool
		if rls, ok = h.o.Current(); !ok {
			if h.servePending(w, r, rel) {
				return
			}
			w.Header().Set("Retry-After", "60")
			http.Error(w, "no release installed yet", http.StatusServiceUnavailable)
			return
		}
		if root, err = os.OpenRoot(rls.Dir); err == nil {
			break
		}
	}
	if err != nil {
		h.log.Warn("file view: open release", "release", rls.Name, "err", err)
		http.Error(w, "release unavailable", http.StatusServiceUnavailable)
		return
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		// Missing, or a path or symlink that leads out of the release.
		h.log.Debug("file view: not served", "path", rel, "release", rls.Name, "err", err)
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "stat failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("X-Patchmesh-Release", rls.Name)
	if fi.IsDir() {
		h.serveDir(w, r, root, f, rel, upath)
		return
	}
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	etag := fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano())
	if sum, ok := h.digestsOf(rls.Name)[rel]; ok && len(sum) == 64 {
		etag = `"` + sum + `"`
	}
	w.Header().Set("ETag", etag)
	// The same path holds new bytes after a release: clients revalidate,
	// which the ETag makes cheap.
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// servePending serves rel from the release being downloaded, when there is
// one and it has such a file, and reports whether it answered.
func (h *handler) servePending(w http.ResponseWriter, r *http.Request, rel string) bool {
	if h.o.Pending == nil {
		return false
	}
	p, ok := h.o.Pending()
	if !ok {
		return false
	}
	rs, _, sum, ok := p.Open(r.Context(), rel)
	if !ok {
		// Not a file of the release: as the installed release will answer.
		http.NotFound(w, r)
		return true
	}
	w.Header().Set("X-Patchmesh-Release", p.Name())
	w.Header().Set("ETag", `"`+sum+`"`)
	w.Header().Set("Cache-Control", "no-cache")
	// No modification time: the file is not on disk yet; the ETag is the
	// same as the installed file's will be.
	http.ServeContent(w, r, path.Base(rel), time.Time{}, rs)
	return true
}

// serveDir lists a folder, or redirects to its name with a slash so that
// relative links resolve.
func (h *handler) serveDir(w http.ResponseWriter, r *http.Request, root *os.Root, f *os.File, rel, upath string) {
	if !h.o.Index {
		http.NotFound(w, r)
		return
	}
	if !strings.HasSuffix(upath, "/") {
		u := *r.URL
		u.Path = upath + "/"
		http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
		return
	}
	const maxEntries = 100000
	entries, err := f.ReadDir(maxEntries)
	if err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty folder
		http.Error(w, "read folder failed", http.StatusInternalServerError)
		return
	}
	type row struct {
		name string
		dir  bool
		size int64
		mod  time.Time
	}
	var rows []row
	for _, e := range entries {
		p := path.Join(rel, e.Name())
		// Stat through the root: a symlink is listed as what it leads to,
		// and not at all when it leads out of the release.
		fi, err := root.Stat(p)
		if err != nil || (!fi.IsDir() && !fi.Mode().IsRegular()) {
			continue
		}
		rows = append(rows, row{e.Name(), fi.IsDir(), fi.Size(), fi.ModTime()})
	}
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.name, b.name) })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		return
	}
	title := html.EscapeString(upath)
	fmt.Fprintf(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Index of %s</title></head><body>\n<h1>Index of %s</h1>\n<pre>\n", title, title)
	if rel != "." {
		fmt.Fprintln(w, `<a href="../">../</a>`)
	}
	for _, e := range rows {
		name := e.name
		if e.dir {
			name += "/"
		}
		href := (&url.URL{Path: name}).EscapedPath()
		if strings.Contains(name, ":") {
			href = "./" + href // not a scheme
		}
		fmt.Fprintf(w, "<a href=\"%s\">%s</a> %s %d\n", html.EscapeString(href), html.EscapeString(name), e.mod.UTC().Format(time.RFC3339), e.size)
	}
	fmt.Fprintln(w, "</pre></body></html>")
}
