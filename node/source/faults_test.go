package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ftpserver "goftp.io/server/v2"
)

// hangGuard bounds a test that would otherwise hang if a bound failed; it is
// not a speed assertion.
const hangGuard = 20 * time.Second

// faultServer starts an HTTP server on loopback whose handlers may block
// until release is closed, which happens when the test ends.
func faultServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, release <-chan struct{})) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r, release)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets blocked handlers return
	return srv
}

func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/repo"
}

func TestHTTPEndlessBodyIsTooLarge(t *testing.T) {
	var written atomic.Int64
	finished := make(chan struct{})
	srv := faultServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		defer close(finished)
		buf := bytes.Repeat([]byte("x"), 32<<10)
		for {
			n, err := w.Write(buf)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	const max = 1 << 20
	src := mustNew(t, srv.URL, testOptions())
	rc, err := src.Open(t.Context(), "chunks/ab/endless", max)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless body: got %v after %d bytes, want ErrTooLarge", err, n)
	}
	if n != max {
		t.Errorf("endless body: reader gave %d bytes, want exactly the bound %d", n, max)
	}
	select {
	case <-finished:
	case <-time.After(hangGuard):
		t.Fatal("the server is still sending: the client kept the connection open")
	}
	// Socket buffers hold a few MiB; the client stopped at max+1.
	if w := written.Load(); w > max+32<<20 {
		t.Errorf("server sent %d bytes before the client hung up", w)
	}
}

func TestHTTPStalls(t *testing.T) {
	tests := []struct {
		name    string
		max     int64
		opts    func(*Options)
		handler func(w http.ResponseWriter, release <-chan struct{})
		want    error
		wantN   int64
	}{
		{
			name: "after headers",
			max:  4 << 20,
			handler: func(w http.ResponseWriter, release <-chan struct{}) {
				w.Header().Set("Content-Length", strconv.Itoa(2<<20))
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				<-release
			},
			want: ErrStalled,
		},
		{
			name: "mid body",
			max:  4 << 20,
			handler: func(w http.ResponseWriter, release <-chan struct{}) {
				w.Header().Set("Content-Length", strconv.Itoa(2<<20))
				w.Write(make([]byte, 64<<10))
				w.(http.Flusher).Flush()
				<-release
			},
			want:  ErrStalled,
			wantN: 64 << 10,
		},
		{
			// A small file that trickles in never stalls, but the whole
			// request is bounded by Timeout.
			name: "small file trickling",
			max:  1 << 10,
			opts: func(o *Options) { o.Timeout = 300 * time.Millisecond; o.IdleTimeout = hangGuard },
			handler: func(w http.ResponseWriter, release <-chan struct{}) {
				for {
					w.Write([]byte("x"))
					w.(http.Flusher).Flush()
					select {
					case <-release:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			},
			want: errTimeout,
		},
		{
			name: "before headers",
			max:  4 << 20,
			opts: func(o *Options) { o.Timeout = 300 * time.Millisecond },
			handler: func(w http.ResponseWriter, release <-chan struct{}) {
				<-release
			},
			want: errTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := faultServer(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
				tt.handler(w, release)
			})
			opts := testOptions()
			opts.IdleTimeout = 200 * time.Millisecond
			if tt.opts != nil {
				tt.opts(&opts)
			}
			src := mustNew(t, srv.URL, opts)
			ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
			defer cancel()
			var n int64
			rc, err := src.Open(ctx, "chunks/ab/slow", tt.max)
			if err == nil {
				n, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if n != tt.wantN && tt.wantN != 0 {
				t.Errorf("got %d bytes before the stall, want %d", n, tt.wantN)
			}
		})
	}
}

// stallDriver serves the first 64 KiB of a file, then stops sending until
// the test ends.
type stallDriver struct {
	ftpserver.Driver
	release <-chan struct{}
}

func (d stallDriver) GetFile(ctx *ftpserver.Context, path string, offset int64) (int64, io.ReadCloser, error) {
	size, rc, err := d.Driver.GetFile(ctx, path, offset)
	if err != nil || !strings.Contains(path, "big") {
		return size, rc, err
	}
	return size, &stallReader{rc: rc, left: 64 << 10, release: d.release}, nil
}

type stallReader struct {
	rc      io.ReadCloser
	left    int
	release <-chan struct{}
}

func (r *stallReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		<-r.release
		return 0, io.ErrUnexpectedEOF
	}
	n, err := r.rc.Read(p[:min(len(p), r.left)])
	r.left -= n
	return n, err
}

func (r *stallReader) Close() error { return r.rc.Close() }

func TestFTPStallMidBody(t *testing.T) {
	dir, files := testRepo(t)
	release := make(chan struct{})
	fs := serveFTP(t, dir, "anonymous", "anonymous", func(d ftpserver.Driver) ftpserver.Driver {
		return stallDriver{Driver: d, release: release}
	})
	t.Cleanup(func() { close(release) }) // before the server's cleanup
	opts := testOptions()
	opts.IdleTimeout = 200 * time.Millisecond
	src := mustNew(t, "ftp://"+fs.addr, opts)
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()

	// More stalls than pooled connections: each must give its slot back.
	for range ftpMaxConns + 1 {
		got, err := readFile(ctx, src, bigPath, 4<<20)
		if !errors.Is(err, ErrStalled) {
			t.Fatalf("stalled FTP transfer: got %v, want ErrStalled", err)
		}
		if len(got) != 64<<10 {
			t.Errorf("got %d bytes before the stall, want %d", len(got), 64<<10)
		}
	}
	got, err := readFile(ctx, src, "roots/1.json", 1<<10)
	if err != nil || !bytes.Equal(got, files["roots/1.json"]) {
		t.Fatalf("read after stalls: %q, %v", got, err)
	}
}

func TestFTPConnectionPool(t *testing.T) {
	dir, files := testRepo(t)
	fs := serveFTP(t, dir, "anonymous", "anonymous", nil)
	src, err := New("ftp://"+fs.addr, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	for range 10 {
		if _, err := readFile(ctx, src, "roots/1.json", 1<<10); err != nil {
			t.Fatal(err)
		}
	}
	if n := fs.logins.Load(); n != 1 {
		t.Errorf("10 sequential reads logged in %d times, want 1 (connection reuse)", n)
	}

	// A reader closed early must not poison the pool.
	rc, err := src.Open(ctx, bigPath, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	rc.Close()

	done := make(chan error, 12)
	for range 12 {
		go func() {
			got, err := readFile(ctx, src, bigPath, 4<<20)
			if err == nil && !bytes.Equal(got, files[bigPath]) {
				err = errors.New("wrong bytes")
			}
			done <- err
		}()
	}
	for range 12 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := fs.conns.Load(); n > ftpMaxConns {
		t.Errorf("%d control connections open to the server, want at most %d", n, ftpMaxConns)
	}

	if err := src.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(hangGuard)
	for fs.conns.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d control connections still open after Close", fs.conns.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := src.Open(ctx, "roots/1.json", 1<<10); err == nil {
		t.Error("Open after Close succeeded")
	}
}

func TestFTPLoginRefused(t *testing.T) {
	dir, _ := testRepo(t)
	fs := serveFTP(t, dir, "mirror", "right", nil)
	src := mustNew(t, "ftp://mirror:wrong@"+fs.addr, testOptions())
	_, err := readFile(t.Context(), src, "roots/1.json", 1<<10)
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "login") {
		t.Fatalf("wrong password: got %v, want a login failure", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// forwardProxy is an HTTP forward proxy that counts the requests it relays.
func forwardProxy(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		n.Add(1)
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestHTTPThroughProxy(t *testing.T) {
	dir, files := testRepo(t)
	var agent atomic.Value
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent.Store(r.UserAgent())
		http.FileServerFS(os.DirFS(dir)).ServeHTTP(w, r)
	}))
	t.Cleanup(origin.Close)
	proxy, relayed := forwardProxy(t)

	opts := testOptions()
	opts.Proxy = proxy.URL
	opts.UserAgent = "patchmesh-test/1"
	src := mustNew(t, origin.URL, opts)
	for _, p := range []string{"channels/stable/head.json", bigPath} {
		got, err := readFile(t.Context(), src, p, 4<<20)
		if err != nil || !bytes.Equal(got, files[p]) {
			t.Fatalf("read %s through the proxy: %d bytes, %v", p, len(got), err)
		}
	}
	if _, err := readFile(t.Context(), src, "chunks/zz/none", 1<<10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file through the proxy: got %v, want ErrNotFound", err)
	}
	if n := relayed.Load(); n != 3 {
		t.Errorf("proxy relayed %d requests, want 3", n)
	}
	if a, _ := agent.Load().(string); a != "patchmesh-test/1" {
		t.Errorf("origin saw User-Agent %q", a)
	}
}

func TestIPv6Loopback(t *testing.T) {
	listen := func(t *testing.T) net.Listener {
		l, err := net.Listen("tcp", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback on this machine (listen [::1]:0: %v)", err)
		}
		return l
	}
	dir, files := testRepo(t)
	tests := []struct {
		name  string
		serve func(t *testing.T) string // the source URL
	}{
		{"http", func(t *testing.T) string {
			srv := httptest.NewUnstartedServer(http.FileServerFS(os.DirFS(dir)))
			srv.Listener.Close()
			srv.Listener = listen(t)
			srv.Start()
			t.Cleanup(srv.Close)
			return srv.URL + "/"
		}},
		{"ftp", func(t *testing.T) string {
			fs := serveFTPOn(t, listen(t), dir, "anonymous", "anonymous", nil)
			return "ftp://" + fs.addr
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rawURL := tt.serve(t)
			if !strings.Contains(rawURL, "://[::1]:") {
				t.Fatalf("server URL %s is not on ::1", rawURL)
			}
			src := mustNew(t, rawURL, testOptions())
			for _, p := range []string{"roots/1.json", bigPath} {
				got, err := readFile(t.Context(), src, p, 4<<20)
				if err != nil || !bytes.Equal(got, files[p]) {
					t.Fatalf("read %s over IPv6: %d bytes, %v", p, len(got), err)
				}
			}
			u, _ := url.Parse(src.String())
			if u.Hostname() != "::1" {
				t.Errorf("String() = %s", src)
			}
		})
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		url     string
		want    string // String(); empty: New must fail
		noMatch string // must not appear in String()
	}{
		{url: "http://127.0.0.1:8080/repo/", want: "http://127.0.0.1:8080/repo"},
		{url: "https://user:hunter2@mirror.example/r", want: "https://user:xxxxx@mirror.example/r", noMatch: "hunter2"},
		{url: "ftp://upd:pa%40ss@127.0.0.1/pub/av", want: "ftp://upd:xxxxx@127.0.0.1/pub/av", noMatch: "pa@ss"},
		{url: "ftp://[::1]:2121", want: "ftp://[::1]:2121"},
		{url: "http://[::1]:8080/", want: "http://[::1]:8080"},
		{url: "file://" + dir, want: "file://" + dir},
		{url: "file://localhost" + dir, want: "file://" + dir},
		{url: dir + "/", want: "file://" + dir},
		{url: "relative/dir"},
		{url: "gopher://127.0.0.1/"},
		{url: "file://fileserver/share"},
		{url: "file:relative"},
		{url: "http:///nohost"},
		{url: "ftp://"},
		{url: ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			src, err := New(tt.url, Options{})
			if tt.want == "" {
				if err == nil {
					t.Fatalf("New(%q) = %s, want an error", tt.url, src)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.url, err)
			}
			if got := src.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if tt.noMatch != "" && strings.Contains(src.String(), tt.noMatch) {
				t.Errorf("String() shows the password: %s", src)
			}
		})
	}
	if _, err := New("http://127.0.0.1/", Options{Proxy: "::not a url"}); err == nil {
		t.Error("a malformed proxy URL was accepted")
	}
	if _, err := New("https://127.0.0.1/", Options{CAFile: dir + "/missing.pem"}); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
