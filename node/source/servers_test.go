package source

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ftpserver "goftp.io/server/v2"
	ftpfile "goftp.io/server/v2/driver/file"

	"github.com/patchmesh/patchmesh/node/source/ftptest"
)

// testOptions keeps fault tests short: a stall or a dead server is noticed in
// a fraction of a second.
func testOptions() Options {
	o := DefaultOptions()
	o.Timeout = 5 * time.Second
	o.IdleTimeout = 5 * time.Second
	return o
}

func mustNew(t testing.TB, rawURL string, opts Options) Source {
	t.Helper()
	s, err := New(rawURL, opts)
	if err != nil {
		t.Fatalf("New(%q): %v", rawURL, err)
	}
	if c, ok := s.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	return s
}

// serveDir serves dir over HTTP on loopback.
func serveDir(t testing.TB, dir string) *httptest.Server {
	srv := httptest.NewServer(http.FileServerFS(os.DirFS(dir)))
	t.Cleanup(srv.Close)
	return srv
}

// writeCA writes the test server's certificate as a PEM file for Options.CAFile.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ftpServer is a real FTP server on 127.0.0.1 serving a folder.
type ftpServer struct {
	addr   string
	logins atomic.Int32 // successful logins
	conns  atomic.Int32 // open control connections
}

type countingAuth struct {
	user, pass string
	srv        *ftpServer
}

func (a *countingAuth) CheckPasswd(_ *ftpserver.Context, user, pass string) (bool, error) {
	ok := user == a.user && pass == a.pass
	if ok {
		a.srv.logins.Add(1)
	}
	return ok, nil
}

// countingListener tracks the open control connections.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.n.Add(1)
	return &countedConn{Conn: c, n: l.n}, nil
}

type countedConn struct {
	net.Conn
	n    *atomic.Int32
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.n.Add(-1) })
	return c.Conn.Close()
}

// serveFTP starts an FTP server on 127.0.0.1 for dir accepting user/pass.
// wrap, if not nil, wraps the file driver (to inject faults).
func serveFTP(t testing.TB, dir, user, pass string, wrap func(ftpserver.Driver) ftpserver.Driver) *ftpServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFTPOn(t, l, dir, user, pass, wrap)
}

func serveFTPOn(t testing.TB, l net.Listener, dir, user, pass string, wrap func(ftpserver.Driver) ftpserver.Driver) *ftpServer {
	t.Helper()
	fs := &ftpServer{}
	drv, err := ftpfile.NewDriver(dir)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		drv = wrap(drv)
	}
	cmds := ftptest.Commands(dir)
	srv, err := ftpserver.NewServer(&ftpserver.Options{
		Driver:   drv,
		Auth:     &countingAuth{user: user, pass: pass, srv: fs},
		Perm:     ftpserver.NewSimplePerm("test", "test"),
		Hostname: l.Addr().(*net.TCPAddr).IP.String(),
		Port:     l.Addr().(*net.TCPAddr).Port,
		Logger:   &ftpserver.DiscardLogger{},
		Commands: cmds,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(countingListener{Listener: l, n: &fs.conns})
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	fs.addr = l.Addr().String()
	return fs
}

func TestHTTPSource(t *testing.T) {
	runSourceSuite(t, func(t *testing.T, dir string) Source {
		return mustNew(t, serveDir(t, dir).URL, testOptions())
	})
}

func TestHTTPSSource(t *testing.T) {
	runSourceSuite(t, func(t *testing.T, dir string) Source {
		srv := httptest.NewTLSServer(http.FileServerFS(os.DirFS(dir)))
		t.Cleanup(srv.Close)
		opts := testOptions()
		opts.CAFile = writeCA(t, srv)
		return mustNew(t, srv.URL, opts)
	})
}

func TestHTTPSUnknownCAFails(t *testing.T) {
	dir, _ := testRepo(t)
	srv := httptest.NewTLSServer(http.FileServerFS(os.DirFS(dir)))
	t.Cleanup(srv.Close)
	src := mustNew(t, srv.URL, testOptions())
	_, err := readFile(t.Context(), src, "roots/1.json", 1<<10)
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("https with a certificate no root vouches for: got %v, want a certificate error", err)
	}
}

func TestFTPSource(t *testing.T) {
	runSourceSuite(t, func(t *testing.T, dir string) Source {
		fs := serveFTP(t, dir, "mirror", "s3cret", nil)
		return mustNew(t, "ftp://mirror:s3cret@"+fs.addr, testOptions())
	})
}

func TestFTPSourceBasePath(t *testing.T) {
	dir, files := testRepo(t)
	// The repository lives in a subfolder of the FTP root, reached anonymously.
	root := filepath.Dir(dir)
	fs := serveFTP(t, root, "anonymous", "anonymous", nil)
	src := mustNew(t, "ftp://"+fs.addr+"/repo/", testOptions())
	got, err := readFile(t.Context(), src, "roots/1.json", 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(files["roots/1.json"]) {
		t.Fatalf("got %q", got)
	}
	if _, err := readFile(t.Context(), src, "outside.txt", 1<<10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a file beside the base path: got %v, want ErrNotFound", err)
	}
}

func TestFolderSource(t *testing.T) {
	t.Run("file URL", func(t *testing.T) {
		runSourceSuite(t, func(t *testing.T, dir string) Source {
			return mustNew(t, "file://"+filepath.ToSlash(dir), testOptions())
		})
	})
	t.Run("plain path", func(t *testing.T) {
		runSourceSuite(t, func(t *testing.T, dir string) Source {
			return mustNew(t, dir, testOptions())
		})
	})
}

func TestFolderSymlinks(t *testing.T) {
	dir, files := testRepo(t)
	for link, target := range map[string]string{
		"chunks/af/inside":  "../../roots/1.json",
		"chunks/af/outside": "../../../outside.txt",
		"chunks/af/abs":     filepath.Join(filepath.Dir(dir), "outside.txt"),
	} {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(link))); err != nil {
			t.Skipf("no symlinks here: %v", err)
		}
	}
	src := mustNew(t, dir, testOptions())
	got, err := readFile(t.Context(), src, "chunks/af/inside", 1<<10)
	if err != nil || !bytes.Equal(got, files["roots/1.json"]) {
		t.Errorf("symlink inside the repository: %q, %v", got, err)
	}
	for _, p := range []string{"chunks/af/outside", "chunks/af/abs"} {
		got, err := readFile(t.Context(), src, p, 1<<10)
		if err == nil || errors.Is(err, ErrNotFound) || len(got) > 0 {
			t.Errorf("symlink out of the repository %s: got %q, %v; want a refusal", p, got, err)
		}
	}
}

func TestFolderMissingIsFailureNotNotFound(t *testing.T) {
	// An unmounted share: the folder itself is gone. That is a failure to
	// move past, not an answer that the file does not exist.
	src := mustNew(t, filepath.Join(t.TempDir(), "not-mounted"), testOptions())
	_, err := readFile(t.Context(), src, "roots/1.json", 1<<10)
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("missing source folder: got %v, want a failure", err)
	}
}
