package fileview

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// releases is a fake installer: folders and the current one.
type releases struct {
	mu   sync.Mutex
	root string
	cur  string
}

func (r *releases) current() (Release, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == "" {
		return Release{}, false
	}
	return Release{Name: r.cur, Dir: filepath.Join(r.root, r.cur)}, true
}

func (r *releases) set(name string) { r.mu.Lock(); r.cur = name; r.mu.Unlock() }

func (r *releases) write(t *testing.T, rel, name string, data []byte) {
	t.Helper()
	p := filepath.Join(r.root, rel, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o444); err != nil {
		t.Fatal(err)
	}
}

func setup(t *testing.T, index bool) (*releases, *httptest.Server) {
	t.Helper()
	rs := &releases{root: t.TempDir()}
	srv := httptest.NewServer(NewHandler(Options{Current: rs.current, Index: index,
		Digests: func(name string) map[string]string {
			if name == "v1" {
				return map[string]string{"a/b.txt": strings.Repeat("1", 64)}
			}
			return nil
		}}))
	t.Cleanup(srv.Close)
	return rs, srv
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestServesCurrentRelease(t *testing.T) {
	rs, srv := setup(t, false)
	if resp, _ := get(t, srv.URL+"/a/b.txt"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("no release: %s", resp.Status)
	}
	rs.write(t, "v1", "a/b.txt", []byte("hello world"))
	rs.write(t, "v1", "c.bin", []byte("0123456789"))
	if err := os.Symlink("/etc/passwd", filepath.Join(rs.root, "v1", "out")); err != nil {
		t.Fatal(err)
	}
	rs.set("v1")

	tests := []struct {
		name   string
		path   string
		hdr    []string
		status int
		body   string
	}{
		{"file", "/a/b.txt", nil, 200, "hello world"},
		{"range", "/c.bin", []string{"Range", "bytes=2-5"}, 206, "2345"},
		{"suffix range", "/c.bin", []string{"Range", "bytes=-3"}, 206, "789"},
		{"etag from digest", "/a/b.txt", []string{"If-None-Match", `"` + strings.Repeat("1", 64) + `"`}, 304, ""},
		{"if-modified-since", "/c.bin", []string{"If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT"}, 304, ""},
		{"missing", "/nope", nil, 404, ""},
		{"climb", "/../../etc/passwd", nil, 404, ""},
		{"symlink out", "/out", nil, 404, ""},
		{"no index", "/a/", nil, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, srv.URL+tt.path, tt.hdr...)
			if resp.StatusCode != tt.status || (tt.body != "" && body != tt.body) {
				t.Fatalf("%s: %s %q, want %d %q", tt.path, resp.Status, body, tt.status, tt.body)
			}
		})
	}
	resp, _ := get(t, srv.URL+"/c.bin")
	if resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("headers: %v", resp.Header)
	}
}

func TestSwitchKeepsOpenReaders(t *testing.T) {
	rs, srv := setup(t, false)
	old := bytes.Repeat([]byte("o"), 8<<20)
	rs.write(t, "v1", "big", old)
	rs.write(t, "v2", "big", []byte("new"))
	rs.set("v1")

	resp, err := http.Get(srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	// Switch, and prune the old release while its reader is mid-file.
	rs.set("v2")
	if err := os.RemoveAll(filepath.Join(rs.root, "v1")); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); !bytes.Equal(got, old) {
		t.Fatalf("mid-file reader got %d bytes, not the old file", len(got))
	}
	if _, body := get(t, srv.URL+"/big"); body != "new" {
		t.Fatalf("new request got %q", body)
	}
}

func TestDirectoryIndex(t *testing.T) {
	rs, srv := setup(t, true)
	rs.write(t, "v1", "pattern/p 1.zip", []byte("p"))
	rs.write(t, "v1", "ini.txt", []byte("i"))
	rs.set("v1")
	resp, body := get(t, srv.URL+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, `href="pattern/"`) || !strings.Contains(body, `href="ini.txt"`) {
		t.Fatalf("index: %s\n%s", resp.Status, body)
	}
	_, body = get(t, srv.URL+"/pattern") // redirected to the slash form
	if !strings.Contains(body, `href="p%201.zip"`) || !strings.Contains(body, `href="../"`) {
		t.Fatalf("sub index:\n%s", body)
	}
	if _, body := get(t, srv.URL+"/pattern/p%201.zip"); body != "p" {
		t.Fatalf("escaped name: %q", body)
	}
}
