package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/patchmesh/patchmesh/chunk"
)

// Store is the node's verified chunk store.
type Store interface {
	Has(ctx context.Context, c cid.Cid) (bool, error)
	// Get returns the raw chunk, checked against c, or an error wrapping
	// store.ErrNotFound when c is absent or was found damaged and dropped.
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	// AppendWire appends the chunk as stored, compressed or raw, to dst to
	// serve it, checked (a damaged chunk is dropped; the error then wraps
	// store.ErrNotFound as for an absent one), and returns the extended
	// slice: in dst's array where chunk.MaxSize fits in its spare capacity.
	AppendWire(ctx context.Context, c cid.Cid, dst []byte) ([]byte, error)
	// PutVerifiedWire stores raw, already checked against c, keeping wire,
	// the form it came in, when that is a smaller zstd frame.
	PutVerifiedWire(ctx context.Context, c cid.Cid, raw, wire []byte) error
}

// Stats are the mesh's counters since New. They count what moves through the
// mesh; WAN bytes are the Delegate's to count, since its FetchChunk moves them
// (and the node reads its WAN without a mesh too).
type Stats struct {
	LANBytes       int64 // wire bytes of verified chunks received from peers
	LANChunks      int64
	LocalChunks    int64 // Fetch calls answered from the store
	ServedBytes    int64 // wire bytes of chunks served to peers
	ServedChunks   int64
	VerifyFailures int64 // chunks from peers that did not match their CID
	PeerErrors     int64 // failed requests to peers (transport or protocol)
	Penalties      int64 // times a peer was put on the penalty list
}

// Mesh is one node's membership of its site and its chunk exchange. Create it
// with New, bind its ports with Listen and run it with Run, which closes
// everything when it returns (Run binds them itself if Listen was not
// called; Close releases them if Run is never called). Fetch works before
// and after Run too, from the store and the WAN only.
type Mesh struct {
	cfg  Config
	log  *slog.Logger
	st   Store
	node Delegate // cfg.Delegate
	priv crypto.PrivKey
	pid  peer.ID
	name string

	// lmu guards bound and started, so Listen, Run and Close each see
	// what the others did.
	lmu     sync.Mutex
	bound   *bound        // the ports Listen bound, until Run or Close takes them
	started bool          // Run or Close was called: ports are theirs to close
	ready   chan struct{} // closed when the gossip runs
	done    chan struct{} // closed when Run has stopped serving
	// Set before ready is closed, read after.
	host       host.Host
	ml         *memberlist.Memberlist
	gossipAddr string
	// serveCtx bounds serving; it outlives Run's ctx by the leave, so
	// requests in flight finish while peers learn we are leaving.
	serveCtx    context.Context
	serveCancel context.CancelFunc

	members   *table
	holding   atomic.Uint64
	status    atomic.Pointer[[]byte] // SetStatus
	running   atomic.Uint64
	leaving   atomic.Bool
	inflight  atomic.Int64 // requests being answered (serveOne)
	holdingCh chan struct{}
	sums      *summaries // the site view's gossip (summary.go)

	fetchGroup singleflight.Group // one network fetch per CID for local callers
	wanGroup   singleflight.Group // one WAN fetch per CID, shared by Fetch and serving
	reqSem     chan struct{}
	wanLimit   *limiter
	wanWin     *wanWindow
	serveSem   chan struct{}
	bufs       sync.Pool // *[]byte scratch buffers for responses

	peerMu   sync.Mutex
	peerSem  map[peer.ID]*limiter
	idle     map[peer.ID][]*chunkStream // kept chunk streams, see streams.go
	health   map[peer.ID]*peerHealth
	counters map[peer.ID]*peerCounters

	hmu      sync.Mutex
	closing  bool
	handlers sync.WaitGroup

	stats struct {
		lanBytes, lanChunks, localChunks                      atomic.Int64
		servedBytes, servedChunks, verifyFailures, peerErrors atomic.Int64
		penalties                                             atomic.Int64
	}
}

// New validates cfg and loads the identity; it starts no listener.
// The store is the node's chunk store, which the mesh reads and fills; all
// else it needs of the node comes through cfg.Delegate.
func New(cfg Config, st Store) (*Mesh, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new mesh: %w", err)
	}
	if st == nil {
		return nil, fmt.Errorf("new mesh: a store is required: %w", ErrConfig)
	}
	priv, err := loadIdentity(cfg.IdentityFile)
	if err != nil {
		return nil, fmt.Errorf("new mesh: %w", err)
	}
	pid, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("new mesh: peer id: %w", err)
	}
	name := cfg.Name
	if name == "" {
		hn, err := os.Hostname()
		if err != nil || hn == "" {
			hn = "node"
		}
		s := pid.String()
		name = hn + "-" + s[len(s)-6:]
		if len(name) > maxNameLen {
			name = name[len(name)-maxNameLen:]
		}
	}
	m := &Mesh{
		cfg:       cfg,
		log:       cfg.Logger.With("self", name), // "member" names the other one in its records
		st:        st,
		node:      cfg.Delegate,
		priv:      priv,
		pid:       pid,
		name:      name,
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
		members:   newTable(),
		holdingCh: make(chan struct{}, 1),
		reqSem:    make(chan struct{}, cfg.Concurrency),
		serveSem:  make(chan struct{}, cfg.ServeConcurrency),
		peerSem:   map[peer.ID]*limiter{},
		idle:      map[peer.ID][]*chunkStream{},
		health:    map[peer.ID]*peerHealth{},
		counters:  map[peer.ID]*peerCounters{},
	}
	m.sums = newSummaries(name, m.members.has, func() int { return max(1, m.members.liveCount()) })
	m.wanWin = newWANWindow()
	m.wanLimit = newLimiter(m.WANShare)
	m.bufs.New = func() any { b := make([]byte, 0, respRoom+chunk.MaxSize); return &b }
	return m, nil
}

// Ready is closed once Run has its listeners up and the gossip running, so
// GossipAddr and P2PAddrs can be read. If Run fails before that, it never
// closes: wait on Run's return too.
func (m *Mesh) Ready() <-chan struct{} { return m.ready }

// GossipAddr is the address peers join this node at ("ip:port"), with the
// port memberlist bound when GossipAddr's port was 0. Empty before Ready.
func (m *Mesh) GossipAddr() string {
	select {
	case <-m.ready:
		return m.gossipAddr
	default:
		return ""
	}
}

// PeerID is this node's libp2p peer id.
func (m *Mesh) PeerID() string { return m.pid.String() }

// Name is this node's member name.
func (m *Mesh) Name() string { return m.name }

// P2PAddrs are this node's libp2p listen addresses. Empty before Ready.
func (m *Mesh) P2PAddrs() []string {
	select {
	case <-m.ready:
	default:
		return nil
	}
	var out []string
	for _, a := range m.host.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// active reports whether Run is serving, so the site can be asked.
func (m *Mesh) active() bool {
	select {
	case <-m.ready:
	default:
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Run starts memberlist (and mDNS) on the ports Listen bound, binding them
// first if Listen was not called, joins the site and serves until ctx is
// cancelled; then it announces it is leaving, leaves (bounded), closes
// every port and returns nil. It may be called once, and not after Close.
func (m *Mesh) Run(ctx context.Context) error {
	return m.run(ctx, runOptions{corrupt: liar()})
}

// runOptions are the faults only tests ask for, given to run rather than
// kept in Mesh, so a production Mesh holds no test hooks.
type runOptions struct {
	// crash makes shutdown skip announcing and leaving, as a killed
	// process would, so peers must detect the death.
	crash bool
	// corrupt alters outgoing chunk bytes: a lying peer cannot be made
	// otherwise, since every honest path verifies. Run sets it only in
	// builds for the lying-peer integration test (liar.go).
	corrupt func([]byte) []byte
}

func (m *Mesh) run(ctx context.Context, opts runOptions) error {
	m.lmu.Lock()
	if m.started {
		m.lmu.Unlock()
		return errors.New("run mesh: already run or closed")
	}
	m.started = true
	b := m.bound
	m.bound = nil
	m.lmu.Unlock()
	defer close(m.done)
	if b == nil {
		var err error
		if b, err = m.bind(); err != nil {
			return fmt.Errorf("run mesh: %w", err)
		}
	}
	m.serveCtx, m.serveCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer m.serveCancel()

	h := b.host
	m.host = h
	h.SetStreamHandler(ProtocolID, func(s network.Stream) { m.handleStream(s, opts.corrupt) })
	h.SetStreamHandler(DocProtocolID, m.handleDoc)
	h.SetStreamHandler(ObjectProtocolID, m.handleObject)

	ml, err := memberlist.Create(b.gossip)
	if err != nil {
		b.close()
		return fmt.Errorf("run mesh: start gossip on %s: %w", m.cfg.GossipAddr, err)
	}
	m.ml = ml
	// LocalNode points into memberlist's state, which UpdateNode rewrites
	// under a lock we cannot take: read it once, before metaLoop runs.
	ln := ml.LocalNode()
	selfIP, selfPort := ln.Addr, int(ln.Port)
	m.gossipAddr = net.JoinHostPort(selfIP.String(), strconv.Itoa(selfPort))
	close(m.ready)
	m.log.Info("mesh up", "gossip", m.gossipAddr, "peer", m.pid, "p2p", h.Addrs())

	g, gctx := errgroup.WithContext(ctx)
	if len(m.cfg.Join) > 0 {
		g.Go(func() error { m.joinLoop(gctx, m.cfg.Join); return nil })
	}
	g.Go(func() error { m.metaLoop(gctx); return nil })
	g.Go(func() error { m.sums.resendLoop(gctx); return nil })
	if m.cfg.MDNS {
		g.Go(func() error { m.mdnsLoop(gctx, selfIP, selfPort); return nil })
	}
	<-ctx.Done()
	_ = g.Wait()
	m.shutdown(opts.crash)
	return nil
}

// bound are the ports Listen bound, not yet in use.
type bound struct {
	host   host.Host
	gossip *memberlist.Config // its Transport holds the bound gossip port
}

// close releases the ports.
func (b *bound) close() {
	_ = b.host.Close()
	_ = b.gossip.Transport.Shutdown()
}

// Listen binds the mesh's ports: the libp2p host's listen addresses and the
// gossip address, TCP and UDP. A taken port fails it and leaves none bound.
// Nothing is served and the site is not joined until Run; a node binds
// every port it has before it starts anything, so a taken one fails it
// before any part runs.
func (m *Mesh) Listen() error {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	if m.started || m.bound != nil {
		return errors.New("listen mesh: already bound, run or closed")
	}
	b, err := m.bind()
	if err != nil {
		return fmt.Errorf("listen mesh: %w", err)
	}
	m.bound = b
	return nil
}

// Close releases the ports Listen bound when Run is not going to run; a
// later Run fails. Once Run was called, Run closes everything itself when
// ctx ends, and Close does nothing.
func (m *Mesh) Close() error {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	if m.started {
		return nil
	}
	m.started = true
	if m.bound != nil {
		m.bound.close()
		m.bound = nil
	}
	return nil
}

// bind starts the libp2p host and binds the gossip port, both closed again
// if either fails.
func (m *Mesh) bind() (*bound, error) {
	mc, err := m.memberlistConfig()
	if err != nil {
		return nil, err
	}
	// libp2p's default resource manager, without its Prometheus trace
	// reporter: it costs a few percent of the CPU per stream event and
	// nothing reads it (libp2p.DisableMetrics does not reach it).
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()), rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.ResourceManager(rm),
		libp2p.Identity(m.priv),
		libp2p.ListenAddrStrings(m.cfg.P2PAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.DefaultSecurity,
		libp2p.DefaultMuxers,
		libp2p.ConnectionGater(gater{m}),
		// LAN only: no relays, NAT traversal, reachability probes or
		// address discovery through other peers.
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.DisableMetrics(),
		libp2p.Ping(false),
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirst)),
	)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	if err := bindGossip(mc); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("bind gossip on %s: %w", m.cfg.GossipAddr, err)
	}
	return &bound{host: h, gossip: mc}, nil
}

// bindGossip binds mc's gossip port as memberlist.Create would, and gives
// the transport to mc, so Create binds nothing. Port 0 takes a free port for
// TCP and UDP together, which may race with other binds: retried, as
// memberlist does.
func bindGossip(mc *memberlist.Config) error {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger}
	tries := 1
	if mc.BindPort == 0 {
		tries = 10
	}
	var nt *memberlist.NetTransport
	var err error
	for range tries {
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
		mc.AdvertisePort = mc.BindPort
	}
	mc.Transport = nt
	return nil
}

// Shutdown bounds.
const (
	leaveAnnounceTimeout = 1 * time.Second
	leaveTimeout         = 4 * time.Second
	drainTimeout         = 5 * time.Second
	metaUpdateTimeout    = 5 * time.Second
)

// shutdown leaves the site gracefully, within bounds, and closes everything;
// with crash it leaves as a killed process does: without a word.
func (m *Mesh) shutdown(crash bool) {
	if !crash {
		// Announce first, so peers route chunks elsewhere before we go.
		m.leaving.Store(true)
		if err := m.ml.UpdateNode(leaveAnnounceTimeout); err != nil {
			m.log.Debug("announce leaving", "err", err)
		}
		if err := m.ml.Leave(leaveTimeout); err != nil {
			// Peers that stop at the same time cannot confirm it; the others
			// see the leaving mark, or find us gone. Nothing to act on.
			m.log.Info("leave site unconfirmed", "err", err)
		}
	}
	if err := m.ml.Shutdown(); err != nil {
		m.log.Warn("stop gossip", "err", err)
	}
	m.hmu.Lock()
	m.closing = true
	m.hmu.Unlock()
	if !crash {
		// Requests in flight are mostly chunks a peer asked us, their owner,
		// to fetch from the WAN: cut off, the bytes already fetched are lost
		// and the peer fetches them again. Let them finish, within a bound.
		deadline := time.Now().Add(min(drainTimeout, m.cfg.RequestTimeout))
		for m.inflight.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	m.serveCancel()
	if err := m.host.Close(); err != nil {
		m.log.Warn("stop libp2p host", "err", err)
	}
	m.handlers.Wait()
	m.log.Info("mesh down")
}

// memberlistConfig is memberlist's LAN configuration bound to GossipAddr,
// encrypted with the site key.
func (m *Mesh) memberlistConfig() (*memberlist.Config, error) {
	hostStr, portStr, err := net.SplitHostPort(m.cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", m.cfg.GossipAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", m.cfg.GossipAddr, err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = m.name
	mc.BindAddr = hostStr
	// Port 0: memberlist binds a free port for TCP and UDP together and
	// advertises it; a concrete port is advertised as is.
	mc.BindPort = port
	mc.AdvertisePort = port
	if ip := net.ParseIP(hostStr); ip != nil && !ip.IsUnspecified() {
		// Advertise what we bound (loopback in tests), not a guessed private IP.
		mc.AdvertiseAddr = hostStr
	}
	// A failure detector for busy hosts. With the LAN defaults (probe 1s,
	// ack within 500ms, dead 4s after two peers confirm a suspicion) a node
	// starved of CPU for a few seconds is declared dead while it still
	// fetches the chunks it owns, and its successors fetch them again (53
	// "member dead" events in one run of 4 nodes under -race on a core shared
	// with 14 busy loops; none with these settings). A dead owner costs
	// little time anyway, since a request
	// that fails moves on to the next member by the same order without
	// waiting for gossip; so suspicion lasts 24s to 192s (more in large
	// sites), and a node that notices it is slow itself (Lifeguard's
	// awareness) stretches its own timeouts up to 16x.
	mc.ProbeInterval = 3 * time.Second
	mc.ProbeTimeout = 1500 * time.Millisecond
	mc.SuspicionMult = 8
	mc.SuspicionMaxTimeoutMult = 8
	mc.AwarenessMaxMultiplier = 16
	mc.SecretKey = m.cfg.SiteKey
	mc.Delegate = delegate{m}
	mc.Events = delegate{m}
	mc.Logger = slog.NewLogLogger(m.log.Handler(), slog.LevelDebug)
	return mc, nil
}

// quicDialDelay is how long a dial waits for TCP before trying QUIC too.
const quicDialDelay = 250 * time.Millisecond

// tcpFirst ranks dials TCP first, QUIC a moment later: on a LAN, where
// nothing blocks TCP, go-libp2p moves chunks about twice as fast over TCP as
// over QUIC (measured by BenchmarkLANTransfer), unlike libp2p's default
// ranker which prefers QUIC.
func tcpFirst(addrs []ma.Multiaddr) []network.AddrDelay {
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		d := time.Duration(0)
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			d = quicDialDelay
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	return out
}

// localMeta is the metadata this node gossips about itself.
func (m *Mesh) localMeta() nodeMeta {
	nm := nodeMeta{peerID: m.pid, role: m.cfg.Role, holding: m.holding.Load(), running: m.running.Load(), leaving: m.leaving.Load()}
	if st := m.status.Load(); st != nil {
		nm.status = *st
	}
	if m.host != nil {
		nm.addrs = rankAddrs(m.host.Addrs(), m.cfg.GossipAddr)
	}
	return nm
}

// rankAddrs orders libp2p addresses for gossip, best first: on the gossip
// address's IP, then other non-loopback ones, then loopback; TCP before
// QUIC within each rank, since both ends surely speak it.
func rankAddrs(addrs []ma.Multiaddr, gossipAddr string) []ma.Multiaddr {
	gossipHost, _, _ := net.SplitHostPort(gossipAddr)
	gip := net.ParseIP(gossipHost)
	rank := func(a ma.Multiaddr) int {
		ip, err := manet.ToIP(a)
		r := 4
		switch {
		case err != nil:
			r = 8
		case gip != nil && ip.Equal(gip):
			r = 0
		case ip.IsLoopback():
			if gip == nil || !gip.IsLoopback() {
				r = 6
			}
		}
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			r++
		}
		return r
	}
	out := append([]ma.Multiaddr(nil), addrs...)
	// Stable insertion sort: a handful of addresses.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && rank(out[j]) < rank(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// SetHolding gossips, in our metadata, the release sequence this node holds
// completely, so peers can prefer complete holders. It does not block.
func (m *Mesh) SetHolding(seq uint64) {
	m.holding.Store(seq)
	select {
	case m.holdingCh <- struct{}{}:
	default: // an update is already pending; it will carry seq
	}
}

// SetRunning gossips the release sequence this node runs, for peers' views:
// after a rollback it is below what it holds. It does not block.
func (m *Mesh) SetRunning(seq uint64) {
	m.running.Store(seq)
	select {
	case m.holdingCh <- struct{}{}:
	default:
	}
}

// SetStatus gossips, in our metadata, a small status of the node's own (at
// most MaxStatus bytes; longer is refused), which members read in
// Member.Status. It does not block.
func (m *Mesh) SetStatus(b []byte) error {
	if len(b) > MaxStatus {
		return fmt.Errorf("set status: %d bytes, at most %d", len(b), MaxStatus)
	}
	b = append([]byte(nil), b...)
	m.status.Store(&b)
	select {
	case m.holdingCh <- struct{}{}:
	default: // an update is already pending; it will carry b
	}
	return nil
}

// metaLoop pushes metadata changes to the site.
func (m *Mesh) metaLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.holdingCh:
			if err := m.ml.UpdateNode(metaUpdateTimeout); err != nil {
				m.log.Debug("gossip holding", "err", err)
			}
		}
	}
}

// Join retry bounds.
const (
	joinRetryMin = time.Second
	joinRetryMax = 30 * time.Second
)

// joinLoop joins the configured peers, and again whenever this node finds
// itself alone (the peers were down when it started, or it was partitioned).
func (m *Mesh) joinLoop(ctx context.Context, addrs []string) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if m.ml.NumMembers() > 1 {
			wait = joinRetryMax
			continue
		}
		n, err := m.ml.Join(addrs)
		if n > 0 {
			m.log.Info("joined site", "contacted", n)
			wait = joinRetryMax
			continue
		}
		m.log.Warn("join site failed; retrying", "peers", addrs, "err", err)
		wait = min(max(2*wait, joinRetryMin), joinRetryMax)
	}
}

// Owner returns the name of the member that owns c now, by this node's view.
func (m *Mesh) Owner(c cid.Cid) string {
	if o := hrwOwner(c.Bytes(), m.members.liveCandidates()); o != "" {
		return o
	}
	return m.name
}

// Owned returns a test of whether this node owns a chunk, by the members live
// now, among other live members: only it fetches those from the WAN for the
// site. Alone, it owns nothing. One call serves a whole release's chunks.
func (m *Mesh) Owned() func(cid.Cid) bool {
	live := m.members.liveCandidates()
	if len(live) < 2 {
		return func(cid.Cid) bool { return false }
	}
	return func(c cid.Cid) bool { return hrwOwner(c.Bytes(), live) == m.name }
}

// LiveMembers returns how many members are alive, this node included.
func (m *Mesh) LiveMembers() int { return m.members.liveCount() }

// CapShare returns how many members a site-wide WAN rate cap is shared by,
// in this node's view (see capShare).
func (m *Mesh) CapShare() int {
	live, owners := m.members.counts()
	return capShare(m.cfg.Role == RoleDP, live, owners)
}

// capShare is how many members a site-wide cap is shared by, from the view
// of a member that is a distribution point or not, given the live members
// and the owners among them (the live distribution points if any, else all
// live members). The owners make the site's WAN fetches, so a member that
// is one of them shares the cap with the others only: one distribution point
// among twenty members reads at the whole cap, not a twentieth. An ordinary
// member of a site with distribution points fetches from the WAN only when
// they fail it; it shares the cap with every live member, so that such
// fallback takes a small part of the cap.
func capShare(dp bool, live, owners int) int {
	if dp || owners >= live {
		return max(1, owners)
	}
	return max(1, live)
}

// Members returns every member this node knows, itself included, by name.
func (m *Mesh) Members() []Member {
	ents := m.members.all()
	out := make([]Member, 0, len(ents))
	for _, e := range ents {
		mb := Member{
			Name:    e.name,
			PeerID:  e.meta.peerID.String(),
			Addr:    e.addr,
			State:   e.state,
			Role:    e.meta.role,
			Holding: e.meta.holding,
			Status:  e.meta.status,
			Running: e.meta.running,
			Self:    e.self,
		}
		if e.self {
			// Our own row says what we set, not what gossip has carried
			// back to our member table yet.
			mb.Holding, mb.Running = m.holding.Load(), m.running.Load()
			if st := m.status.Load(); st != nil {
				mb.Status = *st
			}
		}
		if e.state == StateAlive && e.meta.leaving {
			mb.State = StateLeaving
			// A member leaves within these bounds of announcing it. If its
			// leave message was lost (UDP on a busy host), the failure
			// detector, patient by design, would say so only much later.
			if time.Since(e.gone) > leaveAnnounceTimeout+leaveTimeout {
				mb.State = StateLeft
			}
		}
		if pc := m.peerCounters(e.meta.peerID, false); pc != nil {
			mb.BytesFrom, mb.BytesTo = pc.from.Load(), pc.to.Load()
		}
		out = append(out, mb)
	}
	return out
}

// Stats returns the counters.
func (m *Mesh) Stats() Stats {
	s := &m.stats
	return Stats{
		LANBytes:       s.lanBytes.Load(),
		LANChunks:      s.lanChunks.Load(),
		LocalChunks:    s.localChunks.Load(),
		ServedBytes:    s.servedBytes.Load(),
		ServedChunks:   s.servedChunks.Load(),
		VerifyFailures: s.verifyFailures.Load(),
		PeerErrors:     s.peerErrors.Load(),
		Penalties:      s.penalties.Load(),
	}
}

// peerCounters returns p's byte counters, creating them if create is set.
func (m *Mesh) peerCounters(p peer.ID, create bool) *peerCounters {
	m.peerMu.Lock()
	defer m.peerMu.Unlock()
	pc := m.counters[p]
	if pc == nil && create {
		pc = &peerCounters{}
		m.counters[p] = pc
	}
	return pc
}
