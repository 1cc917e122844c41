package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// maxMetaAddrs bounds the libp2p addresses a member gossips; the rest of its
// addresses are not needed to reach it on a LAN.
const maxMetaAddrs = 4

// metaVersion is the first byte of every encoded nodeMeta.
const metaVersion = 1

// MaxStatus bounds the status a member gossips in its metadata.
const MaxStatus = 160

// errMeta is returned for metadata this version cannot read.
var errMeta = errors.New("bad member metadata")

// nodeMeta is what a member gossips about itself in memberlist node metadata:
// a small pointer, never more than memberlist.MetaMaxSize bytes.
type nodeMeta struct {
	peerID  peer.ID
	addrs   []ma.Multiaddr
	role    string
	holding uint64
	// running is the release sequence the member runs, which a rollback
	// puts below holding. It trails the addresses and a length-prefixed
	// status slot (empty from this version), where members that stop
	// reading earlier ignore it; from them it reads as holding.
	running uint64
	// leaving is set by a member shutting down gracefully, just before it
	// leaves, so peers stop routing chunks to it and report it as left.
	leaving bool
	// status is the node's own small gossip (its rollout outcome), opaque
	// to the mesh; at most MaxStatus bytes.
	status []byte
}

// Bits of the flags byte.
const (
	metaDP      = 1 << 0
	metaLeaving = 1 << 1
)

// encode writes m compactly, dropping addresses beyond maxMetaAddrs or
// beyond limit bytes (memberlist panics on metadata over MetaMaxSize). The
// fixed part (peer id, role, holding, running) is always far below limit.
func (m nodeMeta) encode(limit int) []byte {
	b := make([]byte, 0, 128)
	b = append(b, metaVersion)
	var flags byte
	if m.role == RoleDP {
		flags |= metaDP
	}
	if m.leaving {
		flags |= metaLeaving
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, m.holding)
	pid := []byte(m.peerID)
	b = binary.AppendUvarint(b, uint64(len(pid)))
	b = append(b, pid...)
	countAt := len(b)
	b = append(b, 0)
	// The status goes last, so older members (which stop after the
	// addresses) still read the rest; its room is kept from the addresses.
	st := m.status
	if len(st) > MaxStatus {
		st = nil
	}
	// The status slot (its length, maybe 0) and running trail the addresses.
	reserve := len(binary.AppendUvarint(nil, uint64(len(st)))) + len(st) + len(binary.AppendUvarint(nil, m.running))
	n := 0
	for _, a := range m.addrs {
		if n == maxMetaAddrs {
			break
		}
		ab := a.Bytes()
		if len(b)+binary.MaxVarintLen16+len(ab)+reserve > limit {
			continue // a shorter address later may still fit
		}
		b = binary.AppendUvarint(b, uint64(len(ab)))
		b = append(b, ab...)
		n++
	}
	b[countAt] = byte(n)
	b = binary.AppendUvarint(b, uint64(len(st)))
	b = append(b, st...)
	return binary.AppendUvarint(b, m.running)
}

// decodeMeta reads metadata written by encode. Addresses that do not parse
// are skipped: a member is still useful with fewer of them.
func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) < 2 || b[0] != metaVersion {
		return m, fmt.Errorf("decode metadata: %w", errMeta)
	}
	if b[1]&metaDP != 0 {
		m.role = RoleDP
	}
	m.leaving = b[1]&metaLeaving != 0
	b = b[2:]
	h, n := binary.Uvarint(b)
	if n <= 0 {
		return m, fmt.Errorf("decode metadata holding: %w", errMeta)
	}
	m.holding, b = h, b[n:]
	l, n := binary.Uvarint(b)
	if n <= 0 || l == 0 || l > uint64(len(b)-n) {
		return m, fmt.Errorf("decode metadata peer id: %w", errMeta)
	}
	pid, err := peer.IDFromBytes(b[n : n+int(l)])
	if err != nil {
		return m, fmt.Errorf("decode metadata peer id: %v: %w", err, errMeta)
	}
	m.peerID, b = pid, b[n+int(l):]
	if len(b) < 1 {
		return m, fmt.Errorf("decode metadata addresses: %w", errMeta)
	}
	count := int(b[0])
	b = b[1:]
	for i := 0; i < count && i < maxMetaAddrs; i++ {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return m, fmt.Errorf("decode metadata address: %w", errMeta)
		}
		if a, err := ma.NewMultiaddrBytes(b[n : n+int(l)]); err == nil {
			m.addrs = append(m.addrs, a)
		}
		b = b[n+int(l):]
	}
	m.running = m.holding
	if len(b) > 0 {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > MaxStatus || l > uint64(len(b)-n) {
			return m, fmt.Errorf("decode metadata status: %w", errMeta)
		}
		if l > 0 {
			m.status = append([]byte(nil), b[n:n+int(l)]...)
		}
		b = b[n+int(l):]
		if r, n := binary.Uvarint(b); n > 0 {
			m.running = r
		}
	}
	return m, nil
}
