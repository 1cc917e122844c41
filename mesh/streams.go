package mesh

import (
	"bufio"
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A chunk stream carries one request and its response at a time, and is then
// kept for the next request to the same peer. Opening a libp2p stream per
// chunk costs a protocol negotiation, resource-manager scopes and a serving
// goroutine each time; for ~20 KiB chunks that overhead was most of the LAN
// CPU of a site (perf of a 20-node bench-site run).

// Stream idle bounds. The client drops an idle stream well before the server
// stops waiting on it, so a reused stream is rarely closed under a request.
const (
	streamIdleServe  = 30 * time.Second
	streamIdleClient = 20 * time.Second
)

// chunkStream is an open chunk stream to a peer with its response reader.
type chunkStream struct {
	s    network.Stream
	r    *bufio.Reader
	used time.Time // when it was last put back
}

// getStream returns an idle stream to p, reused reports whether it was kept
// from an earlier request, or opens a new one.
func (m *Mesh) getStream(ctx context.Context, p peer.ID) (cs *chunkStream, reused bool, err error) {
	now := time.Now()
	m.peerMu.Lock()
	idle := m.idle[p]
	for len(idle) > 0 {
		cs = idle[len(idle)-1]
		idle = idle[:len(idle)-1]
		if now.Sub(cs.used) < streamIdleClient && !cs.s.Conn().IsClosed() {
			break
		}
		_ = cs.s.Reset()
		cs = nil
	}
	m.idle[p] = idle
	m.peerMu.Unlock()
	if cs != nil {
		return cs, true, nil
	}
	s, err := m.host.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return nil, false, err
	}
	return &chunkStream{s: s, r: bufio.NewReader(s)}, false, nil
}

// putStream keeps cs for the next request to p, up to as many idle streams as
// requests to p may run at once.
func (m *Mesh) putStream(p peer.ID, cs *chunkStream) {
	_ = cs.s.SetDeadline(time.Time{})
	cs.used = time.Now()
	m.peerMu.Lock()
	if len(m.idle[p]) < m.perPeer() && m.active() {
		m.idle[p] = append(m.idle[p], cs)
		cs = nil
	}
	m.peerMu.Unlock()
	if cs != nil {
		_ = cs.s.Close()
	}
}

// dropStreams resets the idle streams to p (p left, or was penalized).
func (m *Mesh) dropStreams(p peer.ID) {
	m.peerMu.Lock()
	idle := m.idle[p]
	delete(m.idle, p)
	m.peerMu.Unlock()
	for _, cs := range idle {
		_ = cs.s.Reset()
	}
}
