package node

import (
	"context"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/mesh"
	"github.com/patchmesh/patchmesh/node/api"
)

// event records an error or refusal for the status and logs it.
func (n *Node) event(kind, msg string) {
	n.log.Warn(msg, "kind", kind)
	n.stat.event(kind, msg)
}

func (n *Node) verifyFailed(msg string) {
	n.stat.verifyFailed("")
	n.event("verify", msg)
}

// chunkBytes reads the chunk byte counters where they are kept, where the
// bytes move: the WAN source counts what it reads from the update sources,
// the mesh what peers sent. Both count wire bytes of verified chunks.
func (n *Node) chunkBytes() (wan, lan int64) {
	wan = n.wan.bytes.Load()
	if n.mesh != nil {
		lan = n.mesh.Stats().LANBytes
	}
	return wan, lan
}

func (n *Node) countServed(b int64) { n.stat.served(b) }

func (n *Node) setKnownManifest(m *manifest.Manifest) {
	// Only --serve-repo reads the set. A large release's CIDs would otherwise
	// stay in the heap for nothing, and be scanned by every collection.
	if n.cfg.ServeRepo == "" {
		return
	}
	n.stat.addKnown(m)
}

// sampleBytes keeps the WAN/LAN history for the dashboard's chart.
func (n *Node) sampleBytes(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		wan, lan := n.chunkBytes()
		n.stat.sample(wan, lan)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *follower) currentRecord() *releaseRecord {
	cur := f.inst.Current()
	if cur == "" {
		return nil
	}
	if r, ok := f.records()[cur]; ok {
		return &r
	}
	return nil
}

// gossipRunning tells the site which release this node runs, after anything
// that may have switched it: an apply, a rollback, a restart. Member metadata
// has room for one channel: the first.
func (n *Node) gossipRunning() {
	if n.mesh == nil {
		return
	}
	var seq uint64
	if cur := n.followers[0].currentRecord(); cur != nil {
		seq = cur.Sequence
	}
	n.mesh.SetRunning(seq)
	n.summarySoon() // the site view shows the release a member runs
}

// summarySoon wakes the site loop to gossip this node's summary now rather
// than at the end of its period. It does not block.
func (n *Node) summarySoon() {
	select {
	case n.summaryNow <- struct{}{}:
	default: // already woken
	}
}

// releases lists f's releases, newest first, with its current and previous.
func (f *follower) releases() (releases []api.ReleaseInfo, current, previous *api.ReleaseInfo) {
	recs := f.records()
	for _, r := range f.inst.Releases() {
		ri := api.ReleaseInfo{Name: r.Name, State: r.State, Reason: r.Reason, Installed: r.Installed, Activated: r.Activated}
		if rec, ok := recs[r.Name]; ok {
			ri.Version, ri.Sequence, ri.Files, ri.Bytes = rec.Version, rec.Sequence, rec.Files, rec.Bytes
			ri.FromWAN, ri.FromLAN, ri.FromLocal, ri.Rebuilt = rec.FromWAN, rec.FromLAN, rec.FromLocal, rec.Rebuilt
		} else if v, s, ok := splitName(r.Name); ok {
			ri.Version, ri.Sequence = v, s
		}
		releases = append(releases, ri)
		switch r.State {
		case "current":
			c := ri
			current = &c
		case "previous":
			p := ri
			previous = &p
		}
	}
	if releases == nil {
		releases = []api.ReleaseInfo{}
	}
	sort.SliceStable(releases, func(i, j int) bool { return releases[i].Sequence > releases[j].Sequence })
	return releases, current, previous
}

// channelStatusLocked is f's part of the status, with its release and
// rollout parts read before n.mu was taken. Called with n.mu held.
func (f *follower) channelStatusLocked(cs api.ChannelStatus, now time.Time) api.ChannelStatus {
	cs.Name, cs.InstallDir = f.channel, f.dir
	cs.LastCheck, cs.NextCheck, cs.Checking = f.st.lastCheck, f.st.nextCheck, f.st.checking
	cs.Window = f.windowStatusLocked(now)
	if p := f.st.progress; p != nil {
		c := *p
		cs.Progress = &c
	}
	return cs
}

// Status implements api.Backend. Its top-level release, check, rollout and
// window fields are the first channel's; Channels has every channel's.
func (n *Node) Status() api.Status {
	first := n.followers[0]
	releases, current, previous := first.releases()
	chans := make([]api.ChannelStatus, len(n.followers))
	for i, f := range n.followers {
		_, chans[i].Current, chans[i].Previous = f.releases()
		chans[i].Rollout = f.rolloutStatus()
	}

	var srcs []api.SourceState
	for _, h := range n.list.Health() {
		srcs = append(srcs, api.SourceState{URL: h.URL, Healthy: h.Healthy, Failures: h.Failures, FailuresTotal: h.FailuresTotal, LastError: h.LastError,
			LastErrorAt: h.LastErrorAt, LastOK: h.LastOK, RetryAt: h.RetryAt, BytesRead: h.BytesRead})
	}
	var peers []api.Peer
	info := api.NodeInfo{Name: n.cfg.Name, Site: n.siteID, Role: n.cfg.Mesh.Role, Version: n.cfg.Version, Started: n.started,
		UptimeSeconds: time.Since(n.started).Seconds(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	var meshServed, lanChunks int64
	wan, lan := n.chunkBytes()
	byPeer := make(map[string]int64)
	if n.mesh != nil {
		lanChunks = n.mesh.Stats().LANChunks
		info.PeerID = n.mesh.PeerID()
		info.Gossip = n.mesh.GossipAddr()
		for _, m := range n.mesh.Members() {
			peers = append(peers, api.Peer{Name: m.Name, PeerID: m.PeerID, Addr: m.Addr, State: m.State, Role: m.Role,
				Holding: m.Holding, Running: m.Running, Self: m.Self, BytesFrom: m.BytesFrom, BytesTo: m.BytesTo})
			meshServed += m.BytesTo
			if m.BytesFrom > 0 {
				byPeer[m.Name] = m.BytesFrom
			}
		}
	}
	if peers == nil {
		peers = []api.Peer{}
	}
	var alive, known int
	for _, p := range peers {
		if !p.Self {
			known++
			if p.State == mesh.StateAlive {
				alive++
			}
		}
	}
	chunks, bytes := n.store.Usage()
	integ := n.store.Integrity()
	capsNow := n.caps.status()
	site := n.siteView()

	own := n.stat.snapshot()

	n.mu.Lock()
	defer n.mu.Unlock()
	info.API, info.ServeRepo = own.apiAddr, own.serveAddr
	now := time.Now()
	st := api.Status{
		Node: info, Channel: n.cfg.Channel, Sources: srcs, LastCheck: first.st.lastCheck, NextCheck: first.st.nextCheck,
		Checking: first.st.checking, Current: current, Previous: previous, Releases: releases, Peers: peers,
		Counters: own.counters, Store: api.StoreInfo{Chunks: chunks, Bytes: bytes, QuotaBytes: n.cfg.QuotaBytes,
			DamagedChunks: integ.Dropped, ScrubPasses: integ.ScrubPasses, ScrubChunks: integ.ScrubChunks, ScrubBytes: integ.ScrubBytes},
		Rollout: chans[0].Rollout, Caps: capsNow, Window: first.windowStatusLocked(now), Site: site,
	}
	for i, f := range n.followers {
		st.Channels = append(st.Channels, f.channelStatusLocked(chans[i], now))
	}
	st.Store.LastScrub = own.lastScrub
	if p := first.st.progress; p != nil {
		c := *p
		st.Progress = &c
	}
	st.Node.PeersAlive, st.Node.PeersKnown = alive, known
	if n.mesh != nil {
		st.Node.WANFetches = n.mesh.WANFetches()
	}
	st.Counters.SourceFailures = 0
	st.Counters.SourceFailuresByURL = make(map[string]int64)
	for _, s := range srcs {
		st.Counters.SourceFailures += s.FailuresTotal
		st.Counters.SourceFailuresByURL[s.URL] = s.FailuresTotal
	}
	st.Counters.ChunksFetchedWAN, st.Counters.ChunksFetchedLAN = n.wan.chunks.Load(), lanChunks
	st.Bytes = api.Bytes{WAN: wan, LAN: lan, Served: own.servedBytes + meshServed, ByPeer: byPeer}
	if n.proxy != nil {
		// The proxy counts where its bytes move; they are WAN, LAN and served
		// bytes of this node like the chunks'.
		ps := n.proxy.Stats()
		st.Bytes.WAN += ps.UpstreamBytes
		st.Bytes.LAN += ps.PeerBytes
		st.Bytes.Served += ps.ServedPeerBytes
		p := api.ProxyStatus(ps)
		st.Proxy = &p
	}
	if t := st.Bytes.WAN + st.Bytes.LAN; t > 0 {
		st.Bytes.SavingPercent = 100 * float64(st.Bytes.LAN) / float64(t)
	}
	st.Bytes.History = append(own.samples, api.BytesSample{Time: time.Now(), WAN: wan, LAN: lan})
	st.Errors = own.events
	return st
}

// splitName parses "<seq>-<version>" install names.
func splitName(name string) (string, uint64, bool) {
	s, v, ok := strings.Cut(name, "-")
	if !ok {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	return v, seq, err == nil
}

func (f *follower) progressAdd(chunks int, bytes int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.st.progress; p != nil {
		p.ChunksDone += chunks
		p.BytesDone += bytes
	}
}

func (f *follower) setPhase(phase string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.st.progress; p != nil {
		p.Phase = phase
	}
}
