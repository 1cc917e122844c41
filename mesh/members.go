package mesh

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// Member states as Members reports them.
const (
	StateAlive   = "alive"
	StateLeaving = "leaving" // announced a graceful shutdown
	StateDead    = "dead"
	StateLeft    = "left"
)

// Member is one node of the site as this node sees it.
type Member struct {
	Name    string `json:"name"`
	PeerID  string `json:"peer_id"`
	Addr    string `json:"addr"`  // gossip address
	State   string `json:"state"` // alive, leaving, dead, left
	Role    string `json:"role"`
	Holding uint64 `json:"holding"` // release sequence the member holds completely
	Running uint64 `json:"running"` // release sequence the member runs; below Holding after a rollback
	Self    bool   `json:"self"`
	// Status is what the member gossips of its own (Mesh.SetStatus).
	Status    []byte `json:"status,omitempty"`
	BytesFrom int64  `json:"bytes_from"` // chunk bytes this node received from the member
	BytesTo   int64  `json:"bytes_to"`   // chunk bytes this node served to the member
}

// memberEntry is the table's record of one member.
type memberEntry struct {
	name  string
	addr  string
	meta  nodeMeta
	state string
	self  bool
	gone  time.Time // when it announced leaving, or became dead or left
}

// live reports whether the member takes part in ownership and may connect.
// Suspect members stay (memberlist does not expose suspicion, and ownership
// should not flap while it probes); a member announcing it is leaving goes.
func (e *memberEntry) live() bool { return e.state == StateAlive && !e.meta.leaving }

// peerCounters are the bytes moved with one peer.
type peerCounters struct {
	from atomic.Int64
	to   atomic.Int64
}

// table is the member table, fed by memberlist's event delegate and read by
// ownership, the connection gater and Members.
type table struct {
	mu     sync.RWMutex
	byName map[string]*memberEntry
	byPeer map[peer.ID]string
}

func newTable() *table {
	return &table{byName: map[string]*memberEntry{}, byPeer: map[peer.ID]string{}}
}

// upsert records a live member and returns the entry it replaced, if any.
func (t *table) upsert(e memberEntry) (old memberEntry, had bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.byName[e.name]; ok {
		old, had = *prev, true
		if prev.meta.peerID != e.meta.peerID && t.byPeer[prev.meta.peerID] == e.name {
			delete(t.byPeer, prev.meta.peerID)
		}
	}
	if e.meta.leaving {
		e.gone = time.Now()
		if had && old.meta.leaving {
			e.gone = old.gone
		}
	}
	t.byName[e.name] = &e
	if e.meta.peerID != "" {
		t.byPeer[e.meta.peerID] = e.name
	}
	return old, had
}

// setState marks a member dead or left.
func (t *table) setState(name, state string) (memberEntry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byName[name]
	if !ok {
		return memberEntry{}, false
	}
	e.state = state
	if e.gone.IsZero() {
		e.gone = time.Now()
	}
	return *e, true
}

// liveCandidates returns the live members as ownership candidates.
func (t *table) liveCandidates() []candidate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]candidate, 0, len(t.byName))
	for _, e := range t.byName {
		if e.live() {
			out = append(out, candidate{name: e.name, role: e.meta.role})
		}
	}
	return out
}

// liveCount is len(liveCandidates()), without building the list.
func (t *table) liveCount() int {
	live, _ := t.counts()
	return live
}

// counts returns the live members and, of them, the ones eligible to own
// chunks (and so to fetch from the WAN for the others): the live distribution
// points if any, else all live members.
func (t *table) counts() (live, owners int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	dps := 0
	for _, e := range t.byName {
		if e.live() {
			live++
			if e.meta.role == RoleDP {
				dps++
			}
		}
	}
	if dps > 0 {
		return live, dps
	}
	return live, live
}

// departedAhead reports whether a member that left or died within window
// would rank before self for key: the chunk's owner is gone, and it may have
// handed the chunk to some members already.
func (t *table) departedAhead(key []byte, self string, window time.Duration) bool {
	t.mu.RLock()
	var cands []candidate
	departed := map[string]bool{}
	for _, e := range t.byName {
		switch {
		case e.live():
			cands = append(cands, candidate{name: e.name, role: e.meta.role})
		case !e.gone.IsZero() && time.Since(e.gone) < window:
			cands = append(cands, candidate{name: e.name, role: e.meta.role})
			departed[e.name] = true
		}
	}
	t.mu.RUnlock()
	for _, n := range hrwOrder(key, cands) {
		if n == self {
			return false
		}
		if departed[n] {
			return true
		}
	}
	return false
}

// has reports whether the table knows the named member, in any state.
func (t *table) has(name string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.byName[name]
	return ok
}

// get returns a copy of the named member.
func (t *table) get(name string) (memberEntry, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.byName[name]
	if !ok {
		return memberEntry{}, false
	}
	return *e, true
}

// nameOf returns the live member announcing peer id p.
func (t *table) nameOf(p peer.ID) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n, ok := t.byPeer[p]
	if !ok {
		return "", false
	}
	e := t.byName[n]
	if e == nil || !e.live() || e.self {
		return "", false
	}
	return n, true
}

// all returns copies of every known member, sorted by name.
func (t *table) all() []memberEntry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]memberEntry, 0, len(t.byName))
	for _, e := range t.byName {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b memberEntry) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return out
}

// delegate is memberlist's Delegate and EventDelegate for one Mesh. Every
// method returns quickly: memberlist calls them from its receive loops.
type delegate struct{ m *Mesh }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

// NodeMeta returns our metadata, never more than limit bytes.
func (d delegate) NodeMeta(limit int) []byte { return d.m.localMeta().encode(limit) }

// NotifyMsg takes member summaries (summary.go); it only takes a mutex.
func (d delegate) NotifyMsg(b []byte) {
	if len(b) > 0 && b[0] == msgSummary {
		d.m.sums.notify(b)
	}
}

// GetBroadcasts sends the member summaries that changed.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.sums.queue.GetBroadcasts(overhead, limit)
}

// LocalState pushes every member summary we hold.
func (d delegate) LocalState(bool) []byte { return d.m.sums.localState() }

// MergeRemoteState merges a peer's member summaries.
func (d delegate) MergeRemoteState(b []byte, _ bool) { d.m.sums.mergeState(b) }

func (d delegate) NotifyJoin(n *memberlist.Node)   { d.m.memberUp(n) }
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.m.memberUp(n) }
func (d delegate) NotifyLeave(n *memberlist.Node) {
	// memberlist does not tell a graceful leave from a death in the Node it
	// passes; a member that announced it was leaving has left.
	state := StateDead
	if e, ok := d.m.members.get(n.Name); ok && e.meta.leaving {
		state = StateLeft
	}
	d.m.memberDown(n.Name, state)
}

// memberUp records a joined or updated member and teaches the peerstore its
// libp2p addresses. Metadata that does not decode leaves the member without
// a peer id: it counts for nothing and cannot connect.
func (m *Mesh) memberUp(n *memberlist.Node) {
	e := memberEntry{name: n.Name, addr: n.Address(), state: StateAlive, self: n.Name == m.name}
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		m.log.Warn("member metadata unreadable; ignoring member", "member", n.Name, "err", err)
		return
	}
	e.meta = meta
	old, had := m.members.upsert(e)
	if e.self {
		return
	}
	ps := m.host.Peerstore()
	if had && old.meta.peerID != meta.peerID && old.meta.peerID != "" {
		ps.ClearAddrs(old.meta.peerID)
	}
	ps.SetAddrs(meta.peerID, meta.addrs, peerstore.PermanentAddrTTL)
	if !had || old.state != StateAlive {
		m.log.Info("member joined", "member", n.Name, "peer", meta.peerID, "role", meta.role)
	}
}

// memberDown marks a member dead or left; its chunks move to the next owner.
func (m *Mesh) memberDown(name, state string) {
	e, ok := m.members.setState(name, state)
	if !ok || e.self {
		return
	}
	m.dropStreams(e.meta.peerID)
	m.log.Info("member "+state, "member", name, "peer", e.meta.peerID)
}

// gater admits only connections whose authenticated peer id is announced by
// a live member of the site: the gossip that announces peer ids is encrypted
// with the site key, so a host without the key is refused here.
type gater struct{ m *Mesh }

func (gater) InterceptPeerDial(peer.ID) bool               { return true }
func (gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (gater) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
func (g gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	_, ok := g.m.members.nameOf(p)
	return ok
}
