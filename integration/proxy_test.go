package integration

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// upstream is a vendor web server that counts, per path, the requests it
// gets, the bodies it sends and its 304s.
type upstream struct {
	*httptest.Server
	mu                      sync.Mutex
	gets, bodies, notModify map[string]int
	files                   map[string][]byte
	cc                      map[string]string // Cache-Control per path
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{gets: map[string]int{}, bodies: map[string]int{}, notModify: map[string]int{}, files: map[string][]byte{}, cc: map[string]string{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.gets[r.URL.Path]++
		data, ok := u.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		etag := fmt.Sprintf(`"%x"`, len(data))
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/octet-stream")
		if cc := u.cc[r.URL.Path]; cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		if r.Header.Get("If-None-Match") == etag {
			u.notModify[r.URL.Path]++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		u.bodies[r.URL.Path]++
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) add(path string, size int, cc string) []byte {
	rng := rand.New(rand.NewPCG(uint64(size), uint64(len(path))))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[path], u.cc[path] = data, cc
	return data
}

func (u *upstream) count(m map[string]int, path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return m[path]
}

// proxyClient is a plain HTTP client of a node's proxy.
func proxyClient(addr string) *http.Client {
	pu, _ := url.Parse("http://" + addr)
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}}
}

func fetch(t *testing.T, c *http.Client, u string, hdr ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", u, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("GET %s: read: %v", u, err)
	}
	return resp.StatusCode, b
}

// TestProxyCacheOncePerSite: five plain HTTP clients of a three-node site,
// each through its node's --proxy-cache, make upstream send each cacheable
// object once; no-store and private answers are fetched every time, a
// no-cache one is revalidated with 304s and its body sent once, hosts off the
// allow-list are refused, ranges come from the cache, and CONNECT tunnels.
func TestProxyCacheOncePerSite(t *testing.T) {
	up := newUpstream(t)
	big := up.add("/bases/daily.cvd", 3<<20+12345, "max-age=3600")
	small := up.add("/update.ini", 2000, "public, max-age=600")
	noStore := up.add("/session.xml", 500, "no-store")
	up.add("/private.xml", 500, "private, max-age=600")
	reval := up.add("/bases/main.cvd", 700<<10, "no-cache")
	host := up.Listener.Addr().String()

	tlsUp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "over tls") }))
	t.Cleanup(tlsUp.Close)

	pub := newPublisher(t)
	key := siteKey(t)
	var nodes []*nodeProc
	var addrs []string
	for i := range 3 {
		addr := freeAddr(t)
		o := nodeOpts{Name: "proxy-" + strconv.Itoa(i+1), Trust: pub.Trust, Sources: []string{pub.Repo}, SiteKey: key,
			Extra: []string{"--proxy-cache", addr, "--proxy-allow", "127.0.0.1"}}
		if i > 0 {
			o.Join = []string{nodes[0].Gossip}
		}
		nodes = append(nodes, newNode(t, o))
		addrs = append(addrs, addr)
	}
	for _, nd := range nodes {
		waitFor(t, 30*time.Second, func() bool { return alive(nd) == 3 }, nd.Name+" to see the whole site")
	}
	clients := make([]*http.Client, 5)
	for i := range clients {
		clients[i] = proxyClient(addrs[i%3])
	}

	// Five clients at once, twice over, for two cacheable objects.
	var wg sync.WaitGroup
	for round := range 2 {
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, o := range []struct {
					path string
					want []byte
				}{{"/bases/daily.cvd", big}, {"/update.ini", small}} {
					code, got := fetch(t, c, up.URL+o.path)
					if code != http.StatusOK || !bytes.Equal(got, o.want) {
						t.Errorf("round %d client %d %s: status %d, %d bytes, want 200 and the vendor's %d", round, i, o.path, code, len(got), len(o.want))
					}
				}
			}()
		}
		wg.Wait()
	}
	for _, p := range []string{"/bases/daily.cvd", "/update.ini"} {
		if n := up.count(up.gets, p); n != 1 {
			t.Errorf("upstream got %d requests for %s from the site, want 1", n, p)
		}
	}

	// A range from every node, from the cache.
	for i, a := range addrs {
		req, _ := http.NewRequest(http.MethodGet, up.URL+"/bases/daily.cvd", nil)
		req.Header.Set("Range", "bytes=1000000-1000999")
		resp, err := proxyClient(a).Do(req)
		if err != nil {
			t.Fatalf("range via node %d: %v", i+1, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, big[1000000:1001000]) {
			t.Errorf("range via node %d: status %d, %d bytes", i+1, resp.StatusCode, len(got))
		}
	}
	if n := up.count(up.gets, "/bases/daily.cvd"); n != 1 {
		t.Errorf("ranges made upstream serve daily.cvd again: %d requests", n)
	}

	// no-store and private: never stored, fetched every time.
	for i := range 3 {
		if code, got := fetch(t, clients[i], up.URL+"/session.xml"); code != 200 || !bytes.Equal(got, noStore) {
			t.Errorf("no-store via node %d: status %d, %d bytes", i+1, code, len(got))
		}
		fetch(t, clients[i], up.URL+"/private.xml")
	}
	if n := up.count(up.gets, "/session.xml"); n != 3 {
		t.Errorf("no-store object fetched %d times upstream for 3 requests, want 3", n)
	}
	if n := up.count(up.gets, "/private.xml"); n != 3 {
		t.Errorf("private object fetched %d times upstream for 3 requests, want 3", n)
	}
	// Authorization: passed through, not answered from the cache.
	fetch(t, clients[0], up.URL+"/update.ini", "Authorization", "Bearer x")
	if n := up.count(up.gets, "/update.ini"); n != 2 {
		t.Errorf("a request with Authorization reached upstream %d times in all, want 2", n)
	}

	// no-cache: revalidated at every use; one body, then 304s.
	for i := range 4 {
		if code, got := fetch(t, clients[i], up.URL+"/bases/main.cvd"); code != 200 || !bytes.Equal(got, reval) {
			t.Errorf("no-cache object via client %d: status %d, %d bytes", i, code, len(got))
		}
	}
	if b, nm := up.count(up.bodies, "/bases/main.cvd"), up.count(up.notModify, "/bases/main.cvd"); b != 1 || nm != 3 {
		t.Errorf("no-cache object: upstream sent its body %d times and 304 %d times for 4 requests, want 1 and 3", b, nm)
	}

	// Off the allow-list: refused, for GET and CONNECT.
	_, port, _ := net.SplitHostPort(host)
	if code, _ := fetch(t, clients[1], "http://localhost:"+port+"/update.ini"); code != http.StatusForbidden {
		t.Errorf("GET to a host off the allow-list: status %d, want 403", code)
	}
	tlsTr := tlsUp.Client().Transport.(*http.Transport).Clone()
	pu, _ := url.Parse("http://" + addrs[2])
	tlsTr.Proxy = http.ProxyURL(pu)
	resp, err := (&http.Client{Transport: tlsTr, Timeout: 30 * time.Second}).Get(tlsUp.URL)
	if err != nil {
		t.Fatalf("https through CONNECT: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "over tls" {
		t.Errorf("https through CONNECT: %q", got)
	}
	tlsTr2 := tlsUp.Client().Transport.(*http.Transport).Clone()
	tlsTr2.Proxy = http.ProxyURL(pu)
	tlsTr2.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	_, tlsPort, _ := net.SplitHostPort(tlsUp.Listener.Addr().String())
	if _, err := (&http.Client{Transport: tlsTr2, Timeout: 30 * time.Second}).Get("https://localhost:" + tlsPort); err == nil {
		t.Errorf("CONNECT to a host off the allow-list succeeded")
	}

	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "-f", "--max-time", "30", "-x", "http://"+addrs[1], up.URL+"/update.ini").Output()
		if err != nil || !bytes.Equal(out, small) {
			t.Errorf("curl -x: %v, %d bytes", err, len(out))
		}
	}

	// The bytes show in the nodes' origin counters: the upstream's once,
	// the rest from owners on the LAN.
	var wan, lan, served, fromPeers int64
	for _, nd := range nodes {
		st := nd.Status(t)
		if st.Proxy == nil {
			t.Fatalf("%s: no proxy in its status", nd.Name)
		}
		wan += st.Proxy.UpstreamBytes
		lan += st.Proxy.PeerBytes
		served += st.Proxy.ServedPeerBytes
		fromPeers += st.Bytes.LAN
	}
	t.Logf("proxy bytes: upstream %d, from owners %d, served to members %d", wan, lan, served)
	if min := int64(len(big) + len(small) + len(reval)); wan < min || wan > 2*min {
		t.Errorf("upstream bytes %d, want about %d", wan, min)
	}
	if lan == 0 || served < lan || fromPeers < lan {
		t.Errorf("bytes from owners %d, served to members %d, node LAN bytes %d: want owners serving their objects", lan, served, fromPeers)
	}
}
