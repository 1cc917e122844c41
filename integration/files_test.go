package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// vendorServer is a vendor's update server on loopback: a folder served as
// a web server serves it (Range, Last-Modified, folder listings), with a
// count of the bytes of every path it sent.
type vendorServer struct {
	t    *testing.T
	Dir  string
	URL  string
	mu   sync.Mutex
	sent map[string]int64
}

func newVendorServer(t *testing.T) *vendorServer {
	t.Helper()
	v := &vendorServer{t: t, Dir: t.TempDir(), sent: map[string]int64{}}
	fs := http.FileServer(http.Dir(v.Dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &sentCounter{ResponseWriter: w}
		fs.ServeHTTP(cw, r)
		v.mu.Lock()
		v.sent[r.URL.Path] += cw.n
		v.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	v.URL = srv.URL
	return v
}

type sentCounter struct {
	http.ResponseWriter
	n int64
}

func (c *sentCounter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// Sent is what the server sent for path.
func (v *vendorServer) Sent(path string) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.sent[path]
}

func (v *vendorServer) write(name string, data []byte) {
	v.t.Helper()
	p := filepath.Join(v.Dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		v.t.Fatal(err)
	}
}

// index writes the vendor's SHA256SUMS over every other file.
func (v *vendorServer) index() {
	v.t.Helper()
	var lines []string
	err := filepath.WalkDir(v.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "SHA256SUMS" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		rel, _ := filepath.Rel(v.Dir, p)
		lines = append(lines, hex.EncodeToString(sum[:])+"  "+filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		v.t.Fatal(err)
	}
	sort.Strings(lines)
	v.write("SHA256SUMS", []byte(strings.Join(lines, "\n")+"\n"))
}

// vendorTree writes an antivirus-like update tree: bases, a module, an ini.
func vendorTree(v *vendorServer, gen int) {
	v.t.Helper()
	big := make([]byte, 3<<20)
	x := uint32(12345)
	for i := range big {
		x = x*1664525 + 1013904223
		big[i] = byte(x >> 24)
	}
	copy(big[1<<20:], fmt.Sprintf("generation %d", gen)) // a change in the middle of a large file
	v.write("bases/daily.cvd", big)
	v.write("bases/main.cvd", bytes.Repeat([]byte("main signature base\n"), 20000))
	v.write("modules/engine/engine.dll", bytes.Repeat([]byte{0x4d, 0x5a, 0x90, 0}, 50000))
	v.write("update.ini", []byte(fmt.Sprintf("[update]\ngeneration=%d\n", gen)))
	v.index()
}

type mirrorRun struct {
	Published bool     `json:"published"`
	Version   string   `json:"version"`
	Files     int      `json:"files"`
	Kept      int      `json:"kept"`
	Changed   []string `json:"changed"`
}

func runMirror(t *testing.T, pub *publisher, work string, args ...string) (result, mirrorRun) {
	t.Helper()
	all := append([]string{"mirror", "--repo", pub.Repo, "--key", pub.Key, "--work", work, "--channel", "stable", "--json"}, args...)
	r := pm(t, all...)
	var mr mirrorRun
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &mr); err != nil {
			t.Fatalf("mirror output: %v\n%s", err, r.stdout)
		}
	}
	return r, mr
}

func readHead(t *testing.T, repoDir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoDir, "channels", "stable", "head.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMirrorPublishesVendorTree: `patchmesh mirror` publishes a vendor's tree
// from its HTTP server, checked against the vendor's SHA256SUMS; runs again
// without publishing (or downloading) while nothing changed; republishes after
// a change, downloading the changed files only; refuses a tampered file and a
// tree its validator rejects, leaving the repository as it was.
func TestMirrorPublishesVendorTree(t *testing.T) {
	v := newVendorServer(t)
	vendorTree(v, 1)
	pub := newPublisher(t)
	work := filepath.Join(t.TempDir(), "work")
	validator := `grep -q '^\[update\]' update.ini`
	mirror := func(extra ...string) (result, mirrorRun) {
		return runMirror(t, pub, work, append([]string{"--index", "SHA256SUMS", "--validate", validator, v.URL + "/"}, extra...)...)
	}

	r, m1 := mirror()
	if r.code != 0 || !m1.Published || m1.Files != 5 {
		t.Fatalf("first mirror: exit %d %+v\n%s", r.code, m1, r.stderr)
	}
	verify := mustPM(t, "verify", "--repo", pub.Repo, "--trust", pub.Trust)
	if !strings.Contains(verify.stdout+verify.stderr, "stable") {
		t.Logf("verify: %s", verify.stdout)
	}
	head1 := readHead(t, pub.Repo)
	dailyBefore := v.Sent("/bases/daily.cvd")

	r, m2 := mirror()
	if r.code != 0 || m2.Published || m2.Version != m1.Version || m2.Kept != 4 {
		t.Fatalf("unchanged mirror: exit %d %+v\n%s", r.code, m2, r.stderr)
	}
	if !bytes.Equal(readHead(t, pub.Repo), head1) {
		t.Fatal("an unchanged upstream moved the head")
	}
	if v.Sent("/bases/daily.cvd") != dailyBefore {
		t.Fatal("an unchanged file was downloaded again")
	}

	vendorTree(v, 2)
	r, m3 := mirror()
	if r.code != 0 || !m3.Published || m3.Version == m1.Version {
		t.Fatalf("changed mirror: exit %d %+v\n%s", r.code, m3, r.stderr)
	}
	if got := strings.Join(m3.Changed, ","); got != "SHA256SUMS,bases/daily.cvd,update.ini" {
		t.Fatalf("changed files %s", got)
	}
	if v.Sent("/bases/main.cvd") > 400<<10 {
		t.Fatalf("main.cvd sent %d bytes: downloaded twice", v.Sent("/bases/main.cvd"))
	}
	head3 := readHead(t, pub.Repo)

	// The vendor's index announces generation 3, but what the server
	// sends for daily.cvd is not what the index says.
	vendorTree(v, 3)
	daily, _ := os.ReadFile(filepath.Join(v.Dir, "bases", "daily.cvd"))
	daily[10] ^= 0xff
	v.write("bases/daily.cvd", daily)
	r, _ = mirror()
	if r.code != 3 || !strings.Contains(r.stderr, "bases/daily.cvd") || !strings.Contains(r.stderr, "sha256") {
		t.Fatalf("tampered file: exit %d\n%s", r.code, r.stderr)
	}
	if !bytes.Equal(readHead(t, pub.Repo), head3) {
		t.Fatal("a tampered upstream moved the head")
	}

	// A tree the index accepts and the validator refuses.
	vendorTree(v, 4)
	v.write("update.ini", []byte("garbage\n"))
	v.index()
	r, _ = mirror()
	if r.code != 3 || !strings.Contains(r.stderr, "validator") {
		t.Fatalf("validator refusal: exit %d\n%s", r.code, r.stderr)
	}
	if !bytes.Equal(readHead(t, pub.Repo), head3) {
		t.Fatal("a refused tree moved the head")
	}

	// Fixed upstream: published again.
	vendorTree(v, 5)
	if r, m := mirror(); r.code != 0 || !m.Published {
		t.Fatalf("after the refusals: exit %d %+v\n%s", r.code, m, r.stderr)
	}
	mustPM(t, "verify", "--repo", pub.Repo, "--trust", pub.Trust)
}

// TestServeFilesToPlainClients: a node's --serve-files view gives curl and
// wget --mirror the exact tree of the release it runs, with ranges and
// 304 revalidation, and the next release after a switch.
func TestServeFilesToPlainClients(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (scripts/test.sh installs it)")
	}
	v := newVendorServer(t)
	vendorTree(v, 1)
	pub := newPublisher(t)
	work := filepath.Join(t.TempDir(), "work")
	if r, m := runMirror(t, pub, work, "--index", "SHA256SUMS", v.URL+"/"); r.code != 0 || !m.Published {
		t.Fatalf("mirror: exit %d\n%s", r.code, r.stderr)
	}
	addr := freeAddr(t)
	n := newNode(t, nodeOpts{Trust: pub.Trust, Sources: []string{pub.Repo}, Extra: []string{"--serve-files", addr, "--serve-files-index"}})
	n.Update(t)
	waitFor(t, 60*time.Second, func() bool { return n.Current() != "" }, "the node to apply the mirrored release")
	base := "http://" + addr

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "30"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		return string(out)
	}
	for _, name := range []string{"SHA256SUMS", "bases/daily.cvd", "bases/main.cvd", "modules/engine/engine.dll", "update.ini"} {
		want, _ := os.ReadFile(filepath.Join(v.Dir, filepath.FromSlash(name)))
		if got := run("-f", base+"/"+name); got != string(want) {
			t.Fatalf("curl %s: %d bytes, want the vendor's %d", name, len(got), len(want))
		}
	}
	daily, _ := os.ReadFile(filepath.Join(v.Dir, "bases", "daily.cvd"))
	if got := run("-f", "-r", "1048576-1048600", base+"/bases/daily.cvd"); got != string(daily[1048576:1048601]) {
		t.Fatalf("curl -r: %q", got)
	}
	headers := run("-f", "-I", base+"/bases/daily.cvd")
	etag, lastMod := header(headers, "Etag"), header(headers, "Last-Modified")
	sum := sha256.Sum256(daily)
	if etag != `"`+hex.EncodeToString(sum[:])+`"` || lastMod == "" {
		t.Fatalf("ETag %q (want the file's sha256), Last-Modified %q", etag, lastMod)
	}
	if code := run("-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: "+etag, base+"/bases/daily.cvd"); code != "304" {
		t.Fatalf("If-None-Match: %s, want 304", code)
	}
	if code := run("-o", "/dev/null", "-w", "%{http_code}", "-H", "If-Modified-Since: "+lastMod, base+"/bases/daily.cvd"); code != "304" {
		t.Fatalf("If-Modified-Since: %s, want 304", code)
	}
	if code := run("-o", "/dev/null", "-w", "%{http_code}", base+"/../../etc/passwd", "--path-as-is"); code != "404" {
		t.Fatalf("climbing out: %s, want 404", code)
	}

	if wget, err := exec.LookPath("wget"); err != nil {
		t.Log("wget is not installed: skipping wget --mirror (scripts/test.sh installs it)")
	} else {
		dst := t.TempDir()
		cmd := exec.Command(wget, "--mirror", "--no-parent", "--no-host-directories", "--quiet", "--timeout=30", "-P", dst, base+"/")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("wget --mirror: %v\n%s", err, out)
		}
		sameTree(t, v.Dir, dst)
	}

	// The next release: new requests see it.
	vendorTree(v, 2)
	if r, m := runMirror(t, pub, work, "--index", "SHA256SUMS", v.URL+"/"); r.code != 0 || !m.Published {
		t.Fatalf("mirror: exit %d\n%s", r.code, r.stderr)
	}
	old := n.Current()
	n.Update(t)
	waitFor(t, 60*time.Second, func() bool { c := n.Current(); return c != "" && c != old }, "the node to apply the next release")
	if got := run("-f", base+"/update.ini"); got != "[update]\ngeneration=2\n" {
		t.Fatalf("after the switch: %q", got)
	}
	if code := run("-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: "+etag, base+"/bases/daily.cvd"); code != "200" {
		t.Fatalf("changed file revalidated with its old ETag: %s, want 200", code)
	}
}

// header finds a header's value in curl -I output.
func header(out, name string) string {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestServeFilesWhileDownloading: before a node has installed any release, its
// file view serves the files of the release it is downloading, each part
// fetched on demand and verified, ranges included, with the same ETag the
// installed file will have; after the switch the installed file is served.
func TestServeFilesWhileDownloading(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 32, 41)
	pub.Publish("1.0.0", src)
	cr := newCountingRepo(t, pub.Repo)
	cr.delay.Store(int64(40 * time.Millisecond))
	addr := freeAddr(t)
	n := newNode(t, nodeOpts{Name: "early", Trust: pub.Trust, Sources: []string{cr.URL}, Extra: []string{"--concurrency", "2", "--max-concurrency", "2", "--serve-files", addr}})
	waitFor(t, 60*time.Second, func() bool {
		st, err := n.status()
		return err == nil && st.Progress != nil && st.Progress.ChunksDone > 0
	}, "the download to start")

	// The largest file of the tree: its end is the last to be downloaded.
	var name string
	var want []byte
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && len(b) > len(want) {
			rel, _ := filepath.Rel(src, p)
			name, want = filepath.ToSlash(rel), b
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(rangeHdr string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/"+name, nil)
		if rangeHdr != "" {
			req.Header.Set("Range", rangeHdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	tail := len(want) - 100000
	resp, body := get(fmt.Sprintf("bytes=%d-", tail))
	if n.Current() != "" {
		t.Fatal("the release was installed before the range was served; slow the repository down")
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[tail:]) {
		t.Fatalf("range of %s while downloading: %s, %d bytes; want 206 and the file's last %d bytes", name, resp.Status, len(body), len(want)-tail)
	}
	sum := sha256.Sum256(want)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	if got := resp.Header.Get("ETag"); got != etag {
		t.Errorf("ETag while downloading %s, want the file's sha256 %s", got, etag)
	}
	mid := len(want) / 2
	resp, body = get(fmt.Sprintf("bytes=%d-%d", mid, mid+70000))
	if n.Current() != "" {
		t.Fatal("the release was installed before the range was served; slow the repository down")
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[mid:mid+70001]) {
		t.Fatalf("middle range of %s while downloading: %s, %d bytes", name, resp.Status, len(body))
	}
	if resp, err := http.Get("http://" + addr + "/no/such/file"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("a path the release lacks: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}

	cr.delay.Store(0)
	n.WaitVersion(t, "1.0.0", 120*time.Second)
	sameTree(t, src, filepath.Join(n.Install, "current"))
	if resp, body := get(""); resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) || resp.Header.Get("ETag") != etag || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("%s once installed: %s, %d bytes, ETag %s", name, resp.Status, len(body), resp.Header.Get("ETag"))
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "patchmesh test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeFilesOverHTTPS: with a certificate and its key, the file view
// speaks only HTTPS, and a client that trusts the certificate gets the files.
func TestServeFilesOverHTTPS(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 43)
	pub.Publish("1.0.0", src)
	certFile, keyFile, pool := selfSigned(t)
	addr := freeAddr(t)
	n := newNode(t, nodeOpts{Trust: pub.Trust, Sources: []string{pub.Repo}, Extra: []string{
		"--serve-files", addr, "--serve-files-tls-cert", certFile, "--serve-files-tls-key", keyFile}})
	n.Update(t)
	n.WaitVersion(t, "1.0.0", 60*time.Second)
	want, err := os.ReadFile(filepath.Join(src, "bin/app"))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + addr + "/bin/app")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) || resp.TLS == nil {
		t.Fatalf("https GET: %s, %d bytes (%v), want 200 and the file's %d bytes", resp.Status, len(body), err, len(want))
	}
	if resp, err := http.Get("http://" + addr + "/bin/app"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the TLS view answered plain HTTP with the file")
		}
	}
}
