package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Crawl bounds: an index page's size, the pages of one crawl and its depth.
const (
	maxPageSize = 4 << 20
	maxPages    = 10000
	maxDepth    = 32
)

// list returns the files of the upstream tree, sorted by path.
func (m *Mirror) list(ctx context.Context) ([]item, error) {
	var items []item
	var err error
	switch {
	case m.cfg.Index != "":
		items, err = m.listIndex(ctx)
	case len(m.cfg.URLs) > 0:
		items, err = m.listURLs()
	case m.base != nil:
		items, err = m.crawl(ctx)
	case m.dir != "":
		items, err = m.walk()
	default:
		err = errors.New("no way to list the upstream: give an index")
	}
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("list %s: %w: no file found", m.upstreamName(), ErrRefused)
	}
	if len(items) > m.cfg.MaxFiles {
		return nil, fmt.Errorf("list %s: %d files, over the bound of %d", m.upstreamName(), len(items), m.cfg.MaxFiles)
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.path, b.path) })
	for i := 1; i < len(items); i++ {
		if items[i].path == items[i-1].path {
			return nil, fmt.Errorf("list %s: %s appears twice", m.upstreamName(), items[i].path)
		}
	}
	return items, nil
}

func (m *Mirror) upstreamName() string {
	if m.base != nil {
		return m.base.Redacted()
	}
	if m.src != nil {
		return m.src.String()
	}
	return m.cfg.Upstream
}

// listIndex reads the vendor's index: it names the files and their digests.
func (m *Mirror) listIndex(ctx context.Context) ([]item, error) {
	data, err := m.readSmall(ctx, m.cfg.Index, maxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", m.cfg.Index, err)
	}
	entries, err := ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w: %w", m.cfg.Index, ErrRefused, err)
	}
	// Index paths are relative to the index's folder.
	dir := path.Dir(m.cfg.Index)
	items := []item{{path: m.cfg.Index, size: int64(len(data)), data: data}}
	for _, e := range entries {
		p := e.Path
		if dir != "." {
			p = dir + "/" + p
		}
		if p == m.cfg.Index {
			return nil, fmt.Errorf("read index %s: %w: it lists itself", m.cfg.Index, ErrRefused)
		}
		it := item{path: p, size: e.Size, sha256: e.SHA256}
		if m.base != nil {
			it.url = m.base.ResolveReference(&url.URL{Path: p}).String()
		}
		items = append(items, it)
	}
	return items, nil
}

// readSmall reads a bounded file of the upstream whole.
func (m *Mirror) readSmall(ctx context.Context, p string, max int64) ([]byte, error) {
	if m.base == nil {
		if m.src == nil {
			return nil, errors.New("no upstream")
		}
		rc, err := m.src.Open(ctx, p, max)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	u := m.base.ResolveReference(&url.URL{Path: p}).String()
	return m.getPage(ctx, u, max)
}

// getPage GETs a small document (an index, a listing page) with a deadline.
func (m *Mirror) getPage(ctx context.Context, u string, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout+m.cfg.IdleTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: server answered %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", u, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("get %s: larger than %d bytes", u, max)
	}
	return data, nil
}

// listURLs names each listed URL's file by its place under the upstream.
func (m *Mirror) listURLs() ([]item, error) {
	var items []item
	for _, raw := range m.cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("URL list: %q is not an http(s) URL", raw)
		}
		p := path.Base(u.Path)
		if m.base != nil && u.Host == m.base.Host && strings.HasPrefix(u.Path, m.base.Path) {
			p = strings.TrimPrefix(u.Path, m.base.Path)
		}
		if err := checkPath(p); err != nil {
			return nil, fmt.Errorf("URL list: %s: %w", u.Redacted(), err)
		}
		items = append(items, item{path: p, url: u.String(), size: -1})
	}
	return items, nil
}

// hrefRE finds links in the HTML listings web servers write; a full HTML
// parser buys nothing for those.
var hrefRE = regexp.MustCompile(`(?i)<a\s[^>]*href\s*=\s*["']([^"'#?]+)["']`)

// crawl follows an HTTP index page's links below the upstream URL: links that
// end in "/" are folders, listed in turn, the others files.
func (m *Mirror) crawl(ctx context.Context) ([]item, error) {
	type page struct {
		u     *url.URL
		depth int
	}
	queue := []page{{m.base, 0}}
	seen := map[string]bool{m.base.Path: true}
	var items []item
	for pages := 0; len(queue) > 0; pages++ {
		if pages >= maxPages {
			return nil, fmt.Errorf("crawl %s: more than %d pages", m.base.Redacted(), maxPages)
		}
		pg := queue[0]
		queue = queue[1:]
		data, err := m.getPage(ctx, pg.u.String(), maxPageSize)
		if err != nil {
			return nil, fmt.Errorf("crawl: %w", err)
		}
		for _, match := range hrefRE.FindAllSubmatch(data, -1) {
			ref, err := url.Parse(strings.TrimSpace(string(match[1])))
			if err != nil {
				continue
			}
			u := pg.u.ResolveReference(ref)
			u.RawQuery, u.Fragment = "", ""
			// Only what lies below the upstream, on the same server:
			// listings link their parent and sort orders too.
			if u.Scheme != m.base.Scheme || u.Host != m.base.Host || !strings.HasPrefix(u.Path, m.base.Path) || seen[u.Path] {
				continue
			}
			seen[u.Path] = true
			rel := strings.TrimPrefix(u.Path, m.base.Path)
			if strings.HasSuffix(u.Path, "/") {
				if pg.depth+1 > maxDepth {
					return nil, fmt.Errorf("crawl %s: folders nested deeper than %d", m.base.Redacted(), maxDepth)
				}
				queue = append(queue, page{u, pg.depth + 1})
				continue
			}
			if err := checkPath(rel); err != nil {
				m.log.Debug("mirror: skip link", "url", u.Redacted(), "err", err)
				continue
			}
			items = append(items, item{path: rel, url: u.String(), size: -1})
			if len(items) > m.cfg.MaxFiles {
				return nil, fmt.Errorf("crawl %s: more than %d files", m.base.Redacted(), m.cfg.MaxFiles)
			}
		}
	}
	return items, nil
}

// walk lists a folder upstream's regular files; symlinks are not followed.
func (m *Mirror) walk() ([]item, error) {
	var items []item
	err := filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(m.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := checkPath(rel); err != nil {
			return err
		}
		items = append(items, item{path: rel, size: -1})
		if len(items) > m.cfg.MaxFiles {
			return fmt.Errorf("more than %d files", m.cfg.MaxFiles)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", m.dir, err)
	}
	return items, nil
}

// exists reports whether name is a regular file.
func exists(name string) bool {
	fi, err := os.Lstat(name)
	return err == nil && fi.Mode().IsRegular()
}
