package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/mesh"
	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/install"
	"github.com/patchmesh/patchmesh/node/pipeline"
	"github.com/patchmesh/patchmesh/node/proxy"
	"github.com/patchmesh/patchmesh/node/schedule"
	"github.com/patchmesh/patchmesh/node/source"
)

// BuildVersion is the version a node reports when Config.Version is empty.
const BuildVersion = "0.1.0"

// Node is one running node. Create it with New, run it with Run.
type Node struct {
	cfg     Config
	log     *slog.Logger
	started time.Time

	store *store.Store
	// followers follow the node's channels, its first channel first; at
	// least one.
	followers []*follower
	list      *source.List
	mesh      *mesh.Mesh
	siteID    string
	chunks    pipeline.Source // the mesh's or the WAN's, with retries
	wan       *wanSource
	caps      *caps         // rate caps: the WAN limiter paces the sources, the LAN one the mesh's uploads
	stored    storedOrigins // where the mesh got chunks stored for peers (fetch.go)
	proxy     *proxy.Cache  // the caching proxy (--proxy-cache); nil: off
	// sched runs the checks of every channel and the collection after an
	// apply (node/schedule).
	sched *schedule.Scheduler
	// scrubSem lets one scrub run at a time, background or asked for.
	scrubSem chan struct{}
	// summaryNow wakes the site loop to gossip this node's summary before
	// its period ends (summarySoon): the first channel has a newer head,
	// which the site catches up with, or the node runs another release.
	summaryNow chan struct{}

	// rootMu guards root, the newest trust root reached.
	rootMu sync.Mutex
	root   *manifest.TrustRoot

	// mu guards the followers' status (followerState).
	mu sync.Mutex
	// stat is the node's own status: counters, events, byte history.
	stat *counters

	reportToken string // Report.TokenFile's token; empty: no reports

	// headMu guards the followers' heads served to repository clients
	// (--serve-repo).
	headMu sync.Mutex
}

// New opens the node's store and install folder and checks its config. Nothing
// listens and nothing is fetched until Run.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Name),
		scrubSem: make(chan struct{}, 1), summaryNow: make(chan struct{}, 1), stat: newCounters()}

	data, err := os.ReadFile(cfg.Trust)
	if err != nil {
		return nil, fmt.Errorf("trust root: %w", err)
	}
	root, err := manifest.ParseTrustRoot(data)
	if err != nil {
		return nil, fmt.Errorf("trust root %s: %w", cfg.Trust, err)
	}
	n.root = root
	if cfg.Report.To != "" {
		if n.reportToken, err = readReportToken(cfg.Report.TokenFile); err != nil {
			return nil, err
		}
	}

	// The mesh, made below, tells whom a site cap is shared by when asked.
	n.caps, err = newCaps(cfg.Caps, func() int {
		if n.mesh == nil {
			return 1
		}
		return n.mesh.CapShare()
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("config: caps: %w", err)
	}
	opts := source.DefaultOptions()
	opts.Throttle = n.caps.wan
	opts.CAFile, opts.Proxy, opts.Logger = cfg.CAFile, cfg.Proxy, n.log
	// As many kept-alive connections as requests run at once: a node's
	// widest fetch window, or an owner's fetches for its peers in a site.
	opts.Conns = max(cfg.MaxConcurrency, 2*cfg.Concurrency, opts.Conns)
	if cfg.Mesh.SiteKey != "" {
		opts.Conns = max(opts.Conns, cfg.Mesh.MaxWANRequests)
	}
	opts.UserAgent = "patchmesh/" + cfg.Version
	if cfg.SourceTimeout > 0 {
		opts.Timeout = time.Duration(cfg.SourceTimeout)
	}
	if cfg.IdleTimeout > 0 {
		opts.IdleTimeout = time.Duration(cfg.IdleTimeout)
	}
	var srcs []source.Source
	for _, u := range cfg.Sources {
		s, err := source.New(u, opts)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", u, err)
		}
		srcs = append(srcs, s)
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	// One codec for the store, the WAN and the mesh: its encoder and
	// decoder are expensive to make.
	codec, err := chunk.NewCodec(chunk.CompressDefault)
	if err != nil {
		return nil, err
	}
	n.store, err = store.Open(filepath.Join(cfg.DataDir, "store"), store.Options{Logger: n.log, Codec: codec, Damaged: n.storeDamaged})
	if err != nil {
		return nil, err
	}
	for i, c := range cfg.followed() {
		f, err := n.newFollower(c, i == 0)
		if err != nil {
			n.store.Close()
			return nil, err
		}
		n.followers = append(n.followers, f)
	}
	n.sched = schedule.New(schedule.Config{
		Channels: len(n.followers),
		Check: func(ctx context.Context, i int, trigger string) (api.CheckResult, *manifest.Manifest) {
			return n.followers[i].check(ctx, trigger)
		},
		Next:      func(i int, now time.Time) time.Time { return n.followers[i].nextCheck(now) },
		Collect:   n.collect,
		UpdateNow: n.caps.updateNow,
		Published: n.publishNext,
	})
	n.wan = &wanSource{codec: codec, st: n.store, followers: n.followers, site: cfg.Mesh.SiteKey != "", verifyFailed: n.verifyFailed}
	var chunks pipeline.Source = n.wan

	if cfg.Mesh.SiteKey != "" {
		key, err := LoadSiteKey(cfg.Mesh.SiteKey)
		if err != nil {
			n.close()
			return nil, err
		}
		n.siteID = siteFingerprint(key)
		mc := mesh.DefaultConfig()
		mc.SiteKey = key
		mc.Name = cfg.Name
		mc.GossipAddr = cfg.Mesh.Gossip
		if len(cfg.Mesh.P2P) > 0 {
			mc.P2PAddrs = cfg.Mesh.P2P
		}
		mc.Join = cfg.Mesh.Join
		mc.MDNS = len(cfg.Mesh.Join) == 0
		if cfg.Mesh.MDNS != nil {
			mc.MDNS = *cfg.Mesh.MDNS
		}
		mc.Role = cfg.Mesh.Role
		mc.IdentityFile = filepath.Join(cfg.DataDir, "p2p.key")
		// Its pipeline's lanes and a site's share of owner fetches take
		// 2 x --concurrency; a member alone widens its fetches up to
		// --max-concurrency; a member of a site of two asks its peer for
		// up to half the site's WAN fetches; an owner's own lane widens
		// up to its share of --site-max-wan-requests.
		mc.Concurrency = max(cfg.Concurrency*2, cfg.MaxConcurrency, cfg.Mesh.WANRequests, cfg.Mesh.MaxWANRequests)
		mc.SiteWANRequests = cfg.Mesh.WANRequests
		mc.SiteWANRequestsMax = cfg.Mesh.MaxWANRequests
		// Peers may ask for as many chunks at once as this node's share.
		mc.ServeConcurrency = max(mesh.DefaultServeConcurrency, cfg.Mesh.WANRequests)
		if cfg.Mesh.SiteTimeout > 0 {
			mc.SiteTimeout = time.Duration(cfg.Mesh.SiteTimeout)
		}
		mc.FallbackDelay = time.Duration(cfg.Mesh.FallbackDelay)
		mc.UploadThrottle = n.caps.lan
		mc.Logger = n.log
		mc.Codec = codec
		mc.Delegate = meshDelegate{n}
		n.mesh, err = mesh.New(mc, n.store)
		if err != nil {
			n.close()
			return nil, err
		}
		chunks = n.mesh // asks the site first, and falls back to n.wan itself
		// Peers hand out signed heads and manifests when every source is down.
		srcs = append(srcs, siteSource{n.mesh})
	}
	if err := n.newProxy(); err != nil {
		n.close()
		return nil, err
	}
	n.list = source.NewList(srcs, n.log)
	n.wan.list = n.list
	n.chunks = pipeline.Retry(chunks, 0, n.log)
	return n, nil
}

func (n *Node) close() {
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			n.log.Error("close store", "err", err)
		}
	}
	if n.list != nil {
		n.list.Close()
	}
	if n.proxy != nil {
		n.proxy.Close()
	}
	if n.mesh != nil {
		// Releases the mesh's ports if its Run never ran; Run closes its own.
		_ = n.mesh.Close()
	}
}

// Run serves the node until ctx is cancelled: the API, the mesh, the scheduled
// checks. In-flight work stops on cancel and nothing half-written stays visible.
// Every listener is bound first: a taken port fails Run before anything starts.
// Every goroutine Run starts is in its errgroup, and Run closes every server
// before it returns, within stopBound of the stop.
func (n *Node) Run(ctx context.Context) (err error) {
	stopped := true // false: work outlived the stop bound; the store stays open
	defer func() {
		if stopped {
			n.close()
		} else if n.list != nil {
			n.list.Close()
		}
	}()
	srvs, err := n.listen()
	if err != nil {
		return fmt.Errorf("run node: %w", err)
	}
	defer srvs.close()
	n.started = time.Now()
	for _, f := range n.followers {
		f.recover(ctx)
	}
	n.loadRoots()
	n.gossipRunning()

	g, ctx := errgroup.WithContext(ctx)
	if n.mesh != nil {
		// The mesh's ports are bound (listen); the HTTP servers start once
		// its gossip runs, or once it failed and cancelled ctx.
		g.Go(func() error { return n.mesh.Run(ctx) })
		select {
		case <-n.mesh.Ready():
		case <-ctx.Done():
		}
	}
	srvs.serve(ctx, g)
	apiAddr, serveAddr := n.stat.addrs()
	n.log.Info("node running", "api", apiAddr, "channel", n.cfg.Channel, "channels", len(n.followers), "sources", len(n.cfg.Sources),
		"serve_repo", serveAddr, "site", n.siteID)
	g.Go(func() error { n.sampleBytes(ctx); return nil })
	g.Go(func() error { n.scrubLoop(ctx); return nil })
	g.Go(func() error { n.siteLoop(ctx); return nil })
	if n.reportToken != "" && n.mesh != nil {
		g.Go(func() error { n.reportLoop(ctx); return nil })
	}
	g.Go(func() error { n.probeStore(ctx); return nil })
	g.Go(func() error {
		n.awaitSite(ctx)
		n.sched.Run(ctx)
		return nil
	})
	// ctx, the group's, ends with the stop or with the first part that fails.
	if !waitBounded(ctx, g) {
		stopped = false
		err = fmt.Errorf("stop node: work still running %s after the stop was asked; leaving it and the chunk store to the kernel", stopBound)
		n.log.Error("node stopped", "err", err)
		return err
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	n.log.Info("node stopped")
	return err
}

// stopBound is how long a stopping node waits for its work to end. With the
// store's own close bound it keeps a stop under 10 s whatever hangs: a
// flush to a folder that is gone, a peer that never answers.
const stopBound = 7 * time.Second

// waitBounded waits for g, and reports false if it is still running
// stopBound after ctx ended.
func waitBounded(ctx context.Context, g *errgroup.Group) bool {
	done := make(chan struct{})
	go func() { _ = g.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
	}
	select {
	case <-done:
		return true
	case <-time.After(stopBound):
		return false
	}
}

// newHTTPServer serves h with bounded header reads; requests see ctx, so long
// streams (the dashboard's events) end when the node stops.
func newHTTPServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
}

// awaitSite gives a joining node a few seconds to see its site before the first
// check, so that it agrees with the others on who owns which chunk instead of
// fetching everything from the WAN alone.
func (n *Node) awaitSite(ctx context.Context) {
	if n.mesh == nil || len(n.cfg.Mesh.Join) == 0 {
		return
	}
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		alive := 0
		for _, m := range n.mesh.Members() {
			if m.State == "alive" {
				alive++
			}
		}
		if alive > 1 {
			// The members we see learn of us by gossip too; until they do,
			// their connection gaters refuse us. Give it a moment.
			select {
			case <-ctx.Done():
			case <-time.After(siteSettle):
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			n.log.Warn("no site member answered yet; checking alone", "join", n.cfg.Mesh.Join)
			return
		case <-tick.C:
		}
	}
}

// siteSettle is how long a joining node waits, once it sees its site, for
// the members to learn of it in turn.
const siteSettle = 2 * time.Second

// nextCheck is when f checks again after a check at now that did not fail:
// after the interval, sooner when it waits on a staged rollout or a
// maintenance window. The scheduler retries a failed check sooner itself.
func (f *follower) nextCheck(now time.Time) time.Time {
	next := now.Add(f.interval())
	for _, w := range []time.Time{f.rolloutWake(), f.windowWake()} {
		if !w.IsZero() && w.Before(next) {
			next = w
		}
	}
	return next
}

// publishNext records each channel's next check time for the status.
func (n *Node) publishNext(next []time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, f := range n.followers {
		f.st.nextCheck = next[i]
	}
}

func (n *Node) interval() time.Duration {
	iv := time.Duration(n.cfg.CheckInterval)
	j := time.Duration(n.cfg.CheckJitter)
	if j <= 0 {
		return iv
	}
	return iv - j + time.Duration(rand.Int64N(int64(2*j)+1))
}

// Check implements api.Backend: it checks every channel, and returns the
// first channel's result; the others' show in the status.
func (n *Node) Check(ctx context.Context, wait bool) (api.CheckResult, error) {
	return n.sched.Ask(ctx, 0, wait)
}

// Retry implements api.Backend: it clears the bad mark of every release of
// version of channel, so the next check may apply it again.
func (n *Node) Retry(ctx context.Context, channel, version string) (api.RetryResult, error) {
	f, err := n.follower(channel)
	if err != nil {
		return api.RetryResult{}, fmt.Errorf("retry %s: %w", version, err)
	}
	res := api.RetryResult{Cleared: []string{}}
	for _, r := range f.inst.Releases() {
		if r.State != install.StateBad || (r.Name != version && !isReleaseOf(r.Name, version)) {
			continue
		}
		if err := f.inst.ClearBad(r.Name); err != nil {
			return res, fmt.Errorf("retry %s: %w", version, err)
		}
		res.Cleared = append(res.Cleared, r.Name)
	}
	if len(res.Cleared) == 0 {
		return res, fmt.Errorf("retry %s: %w", version, api.ErrNotBad)
	}
	f.log.Info("bad mark cleared by the operator; the next check applies the release again", "release", version, "names", res.Cleared)
	return res, nil
}

// Rollback implements api.Backend.
func (n *Node) Rollback(ctx context.Context, channel, reason string) (api.RollbackResult, error) {
	f, err := n.follower(channel)
	if err != nil {
		return api.RollbackResult{}, fmt.Errorf("rollback: %w", err)
	}
	return f.rollback(ctx, reason)
}

// rollback switches f back to its previous release, marking the current one
// bad with reason.
func (f *follower) rollback(ctx context.Context, reason string) (api.RollbackResult, error) {
	if reason == "" {
		reason = "rolled back by hand"
	}
	from := f.inst.Current()
	to, err := f.inst.Rollback(ctx, reason)
	if err != nil {
		if f.inst.Previous() == "" {
			return api.RollbackResult{}, fmt.Errorf("%w: %v", api.ErrNoPrevious, err)
		}
		return api.RollbackResult{}, err
	}
	f.stat.rolledBack()
	f.event("rollback", fmt.Sprintf("rolled back from %s to %s: %s", from, to, reason))
	f.gossipRunning()
	return api.RollbackResult{From: from, To: to}, nil
}
