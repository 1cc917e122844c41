package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/mesh"
)

// Store is the node's chunk store, with its meta area for records.
type Store interface {
	Has(ctx context.Context, c cid.Cid) (bool, error)
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	PutVerified(ctx context.Context, c cid.Cid, data []byte) error
	Delete(ctx context.Context, c cid.Cid) error
	GetMeta(key string) ([]byte, error)
	SetMeta(key string, val []byte) error
	SetMetaLazy(key string, val []byte) error
	DeleteMeta(key string) error
	ListMeta(prefix string) (map[string][]byte, error)
}

// Site is the node's site, as the cache needs it: who owns a URL, and a way
// to ask that member. mesh.Mesh implements it.
type Site interface {
	ObjectOwner(key []byte) (name string, self bool)
	OpenObject(ctx context.Context, r mesh.ObjectRequest) (io.ReadCloser, error)
}

// Defaults of Options' sizes, which the node's config shows as its own.
const (
	DefaultMaxObject = 512 << 20
	DefaultMaxBytes  = 2 << 30
)

// Options configure a Cache. Zero values take the documented defaults.
type Options struct {
	// Allow lists the upstream hosts the proxy serves: "host" (any port),
	// "host:port", or "*.example.com" (any subdomain). Empty: none.
	Allow     []string
	MaxObject int64 // largest body stored; larger ones pass through. Zero: 512 MiB
	MaxBytes  int64 // bodies kept in all; least recently used go first. Zero: 2 GiB
	// MaxUpstream bounds requests to upstream at once (fills, passes and
	// revalidations; tunnels are bounded apart). Zero: 8.
	MaxUpstream int
	MaxTunnels  int           // CONNECT tunnels at once; zero: 64
	Timeout     time.Duration // dial, TLS and response headers from upstream; zero: 30s
	IdleTimeout time.Duration // no byte for this long ends a transfer; zero: 30s
	// FillTimeout bounds fetching one object into the cache; a member asking
	// the owner waits as long for its answer to start. Zero: 30m.
	FillTimeout time.Duration
	TunnelIdle  time.Duration // an idle CONNECT tunnel is closed; zero: 5m
	Store       Store
	Site        Site // nil: this node owns every object
	UserAgent   string
	Logger      *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxObject <= 0 {
		o.MaxObject = DefaultMaxObject
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxUpstream <= 0 {
		o.MaxUpstream = 8
	}
	if o.MaxTunnels <= 0 {
		o.MaxTunnels = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.FillTimeout <= 0 {
		o.FillTimeout = 30 * time.Minute
	}
	if o.TunnelIdle <= 0 {
		o.TunnelIdle = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Stats are the cache's counters since New.
type Stats struct {
	UpstreamBytes   int64 // body bytes from upstream (fills, passes) and tunnel bytes
	PeerBytes       int64 // body bytes received from owners in the site
	ServedPeerBytes int64 // body bytes sent to members that asked this owner
	Hits            int64 // answered from the cache without asking upstream
	Misses          int64 // fetched into the cache
	Revalidated     int64 // confirmed by upstream with a 304
	Passed          int64 // passed through without storing
	Refused         int64 // requests refused (host not allowed, method)
	Tunnels         int64 // CONNECT tunnels opened
	Objects         int64 // objects held
	Bytes           int64 // their body bytes
}

// Cache is the caching proxy: an http.Handler for clients and the mesh's
// Objects for members of the site. Create it with New; Close ends its fills.
type Cache struct {
	o      Options
	client *http.Client
	tr     *http.Transport
	upSem  chan struct{}
	tunSem chan struct{}
	life   context.Context
	stop   context.CancelFunc

	wmu sync.Mutex // serializes record writes and evictions

	mu       sync.Mutex // guards the fields below
	index    map[string]*entry
	refs     map[string]int // chunk CID → records listing it
	pending  map[string]int // chunk CID → fills writing it now
	total    int64
	flights  map[string]*flight
	tooLarge map[string]bool // URLs whose body outgrew MaxObject: passed through

	stats struct {
		upstream, peer, servedPeer, hits, misses, revalidated, passed, refused, tunnels atomic.Int64
	}
}

// entry is what the cache keeps in memory of a record, for quotas and LRU.
type entry struct {
	size int64
	used time.Time
}

// flight is one upstream fetch of a URL that other requests wait for.
type flight struct {
	done chan struct{}
	rec  *record
	err  error
}

// errPassed tells waiters that the leader's answer could not be stored.
var errPassed = errors.New("upstream answer not storable")

// errTooLarge is a body above MaxObject.
var errTooLarge = errors.New("object larger than the proxy's limit")

// New loads the records in o.Store and returns the cache.
func New(o Options) (*Cache, error) {
	o = o.withDefaults()
	if o.Store == nil {
		return nil, errors.New("new proxy cache: no store")
	}
	for _, a := range o.Allow {
		if strings.TrimSpace(a) == "" || strings.ContainsAny(a, "/ ") {
			return nil, fmt.Errorf("new proxy cache: allowed host %q: give a host name, host:port or *.domain", a)
		}
	}
	dialer := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
		// Bytes as upstream sent them: a client that asked for gzip gets it.
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	c := &Cache{
		o: o, tr: tr,
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // redirects go back to the client, as any proxy's
		}},
		upSem: make(chan struct{}, o.MaxUpstream), tunSem: make(chan struct{}, o.MaxTunnels),
		index: map[string]*entry{}, refs: map[string]int{}, pending: map[string]int{},
		flights: map[string]*flight{}, tooLarge: map[string]bool{},
	}
	c.life, c.stop = context.WithCancel(context.Background())
	recs, err := o.Store.ListMeta(metaPrefix)
	if err != nil {
		return nil, fmt.Errorf("new proxy cache: %w", err)
	}
	for k, b := range recs {
		r, err := decodeRecord(b)
		if err != nil || objectKey(r.URL) != k {
			o.Logger.Warn("proxy: dropping a damaged record", "key", k, "err", err)
			_ = o.Store.DeleteMeta(k)
			continue
		}
		c.index[k] = &entry{size: r.Size, used: r.Used}
		c.total += r.Size
		for _, ch := range r.Chunks {
			c.refs[ch.CID]++
		}
	}
	return c, nil
}

// Close ends fills in progress and idle upstream connections.
func (c *Cache) Close() {
	c.stop()
	c.tr.CloseIdleConnections()
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	s := &c.stats
	c.mu.Lock()
	n, b := int64(len(c.index)), c.total
	c.mu.Unlock()
	return Stats{UpstreamBytes: s.upstream.Load(), PeerBytes: s.peer.Load(), ServedPeerBytes: s.servedPeer.Load(),
		Hits: s.hits.Load(), Misses: s.misses.Load(), Revalidated: s.revalidated.Load(), Passed: s.passed.Load(),
		Refused: s.refused.Load(), Tunnels: s.tunnels.Load(), Objects: n, Bytes: b}
}

// Holds reports whether a cached object, or a fill in progress, uses chunk
// id: the node's collector keeps those.
func (c *Cache) Holds(id cid.Cid) bool {
	k := id.String()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refs[k] > 0 || c.pending[k] > 0
}

// load reads url's record; nil when there is none.
func (c *Cache) load(url string) *record {
	b, err := c.o.Store.GetMeta(objectKey(url))
	if err != nil {
		return nil
	}
	r, err := decodeRecord(b)
	if err != nil || r.URL != url {
		return nil
	}
	return r
}

// object returns a record of url fit to serve, asking upstream when it has
// none, or a stale one, or revalidate is set; or upstream's answer itself
// (pass) when that may not be stored: the caller streams it and closes it.
func (c *Cache) object(ctx context.Context, url, ua string, revalidate bool) (*record, *http.Response, error) {
	key := objectKey(url)
	if rec := c.load(url); rec != nil && !revalidate && rec.fresh(time.Now()) {
		c.stats.hits.Add(1)
		c.touch(key, rec)
		return rec, nil, nil
	}
	c.mu.Lock()
	if f := c.flights[key]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if f.rec != nil {
			c.stats.hits.Add(1)
			return f.rec, nil, nil
		}
		if errors.Is(f.err, errPassed) {
			resp, err := c.get(ctx, url, ua, nil)
			if err != nil {
				return nil, nil, err
			}
			c.stats.passed.Add(1)
			return nil, resp, nil
		}
		return nil, nil, f.err
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	large := c.tooLarge[url]
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.flights, key)
		c.mu.Unlock()
		close(f.done)
	}()
	if large {
		f.err = errPassed
		resp, err := c.get(ctx, url, ua, nil)
		if err == nil {
			c.stats.passed.Add(1)
		}
		return nil, resp, err
	}
	rec, resp, err := c.refresh(ctx, url, ua)
	f.rec, f.err = rec, err
	if resp != nil {
		f.err = errPassed
		c.stats.passed.Add(1)
	}
	return rec, resp, err
}

// refresh asks upstream for url, conditionally when a record with validators
// is held, and stores or refreshes the record.
func (c *Cache) refresh(ctx context.Context, url, ua string) (*record, *http.Response, error) {
	old := c.load(url)
	cond := http.Header{}
	if old != nil {
		if v := old.Header.Get("ETag"); v != "" {
			cond.Set("If-None-Match", v)
		}
		if v := old.Header.Get("Last-Modified"); v != "" {
			cond.Set("If-Modified-Since", v)
		}
	}
	// The fill is the site's, not one client's: it goes on when the client
	// that started it leaves, within FillTimeout and the cache's life.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.FillTimeout)
	defer func() { cancel() }() // not when a passed body takes it over
	defer context.AfterFunc(c.life, cancel)()
	resp, err := c.get(fctx, url, ua, cond)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	if resp.StatusCode == http.StatusNotModified && old != nil {
		resp.Body.Close()
		for _, k := range refreshHeaders {
			if v := resp.Header.Values(k); len(v) > 0 {
				old.Header[k] = v
			}
		}
		old.Header.Del("Age")
		old.Until, old.Always = freshness(resp.Header, now)
		if resp.Header.Get("Cache-Control") == "" && resp.Header.Get("Expires") == "" {
			old.Until, old.Always = freshness(old.Header, now)
		}
		old.Checked, old.Used = now, now
		if err := c.commit(fctx, old); err != nil {
			return nil, nil, err
		}
		c.stats.revalidated.Add(1)
		c.o.Logger.Debug("proxy: revalidated", "url", url)
		return old, nil, nil
	}
	if why := unstorable(resp); why != "" || resp.StatusCode == http.StatusNotModified ||
		resp.ContentLength > c.o.MaxObject {
		if old != nil && resp.StatusCode == http.StatusOK {
			c.remove(fctx, objectKey(url)) // upstream no longer lets it be cached
		}
		c.o.Logger.Debug("proxy: passing through", "url", url, "why", why, "status", resp.StatusCode)
		// The fill's context must outlive this call for the caller's read.
		resp.Body = &closeFunc{resp.Body, cancel}
		cancel = func() {}
		return nil, resp, nil
	}
	rec, err := c.fill(fctx, url, resp, now)
	if errors.Is(err, errTooLarge) {
		c.mu.Lock()
		if len(c.tooLarge) > 1024 {
			clear(c.tooLarge)
		}
		c.tooLarge[url] = true
		c.mu.Unlock()
	}
	if err != nil {
		return nil, nil, err
	}
	c.stats.misses.Add(1)
	return rec, nil, nil
}

// closeFunc runs fn after closing the body.
type closeFunc struct {
	io.ReadCloser
	fn func()
}

func (c *closeFunc) Close() error { err := c.ReadCloser.Close(); c.fn(); return err }

// get sends one GET for url upstream with the given extra headers, within
// MaxUpstream; the slot is held until the body is closed.
func (c *Cache) get(ctx context.Context, url, ua string, h http.Header) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("proxy get %s: %w", url, err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if ua == "" {
		ua = c.o.UserAgent
	}
	req.Header.Set("User-Agent", ua)
	return c.do(ctx, req)
}

// do sends req upstream within MaxUpstream, with an idle bound on its body.
func (c *Cache) do(ctx context.Context, req *http.Request) (*http.Response, error) {
	select {
	case c.upSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("proxy %s %s: wait for an upstream slot: %w", req.Method, req.URL, ctx.Err())
	}
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.client.Do(req.WithContext(ctx))
	if err != nil {
		cancel()
		<-c.upSem
		return nil, fmt.Errorf("proxy %s %s: %w", req.Method, req.URL, err)
	}
	resp.Body = newIdleBody(resp.Body, c.o.IdleTimeout, &c.stats.upstream, func() { cancel(); <-c.upSem })
	return resp, nil
}

// idleBody ends a body that sends nothing for idle, counts its bytes, and runs
// done once on Close.
type idleBody struct {
	rc    io.ReadCloser
	idle  time.Duration
	timer *time.Timer
	n     *atomic.Int64
	once  sync.Once
	done  func()
}

func newIdleBody(rc io.ReadCloser, idle time.Duration, n *atomic.Int64, done func()) *idleBody {
	b := &idleBody{rc: rc, idle: idle, n: n, done: done}
	// Closing the body from the timer makes a blocked Read return.
	b.timer = time.AfterFunc(idle, func() { _ = rc.Close() })
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.once.Do(b.done)
	return err
}

// fill cuts resp's body into chunks in the store and commits its record. It
// holds one chunk of the body in memory at a time.
func (c *Cache) fill(ctx context.Context, url string, resp *http.Response, now time.Time) (rec *record, err error) {
	defer resp.Body.Close()
	ch, err := chunk.NewChunker(io.LimitReader(resp.Body, c.o.MaxObject+1), chunk.Params{})
	if err != nil {
		return nil, fmt.Errorf("fill %s: %w", url, err)
	}
	var refs []chunkRef
	var added []cid.Cid
	var size int64
	defer func() {
		c.mu.Lock()
		for _, r := range refs {
			if c.pending[r.CID]--; c.pending[r.CID] <= 0 {
				delete(c.pending, r.CID)
			}
		}
		var drop []cid.Cid
		if err != nil {
			for _, id := range added {
				if c.refs[id.String()] == 0 && c.pending[id.String()] == 0 {
					drop = append(drop, id)
				}
			}
		}
		c.mu.Unlock()
		for _, id := range drop {
			_ = c.o.Store.Delete(context.WithoutCancel(ctx), id)
		}
	}()
	for {
		data, err := ch.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("fill %s: read upstream: %w", url, err)
		}
		if size += int64(len(data)); size > c.o.MaxObject {
			return nil, fmt.Errorf("fill %s: %w (%d bytes)", url, errTooLarge, c.o.MaxObject)
		}
		id := chunk.Sum(data)
		k := id.String()
		c.mu.Lock()
		c.pending[k]++
		c.mu.Unlock()
		refs = append(refs, chunkRef{CID: k, Size: int64(len(data))})
		has, err := c.o.Store.Has(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("fill %s: %w", url, err)
		}
		if !has {
			if err := c.o.Store.PutVerified(ctx, id, data); err != nil {
				return nil, fmt.Errorf("fill %s: %w", url, err)
			}
			added = append(added, id)
		}
	}
	if resp.ContentLength >= 0 && size != resp.ContentLength {
		return nil, fmt.Errorf("fill %s: upstream sent %d of %d bytes", url, size, resp.ContentLength)
	}
	rec = &record{URL: url, Header: storedHeader(resp.Header), Size: size, Chunks: refs, Checked: now, Used: now}
	rec.Until, rec.Always = freshness(resp.Header, now)
	if err := c.commit(ctx, rec); err != nil {
		return nil, err
	}
	c.o.Logger.Debug("proxy: stored", "url", url, "bytes", size, "chunks", len(refs))
	return rec, nil
}

// commit writes rec, replacing the URL's previous record, then evicts the
// least recently used records above MaxBytes.
func (c *Cache) commit(ctx context.Context, rec *record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("commit %s: %w", rec.URL, err)
	}
	key := objectKey(rec.URL)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	old := c.load(rec.URL)
	if err := c.o.Store.SetMeta(key, b); err != nil {
		return fmt.Errorf("commit %s: %w", rec.URL, err)
	}
	c.mu.Lock()
	for _, ch := range rec.Chunks {
		c.refs[ch.CID]++
	}
	if e := c.index[key]; e != nil {
		c.total -= e.size
	}
	c.index[key] = &entry{size: rec.Size, used: rec.Used}
	c.total += rec.Size
	c.mu.Unlock()
	if old != nil {
		c.unref(ctx, old)
	}
	for {
		c.mu.Lock()
		var lru string
		var at time.Time
		if c.total > c.o.MaxBytes {
			for k, e := range c.index {
				if k != key && (lru == "" || e.used.Before(at)) {
					lru, at = k, e.used
				}
			}
		}
		c.mu.Unlock()
		if lru == "" {
			return nil
		}
		c.o.Logger.Debug("proxy: evicting", "key", lru)
		c.removeLocked(ctx, lru)
	}
}

// remove drops the record under key and the chunks nothing else uses.
func (c *Cache) remove(ctx context.Context, key string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.removeLocked(ctx, key)
}

func (c *Cache) removeLocked(ctx context.Context, key string) {
	b, _ := c.o.Store.GetMeta(key)
	_ = c.o.Store.DeleteMeta(key)
	c.mu.Lock()
	if e := c.index[key]; e != nil {
		c.total -= e.size
		delete(c.index, key)
	}
	c.mu.Unlock()
	if r, err := decodeRecord(b); err == nil {
		c.unref(ctx, r)
	}
}

// unref drops r's references to its chunks and deletes those no record and
// no fill uses any more. A chunk a release also holds may go with them; the
// node fetches it again if a peer or an update needs it.
func (c *Cache) unref(ctx context.Context, r *record) {
	var drop []string
	c.mu.Lock()
	for _, ch := range r.Chunks {
		if c.refs[ch.CID]--; c.refs[ch.CID] <= 0 {
			delete(c.refs, ch.CID)
			if c.pending[ch.CID] == 0 {
				drop = append(drop, ch.CID)
			}
		}
	}
	c.mu.Unlock()
	for _, s := range drop {
		if id, err := cid.Decode(s); err == nil {
			_ = c.o.Store.Delete(context.WithoutCancel(ctx), id)
		}
	}
}

// touchEvery bounds how often a hit rewrites its record's use time.
const touchEvery = time.Minute

// touch marks rec used now for the LRU order.
func (c *Cache) touch(key string, rec *record) {
	now := time.Now()
	c.mu.Lock()
	if e := c.index[key]; e != nil {
		e.used = now
	}
	c.mu.Unlock()
	if now.Sub(rec.Used) < touchEvery {
		return
	}
	rec.Used = now
	if b, err := json.Marshal(rec); err == nil {
		c.wmu.Lock()
		if c.load(rec.URL) != nil {
			_ = c.o.Store.SetMetaLazy(key, b)
		}
		c.wmu.Unlock()
	}
}

// objectReader reads a record's body from the store, one chunk in memory.
type objectReader struct {
	ctx  context.Context
	c    *Cache
	rec  *record
	offs []int64 // start of each chunk
	pos  int64
	buf  []byte
	bufI int
}

func (c *Cache) reader(ctx context.Context, rec *record) *objectReader {
	offs := make([]int64, len(rec.Chunks))
	var o int64
	for i, ch := range rec.Chunks {
		offs[i] = o
		o += ch.Size
	}
	return &objectReader{ctx: ctx, c: c, rec: rec, offs: offs, bufI: -1}
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.pos >= r.rec.Size {
		return 0, io.EOF
	}
	i := sort.Search(len(r.offs), func(i int) bool { return r.offs[i] > r.pos }) - 1
	if i != r.bufI {
		ref := r.rec.Chunks[i]
		id, err := cid.Decode(ref.CID)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", r.rec.URL, err)
		}
		data, err := r.c.o.Store.Get(r.ctx, id)
		if err == nil && int64(len(data)) != ref.Size {
			err = fmt.Errorf("chunk %s of %d bytes, not %d", id, len(data), ref.Size)
		}
		if err != nil {
			// A chunk gone or damaged: the next request fetches the object again.
			r.c.remove(r.ctx, objectKey(r.rec.URL))
			return 0, fmt.Errorf("read %s: %w", r.rec.URL, err)
		}
		r.buf, r.bufI = data, i
	}
	n := copy(p, r.buf[r.pos-r.offs[i]:])
	r.pos += int64(n)
	return n, nil
}

func (r *objectReader) Seek(off int64, whence int) (int64, error) {
	return seek(&r.pos, r.rec.Size, off, whence)
}

// seek moves *pos in a body of size bytes as io.Seeker does.
func seek(pos *int64, size, off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += *pos
	case io.SeekEnd:
		off += size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if off < 0 {
		return 0, errors.New("seek: negative position")
	}
	*pos = off
	return off, nil
}
