package node

import (
	"context"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/rollout"
)

const (
	maxEvents   = 50
	maxSamples  = 360
	sampleEvery = 10 * time.Second
)

// statusState is the live state behind Status, guarded by Node.mu.
type statusState struct {
	apiAddr, serveAddr string
	checking           bool
	nextCheck          time.Time
	lastCheck          *api.CheckResult
	progress           *api.Progress
	events             []api.Event // newest last
	counters           api.Counters
	wanBytes, lanBytes int64
	servedBytes        int64
	byPeer             map[string]int64
	samples            []api.BytesSample
	known              map[cid.Cid]bool // chunks of verified manifests, served by --serve-repo
	lastScrub          *api.ScrubResult
	// The run of damaged chunks the newest "store" event counts (scrub.go).
	damagedRun int
	damagedAt  time.Time
	// Staged rollouts (rollout.go): the rollout of the head's release, and
	// this node's outcome gossiped in its site.
	rollout rolloutState
	outcome rollout.Outcome
}

func (s *statusState) init() {
	s.byPeer = make(map[string]int64)
	s.known = make(map[cid.Cid]bool)
	s.counters.SourceFailuresByURL = make(map[string]int64)
	s.counters.VerifyFailuresByPeer = make(map[string]int64)
}

// event records an error or refusal for the status and logs it.
func (n *Node) event(kind, msg string) {
	n.log.Warn(msg, "kind", kind)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stat.events = append(n.stat.events, api.Event{Time: time.Now(), Kind: kind, Message: msg})
	if len(n.stat.events) > maxEvents {
		n.stat.events = n.stat.events[len(n.stat.events)-maxEvents:]
	}
}

func (n *Node) verifyFailed(msg string) {
	n.mu.Lock()
	n.stat.counters.VerifyFailures++
	n.mu.Unlock()
	n.event("verify", msg)
}

func (n *Node) countWAN(b int64) {
	n.mu.Lock()
	n.stat.wanBytes += b
	n.stat.counters.ChunksFetchedWAN++
	n.mu.Unlock()
}

func (n *Node) countLAN(peer string, b int64) {
	n.mu.Lock()
	n.stat.lanBytes += b
	n.stat.byPeer[peer] += b
	n.stat.counters.ChunksFetchedLAN++
	n.mu.Unlock()
}

func (n *Node) countServed(b int64) {
	n.mu.Lock()
	n.stat.servedBytes += b
	n.stat.counters.ChunksServed++
	n.mu.Unlock()
}

func (n *Node) setKnownManifest(m *manifest.Manifest) {
	// Only --serve-repo reads the set. A large release's CIDs would otherwise
	// stay in the heap for nothing, and be scanned by every collection.
	if n.cfg.ServeRepo == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, f := range m.Files {
		for _, r := range f.Chunks {
			n.stat.known[r.CID] = true
		}
	}
	deltaObjects(n.stat.known, m)
}

// sampleBytes keeps the WAN/LAN history for the dashboard's chart.
func (n *Node) sampleBytes(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		n.mu.Lock()
		n.stat.samples = append(n.stat.samples, api.BytesSample{Time: time.Now(), WAN: n.stat.wanBytes, LAN: n.stat.lanBytes})
		if len(n.stat.samples) > maxSamples {
			n.stat.samples = n.stat.samples[len(n.stat.samples)-maxSamples:]
		}
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) currentRecord() *releaseRecord {
	cur := n.inst.Current()
	if cur == "" {
		return nil
	}
	if r, ok := n.records()[cur]; ok {
		return &r
	}
	return nil
}

// Status implements api.Backend.
func (n *Node) Status() api.Status {
	recs := n.records()
	var releases []api.ReleaseInfo
	var current, previous *api.ReleaseInfo
	for _, r := range n.inst.Releases() {
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

	var srcs []api.SourceState
	for _, h := range n.list.Health() {
		srcs = append(srcs, api.SourceState{URL: h.URL, Healthy: h.Healthy, Failures: h.Failures, FailuresTotal: h.FailuresTotal, LastError: h.LastError,
			LastErrorAt: h.LastErrorAt, LastOK: h.LastOK, RetryAt: h.RetryAt, BytesRead: h.BytesRead})
	}
	var peers []api.Peer
	info := api.NodeInfo{Name: n.cfg.Name, Site: n.siteID, Role: n.cfg.Mesh.Role, Version: BuildVersion, Started: n.started,
		UptimeSeconds: time.Since(n.started).Seconds(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	var meshServed int64
	if n.mesh != nil {
		info.PeerID = n.mesh.PeerID()
		info.Gossip = n.mesh.GossipAddr()
		for _, m := range n.mesh.Members() {
			peers = append(peers, api.Peer{Name: m.Name, PeerID: m.PeerID, Addr: m.Addr, State: m.State, Role: m.Role,
				Holding: m.Holding, Self: m.Self, BytesFrom: m.BytesFrom, BytesTo: m.BytesTo})
			meshServed += m.BytesTo
		}
	}
	if peers == nil {
		peers = []api.Peer{}
	}
	chunks, bytes := n.store.Usage()
	integ := n.store.Integrity()
	ro := n.rolloutStatus()
	site := n.siteView()

	n.mu.Lock()
	defer n.mu.Unlock()
	info.API, info.ServeRepo = n.stat.apiAddr, n.stat.serveAddr
	st := api.Status{
		Node: info, Channel: n.cfg.Channel, Sources: srcs, LastCheck: n.stat.lastCheck, NextCheck: n.stat.nextCheck,
		Checking: n.stat.checking, Current: current, Previous: previous, Releases: releases, Peers: peers,
		Counters: n.stat.counters, Store: api.StoreInfo{Chunks: chunks, Bytes: bytes, QuotaBytes: n.cfg.QuotaBytes,
			DamagedChunks: integ.Dropped, ScrubPasses: integ.ScrubPasses, ScrubChunks: integ.ScrubChunks, ScrubBytes: integ.ScrubBytes},
		Rollout: ro, Site: site,
	}
	if r := n.stat.lastScrub; r != nil {
		c := *r
		st.Store.LastScrub = &c
	}
	st.Counters.VerifyFailuresByPeer = make(map[string]int64, len(n.stat.counters.VerifyFailuresByPeer))
	for k, v := range n.stat.counters.VerifyFailuresByPeer {
		st.Counters.VerifyFailuresByPeer[k] = v
	}
	if p := n.stat.progress; p != nil {
		c := *p
		st.Progress = &c
	}
	st.Counters.SourceFailures = 0
	st.Counters.SourceFailuresByURL = make(map[string]int64)
	for _, s := range srcs {
		st.Counters.SourceFailures += s.FailuresTotal
		st.Counters.SourceFailuresByURL[s.URL] = s.FailuresTotal
	}
	st.Bytes = api.Bytes{WAN: n.stat.wanBytes, LAN: n.stat.lanBytes, Served: n.stat.servedBytes + meshServed, ByPeer: make(map[string]int64)}
	for k, v := range n.stat.byPeer {
		st.Bytes.ByPeer[k] = v
	}
	if t := st.Bytes.WAN + st.Bytes.LAN; t > 0 {
		st.Bytes.SavingPercent = 100 * float64(st.Bytes.LAN) / float64(t)
	}
	st.Bytes.History = append([]api.BytesSample(nil), n.stat.samples...)
	st.Bytes.History = append(st.Bytes.History, api.BytesSample{Time: time.Now(), WAN: n.stat.wanBytes, LAN: n.stat.lanBytes})
	st.Errors = make([]api.Event, 0, len(n.stat.events))
	for i := len(n.stat.events) - 1; i >= 0; i-- {
		st.Errors = append(st.Errors, n.stat.events[i])
	}
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

func (n *Node) progressAdd(chunks int, bytes int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.stat.progress; p != nil {
		p.ChunksDone += chunks
		p.BytesDone += bytes
	}
}

func (n *Node) setPhase(phase string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.stat.progress; p != nil {
		p.Phase = phase
	}
}
