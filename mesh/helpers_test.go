package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/store"
)

// testWAN is an HTTP server standing in for a site's update source: it serves
// chunks by CID and counts what it served, per CID and per fetching node.
type testWAN struct {
	srv   *httptest.Server
	delay time.Duration
	// link, if set, is how long each answer holds the link, one at a time:
	// a thin link, on which answers queue.
	link   time.Duration
	linkMu sync.Mutex

	mu     sync.Mutex
	chunks map[string][]byte
	count  map[string]int            // CID → times served
	by     map[string]map[string]int // CID → node → times served
	bytes  int64

	inflight, peak atomic.Int64 // requests being served at once
}

func newTestWAN(t testing.TB) *testWAN {
	t.Helper()
	w := &testWAN{chunks: map[string][]byte{}, count: map[string]int{}, by: map[string]map[string]int{}}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *testWAN) serve(rw http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/chunks/")
	w.mu.Lock()
	data, ok := w.chunks[key]
	delay := w.delay
	if ok {
		w.count[key]++
		if w.by[key] == nil {
			w.by[key] = map[string]int{}
		}
		w.by[key][r.Header.Get("X-Node")]++
		w.bytes += int64(len(data))
	}
	w.mu.Unlock()
	if !ok {
		http.NotFound(rw, r)
		return
	}
	n := w.inflight.Add(1)
	defer w.inflight.Add(-1)
	for p := w.peak.Load(); n > p && !w.peak.CompareAndSwap(p, n); p = w.peak.Load() {
	}
	if delay > 0 {
		time.Sleep(delay) // a slow WAN link, so fetches overlap
	}
	if w.link > 0 {
		w.linkMu.Lock()
		time.Sleep(w.link)
		w.linkMu.Unlock()
	}
	_, _ = rw.Write(data)
}

// add puts n random chunks of 1..maxSize bytes on the server.
func (w *testWAN) add(t testing.TB, n, maxSize int) (cids []cid.Cid, total int64) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for range n {
		size, err := rand.Int(rand.Reader, big.NewInt(int64(maxSize)))
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size.Int64()+1)
		_, _ = rand.Read(data)
		c := chunk.Sum(data)
		w.chunks[c.String()] = data
		cids = append(cids, c)
		total += int64(len(data))
	}
	return cids, total
}

// addFixed puts n random chunks of size bytes on the server.
func (w *testWAN) addFixed(t testing.TB, n, size int) (cids []cid.Cid, total int64) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for range n {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		c := chunk.Sum(data)
		w.chunks[c.String()] = data
		cids = append(cids, c)
		total += int64(size)
	}
	return cids, total
}

func (w *testWAN) served() (bytes int64, count map[string]int, by map[string]map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	count = make(map[string]int, len(w.count))
	for k, v := range w.count {
		count[k] = v
	}
	by = make(map[string]map[string]int, len(w.by))
	for k, v := range w.by {
		by[k] = map[string]int{}
		for n, c := range v {
			by[k][n] = c
		}
	}
	return w.bytes, count, by
}

// wanClient is one node's WAN: a tiny FetchChunk adapter over the server.
type wanClient struct {
	url  string
	node string
}

// FetchChunk decodes and verifies what the server sends, as a node's WAN does.
func (c wanClient) FetchChunk(ctx context.Context, id cid.Cid) ([]byte, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/chunks/"+id.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("X-Node", c.node)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET chunk %s: %s", id, resp.Status)
	}
	wire, err := io.ReadAll(io.LimitReader(resp.Body, chunk.MaxSize+1))
	if err != nil {
		return nil, nil, err
	}
	codec, err := chunk.NewCodec(chunk.CompressOff)
	if err != nil {
		return nil, nil, err
	}
	raw, err := codec.Decode(id, wire, 0)
	return raw, wire, err
}

// testDelegate is a small fake of the node behind a Mesh: its WAN is the test
// server, its documents a map; it counts its WAN bytes (the node owns that
// counter, not the mesh), notes what it is told was stored, and passes
// bad-peer reports to badPeer.
type testDelegate struct {
	wan       wanClient
	docs      mapDocs
	badPeer   func(c cid.Cid, member string, err error)
	wanBytes  atomic.Int64
	wanChunks atomic.Int64
	mu        sync.Mutex
	stored    map[cid.Cid]chunk.Origin
}

func (d *testDelegate) FetchChunk(ctx context.Context, c cid.Cid) ([]byte, []byte, error) {
	raw, wire, err := d.wan.FetchChunk(ctx, c)
	if err == nil {
		d.wanBytes.Add(int64(len(wire)))
		d.wanChunks.Add(1)
	}
	return raw, wire, err
}

func (d *testDelegate) ReadDoc(ctx context.Context, p string) ([]byte, error) {
	return d.docs.ReadDoc(ctx, p)
}

func (d *testDelegate) ServeObject(context.Context, []byte, io.Writer) error {
	return errors.New("no objects here")
}

func (d *testDelegate) Stored(c cid.Cid, o chunk.Origin) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stored == nil {
		d.stored = make(map[cid.Cid]chunk.Origin)
	}
	d.stored[c] = o
}

// storedOrigin returns what the mesh told of c's storing, if it did.
func (d *testDelegate) storedOrigin(c cid.Cid) (chunk.Origin, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.stored[c]
	return o, ok
}

func (d *testDelegate) BadPeer(c cid.Cid, member string, err error) {
	if d.badPeer != nil {
		d.badPeer(c, member, err)
	}
}

// testNode is one running Mesh with its own badger store.
type testNode struct {
	m      *Mesh
	st     *store.Store
	d      *testDelegate
	cancel context.CancelFunc
	exited chan struct{} // closed when Run returned
	err    error         // what Run returned
}

// stop cancels Run and waits for it; Run must return nil within a bound.
func (n *testNode) stop(t testing.TB) {
	t.Helper()
	n.cancel()
	select {
	case <-n.exited:
		if n.err != nil {
			t.Errorf("Run of %s: %v", n.m.Name(), n.err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("Run of %s did not return within 30s of cancel", n.m.Name())
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("MESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func siteKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// loopbackConfig is a Config listening on loopback only, on free ports.
func loopbackConfig(key []byte, name string, join ...string) Config {
	cfg := DefaultConfig()
	cfg.SiteKey = key
	cfg.Name = name
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.Join = join
	cfg.RequestTimeout = 20 * time.Second
	cfg.SiteTimeout = 40 * time.Second
	cfg.Logger = testLogger().With("test", name)
	return cfg
}

// startNode creates and runs a node; setup may adjust the Mesh before Run,
// and opts ask for the faults of a test. A *testDelegate in cfg is kept,
// its WAN pointed at w; else a new one is made.
func startNode(t testing.TB, cfg Config, w *testWAN, setup func(*Mesh), opts runOptions) *testNode {
	t.Helper()
	st := openStore(t)
	d, _ := cfg.Delegate.(*testDelegate)
	if d == nil {
		d = &testDelegate{}
	}
	d.wan = wanClient{url: w.srv.URL, node: cfg.Name}
	cfg.Delegate = d
	m, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{m: m, st: st, d: d, cancel: cancel, exited: make(chan struct{})}
	go func() {
		defer close(n.exited)
		n.err = m.run(ctx, opts)
	}()
	t.Cleanup(func() { n.stop(t) })
	select {
	case <-m.Ready():
	case <-n.exited:
		t.Fatalf("Run of %s: %v", cfg.Name, n.err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s not ready", cfg.Name)
	}
	return n
}

// siteOpts adjust the nodes startSite starts.
type siteOpts struct {
	config func(i int, cfg *Config) // before New
	mesh   func(i int, m *Mesh)     // after New, before Run
	run    func(i int) runOptions   // the faults node i runs with
}

// startSite starts n nodes joined to the first one and waits until every
// node sees all of them alive.
func startSite(t testing.TB, key []byte, w *testWAN, n int, opts siteOpts) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := range n {
		var join []string
		if i > 0 {
			join = []string{nodes[0].m.GossipAddr()}
		}
		cfg := loopbackConfig(key, fmt.Sprintf("node-%d", i), join...)
		if opts.config != nil {
			opts.config(i, &cfg)
		}
		var ro runOptions
		if opts.run != nil {
			ro = opts.run(i)
		}
		nodes = append(nodes, startNode(t, cfg, w, func(m *Mesh) {
			if opts.mesh != nil {
				opts.mesh(i, m)
			}
		}, ro))
	}
	waitAlive(t, nodes, n)
	return nodes
}

// waitAlive waits until every node sees want alive members.
func waitAlive(t testing.TB, nodes []*testNode, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for aliveCount(n.m) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d alive members, want %d: %+v", n.m.Name(), aliveCount(n.m), want, n.m.Members())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func aliveCount(m *Mesh) int {
	n := 0
	for _, mb := range m.Members() {
		if mb.State == StateAlive {
			n++
		}
	}
	return n
}

// fetchAll fetches every CID on node n concurrently, and returns the origins.
func fetchAll(ctx context.Context, n *testNode, cids []cid.Cid) ([]chunk.Origin, error) {
	origins := make([]chunk.Origin, len(cids))
	errs := make(chan error, len(cids))
	var wg sync.WaitGroup
	// Shuffle, so nodes do not walk the list in the same order.
	order := mrand.Perm(len(cids))
	for _, i := range order {
		wg.Go(func() {
			data, o, err := n.m.Fetch(ctx, cids[i])
			if err == nil {
				err = chunk.Verify(cids[i], data)
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %w", n.m.Name(), err)
				return
			}
			origins[i] = o
		})
	}
	wg.Wait()
	close(errs)
	return origins, <-errs
}

// startFetchAll has every node fetch every CID, all nodes at once, and
// returns where each node's outcome arrives, len(nodes) in all.
func startFetchAll(ctx context.Context, nodes []*testNode, cids []cid.Cid) <-chan error {
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() {
			_, err := fetchAll(ctx, n, cids)
			errs <- err
		}()
	}
	return errs
}

// fetchAllAtOnce has every node fetch every CID, all nodes at once, within
// two minutes.
func fetchAllAtOnce(t testing.TB, nodes []*testNode, cids []cid.Cid) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := startFetchAll(ctx, nodes, cids)
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// checkStored asserts node n's store holds every CID with matching bytes.
func checkStored(t testing.TB, n *testNode, cids []cid.Cid) {
	t.Helper()
	ctx := context.Background()
	missing := 0
	for _, c := range cids {
		data, err := n.st.Get(ctx, c)
		if err != nil {
			missing++
			continue
		}
		if err := chunk.Verify(c, data); err != nil {
			t.Errorf("%s stores chunk %s with bad bytes: %v", n.m.Name(), c, err)
		}
	}
	if missing > 0 {
		t.Errorf("%s lacks %d of %d chunks", n.m.Name(), missing, len(cids))
	}
}
