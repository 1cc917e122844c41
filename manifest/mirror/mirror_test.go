package mirror

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/source/ftptest"
)

func TestParseIndex(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name, data string
		want       []IndexEntry
		bad        bool
	}{
		{name: "sha256sums", data: "# comment\n" + sum + "  a/b.bin\n" + sum + " *c.dat\r\n\n",
			want: []IndexEntry{{"a/b.bin", -1, sum}, {"c.dat", -1, sum}}},
		{name: "json object", data: `{"files":[{"path":"x","size":3,"sha256":"` + sum + `"}]}`,
			want: []IndexEntry{{"x", 3, sum}}},
		{name: "json array without size", data: `[{"path":"./x","sha256":"` + strings.ToUpper(sum) + `"}]`,
			want: []IndexEntry{{"x", -1, sum}}},
		{name: "climbs out", data: sum + "  ../etc/passwd\n", bad: true},
		{name: "absolute", data: sum + "  /etc/passwd\n", bad: true},
		{name: "short digest", data: "abcd  x\n", bad: true},
		{name: "twice", data: sum + "  x\n" + sum + "  x\n", bad: true},
		{name: "empty", data: "\n", bad: true},
		{name: "negative size", data: `[{"path":"x","size":-5,"sha256":"` + sum + `"}]`, bad: true},
		{name: "no separator", data: sum + "\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIndex([]byte(tt.data))
			if tt.bad {
				if !errors.Is(err, ErrBadIndex) {
					t.Fatalf("err = %v, want ErrBadIndex", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// vendor is an upstream update server: files, a sha256sums index, and a log
// of the requests it answered.
type vendor struct {
	t     *testing.T
	dir   string
	srv   *httptest.Server
	mu    sync.Mutex
	gets  map[string]int
	cut   map[string]int64 // path: cut the next full response after this many bytes
	bytes int64
}

func newVendor(t *testing.T) *vendor {
	v := &vendor{t: t, dir: t.TempDir(), gets: map[string]int{}, cut: map[string]int64{}}
	fsrv := http.FileServer(http.Dir(v.dir))
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.mu.Lock()
		v.gets[r.URL.Path+" "+r.Header.Get("Range")]++
		cut, ok := v.cut[r.URL.Path]
		if ok && r.Header.Get("Range") == "" {
			delete(v.cut, r.URL.Path)
		}
		v.mu.Unlock()
		cw := &countingWriter{ResponseWriter: w, v: v, cut: -1}
		if ok && r.Header.Get("Range") == "" {
			cw.cut = cut
		}
		fsrv.ServeHTTP(cw, r)
	}))
	t.Cleanup(v.srv.Close)
	return v
}

type countingWriter struct {
	http.ResponseWriter
	v   *vendor
	n   int64
	cut int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.cut >= 0 && c.n+int64(len(p)) > c.cut {
		p = p[:c.cut-c.n]
		c.ResponseWriter.Write(p)
		c.v.add(int64(len(p)))
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	c.v.add(int64(n))
	return n, err
}

func (v *vendor) add(n int64) { v.mu.Lock(); v.bytes += n; v.mu.Unlock() }

func (v *vendor) write(name string, data []byte) {
	v.t.Helper()
	p := filepath.Join(v.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		v.t.Fatal(err)
	}
}

// index writes SHA256SUMS for every file but itself.
func (v *vendor) index() {
	v.t.Helper()
	var lines []string
	filepath.WalkDir(v.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "SHA256SUMS" {
			return err
		}
		data, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(v.dir, p)
		lines = append(lines, hexSum(data)+"  "+filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(lines)
	v.write("SHA256SUMS", []byte(strings.Join(lines, "\n")+"\n"))
}

// later moves a file's modification time a minute on, as a change after the
// previous run would: Last-Modified has a resolution of a second.
func (v *vendor) later(name string) {
	v.t.Helper()
	at := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(v.dir, filepath.FromSlash(name)), at, at); err != nil {
		v.t.Fatal(err)
	}
}

func (v *vendor) served() int64 { v.mu.Lock(); defer v.mu.Unlock(); return v.bytes }

func (v *vendor) resumed() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for k, c := range v.gets {
		if strings.Contains(k, "bytes=") {
			n += c
		}
	}
	return n
}

func testConfig(t *testing.T, upstream string) Config {
	k, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return Config{
		Upstream: upstream, Work: filepath.Join(dir, "work"), Repo: filepath.Join(dir, "repo"),
		Publish:  repo.PublishOptions{Channel: "av", Keys: []manifest.PrivateKey{k}},
		Attempts: 3,
	}
}

func run(t *testing.T, cfg Config) (*Result, error) {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	return m.Run(context.Background())
}

func mustRun(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func headVersion(t *testing.T, cfg Config) string {
	t.Helper()
	h, _, err := repo.CurrentRelease(cfg.Repo, cfg.Publish.Channel)
	if err != nil {
		return ""
	}
	return h.Version
}

func bigData(seed byte, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed) * 2654435761
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func TestIndexPublishesOnlyOnChange(t *testing.T) {
	v := newVendor(t)
	v.write("bases/daily.cvd", bigData(1, 300<<10))
	v.write("bases/main.cvd", bigData(2, 200<<10))
	v.write("version.txt", []byte("1\n"))
	v.index()
	cfg := testConfig(t, v.srv.URL+"/")
	cfg.Index = "SHA256SUMS"

	r1 := mustRun(t, cfg)
	if !r1.Published || r1.Files != 4 || r1.Downloaded != 4 {
		t.Fatalf("first run: %+v", r1)
	}
	first := headVersion(t, cfg)

	before := v.served()
	r2 := mustRun(t, cfg)
	if r2.Published || r2.Kept != 3 || headVersion(t, cfg) != first {
		t.Fatalf("unchanged run published or refetched: %+v", r2)
	}
	if got := v.served() - before; got > 4<<10 {
		t.Fatalf("unchanged run moved %d bytes, want only the index", got)
	}

	v.write("bases/daily.cvd", bigData(3, 300<<10))
	v.write("version.txt", []byte("2\n"))
	v.index()
	r3 := mustRun(t, cfg)
	if !r3.Published || r3.Kept != 1 || fmt.Sprint(r3.Changed) != "[SHA256SUMS bases/daily.cvd version.txt]" {
		t.Fatalf("changed run: %+v", r3)
	}
	if headVersion(t, cfg) == first {
		t.Fatal("head did not move")
	}
}

func TestTamperedFileRefused(t *testing.T) {
	v := newVendor(t)
	v.write("a.bin", bigData(1, 64<<10))
	v.index()
	cfg := testConfig(t, v.srv.URL)
	cfg.Index = "SHA256SUMS"
	mustRun(t, cfg)
	good := headVersion(t, cfg)

	tests := []struct {
		name   string
		tamper func()
	}{
		{"same size", func() { d := bigData(2, 64<<10); d[100] ^= 1; v.write("a.bin", d) }},
		{"longer", func() { v.write("a.bin", bigData(2, 65<<10)) }},
		{"new file unlisted", func() { v.write("x.bin", []byte("x")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The vendor's index announces a new a.bin; what it serves is tampered.
			v.write("a.bin", bigData(2, 64<<10))
			v.index()
			tt.tamper()
			_, err := run(t, cfg)
			if tt.name == "new file unlisted" {
				// Files the index does not list are not part of the tree.
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v, want ErrRefused", err)
			}
			if headVersion(t, cfg) != good {
				t.Fatal("a refused tree moved the head")
			}
		})
	}
}

func TestValidatorRefuses(t *testing.T) {
	v := newVendor(t)
	v.write("a.bin", []byte("payload"))
	cfg := testConfig(t, v.srv.URL)
	cfg.URLs = []string{v.srv.URL + "/a.bin"}
	cfg.Validate = `grep -q payload a.bin && test "$PATCHMESH_MIRROR_TREE" = "$(pwd)"`
	mustRun(t, cfg)
	good := headVersion(t, cfg)
	v.write("a.bin", []byte("evil"))
	v.later("a.bin")
	_, err := run(t, cfg)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "validator") {
		t.Fatalf("err = %v, want the validator's refusal", err)
	}
	if headVersion(t, cfg) != good {
		t.Fatal("a refused tree moved the head")
	}
	// The previous tree is intact: a fixed upstream compares against it.
	got, err := os.ReadFile(filepath.Join(cfg.Work, "tree", "a.bin"))
	if err != nil || string(got) != "payload" {
		t.Fatalf("previous tree: %q %v", got, err)
	}
}

func TestResumesCutDownload(t *testing.T) {
	v := newVendor(t)
	data := bigData(7, 1<<20)
	v.write("big.bin", data)
	v.index()
	v.cut["/big.bin"] = 600 << 10
	cfg := testConfig(t, v.srv.URL)
	cfg.Index = "SHA256SUMS"
	r := mustRun(t, cfg)
	if !r.Published || r.ResumedBytes == 0 || v.resumed() == 0 {
		t.Fatalf("no resume: %+v, range requests %d", r, v.resumed())
	}
	if s := v.served(); s > int64(len(data))+8<<10 {
		t.Fatalf("served %d bytes for a %d-byte file: the cut part was fetched again", s, len(data))
	}
}

func TestCrawlAndConditionalGet(t *testing.T) {
	v := newVendor(t)
	v.write("pattern/p1.zip", bigData(1, 10<<10))
	v.write("pattern/sub/p2.zip", bigData(2, 10<<10))
	v.write("ini.txt", []byte("[update]\n"))
	cfg := testConfig(t, v.srv.URL+"/")
	r := mustRun(t, cfg)
	if !r.Published || r.Files != 3 {
		t.Fatalf("crawl: %+v", r)
	}
	r = mustRun(t, cfg)
	if r.Published || r.Kept != 3 {
		t.Fatalf("second crawl: %+v", r)
	}
	v.write("pattern/p3.zip", []byte("new"))
	v.write("ini.txt", []byte("[update]\nv=2\n"))
	v.later("ini.txt")
	r = mustRun(t, cfg)
	if !r.Published || fmt.Sprint(r.Added) != "[pattern/p3.zip]" || fmt.Sprint(r.Changed) != "[ini.txt]" || r.Kept != 2 {
		t.Fatalf("third crawl: %+v", r)
	}
}

func TestFolderUpstream(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("one"), 0o644)
	cfg := testConfig(t, src)
	if r := mustRun(t, cfg); !r.Published {
		t.Fatalf("%+v", r)
	}
	if r := mustRun(t, cfg); r.Published {
		t.Fatalf("unchanged folder published: %+v", r)
	}
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("two"), 0o644)
	if r := mustRun(t, cfg); !r.Published {
		t.Fatalf("%+v", r)
	}
}

func TestUpstreamErrors(t *testing.T) {
	v := newVendor(t)
	v.write("a", []byte("a"))
	cfg := testConfig(t, v.srv.URL)
	cfg.Index = "MISSING"
	if _, err := run(t, cfg); err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Fatalf("err = %v", err)
	}
	cfg.Index = "../x"
	if _, err := New(cfg); err == nil {
		t.Fatal("index climbing out accepted")
	}
	if _, err := New(Config{Upstream: "gopher://x", Work: "w", Repo: "r", Publish: cfg.Publish}); err == nil {
		t.Fatal("gopher accepted")
	}
}

func TestUnchangedRunRenewsAgingHead(t *testing.T) {
	v := newVendor(t)
	v.write("a", []byte("a"))
	v.index()
	cfg := testConfig(t, v.srv.URL)
	cfg.Index = "SHA256SUMS"
	mustRun(t, cfg)
	if r := mustRun(t, cfg); r.Renewed {
		t.Fatal("a fresh head was renewed")
	}
	h0, _, _ := repo.CurrentRelease(cfg.Repo, "av")
	cfg.Now = func() time.Time { return time.Now().Add(5 * 24 * time.Hour) }
	if r := mustRun(t, cfg); !r.Renewed || r.Published {
		t.Fatalf("aging head: %+v", r)
	}
	h1, _, _ := repo.CurrentRelease(cfg.Repo, "av")
	if !h1.Expires.After(h0.Expires) || h1.Sequence != h0.Sequence {
		t.Fatalf("head %+v, was %+v", h1, h0)
	}
}

func TestThroughProxy(t *testing.T) {
	v := newVendor(t)
	v.write("a.bin", bigData(4, 32<<10))
	v.index()
	var mu sync.Mutex
	proxied := 0
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy gets absolute URLs.
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		proxied++
		mu.Unlock()
		r.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	cfg := testConfig(t, v.srv.URL)
	cfg.Index = "SHA256SUMS"
	cfg.Proxy = proxy.URL
	if r := mustRun(t, cfg); !r.Published {
		t.Fatalf("%+v", r)
	}
	if proxied < 2 {
		t.Fatalf("%d requests went through the proxy, want the index and the file", proxied)
	}
}

func TestStalledDownloadFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // stall until the client gives up
	}))
	defer srv.Close()
	cfg := testConfig(t, srv.URL)
	cfg.URLs = []string{srv.URL + "/big"}
	cfg.IdleTimeout = 200 * time.Millisecond
	cfg.Attempts = 2
	_, err := run(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("err = %v, want a stall", err)
	}
	if _, _, err := repo.CurrentRelease(cfg.Repo, "av"); err == nil {
		t.Fatal("a failed run published")
	}
}

// TestFTPUpstream: a vendor tree on a real FTP server (goftp on loopback) with
// a sha256sums index is published, an unchanged run publishes nothing, and a
// file that does not match its new index entry is refused.
func TestFTPUpstream(t *testing.T) {
	src := t.TempDir()
	files := map[string][]byte{"bases/daily.cvd": []byte(strings.Repeat("daily ", 4000)), "update.ini": []byte("[update]\nversion=1\n")}
	writeTree := func() {
		var sums strings.Builder
		for _, p := range []string{"bases/daily.cvd", "update.ini"} {
			b := files[p]
			if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, p), b, 0o644); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(b), p)
		}
		if err := os.WriteFile(filepath.Join(src, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeTree()
	addr := ftptest.Start(t, src, "vendor", "secret")
	cfg := testConfig(t, "ftp://vendor:secret@"+addr+"/")
	cfg.Index = "SHA256SUMS"
	if r := mustRun(t, cfg); !r.Published {
		t.Fatalf("first FTP run: %+v", r)
	}
	if r := mustRun(t, cfg); r.Published {
		t.Fatalf("unchanged FTP tree published again: %+v", r)
	}
	v1 := headVersion(t, cfg)
	// The index announces version 2, the server sends other bytes.
	files["update.ini"] = []byte("[update]\nversion=2\n")
	writeTree()
	if err := os.WriteFile(filepath.Join(src, "update.ini"), []byte("[update]\nversion=evil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, cfg); err == nil {
		t.Fatal("a file not matching the index was published")
	}
	if got := headVersion(t, cfg); got != v1 {
		t.Fatalf("head moved to %s after a refused run", got)
	}
	files["update.ini"] = []byte("[update]\nversion=2\n")
	writeTree()
	if r := mustRun(t, cfg); !r.Published || fmt.Sprint(r.Changed) != "[SHA256SUMS update.ini]" {
		t.Fatalf("changed FTP tree: %+v", r)
	}
}
