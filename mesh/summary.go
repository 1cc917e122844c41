package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Bounds of the site view's gossip. Node metadata (512 bytes) is full, so
// each member's summary travels beside it: broadcast when it changes, and in
// memberlist's periodic push-pull, which carries every summary a member
// knows, so the view converges even for members a broadcast missed.
const (
	// MaxSummary bounds one member's summary (SetSummary refuses more); it
	// fits one gossip packet with its name and header.
	MaxSummary = 512
	// MaxSummaries bounds the members whose summaries a node keeps, so a
	// push-pull state is at most about MaxSummaries*(MaxSummary+maxNameLen+12)
	// bytes (about 160 KiB).
	MaxSummaries = 256
	// summaryRetransmit is memberlist's retransmit multiplier for our
	// broadcasts (each is sent this many times log(N) to random members).
	summaryRetransmit = 3
	// summaryResend is how often a member sends its summary again, unchanged:
	// a broadcast lost under load (full receive queues) would otherwise wait
	// for push-pull, which comes every minute or more in a site of 50.
	summaryResend = 20 * time.Second
)

// Wire tags: a user message, and the push-pull state.
const (
	msgSummary   = 1
	stateVersion = 1
)

var errSummary = errors.New("bad summary message")

// summaryEntry is one member's newest summary; ver orders them (the
// member's clock in nanoseconds when it set it, so a restart goes forward).
type summaryEntry struct {
	ver  uint64
	data []byte
}

// summaries holds the site's member summaries and the broadcast queue that
// spreads the ones that change. Its methods only take a mutex: memberlist
// calls them from its receive loops.
type summaries struct {
	self  string
	known func(name string) bool // is name in the member table?
	queue *memberlist.TransmitLimitedQueue

	mu      sync.Mutex
	entries map[string]summaryEntry
	lastVer uint64
}

func newSummaries(self string, known func(string) bool, numNodes func() int) *summaries {
	return &summaries{
		self: self, known: known, entries: map[string]summaryEntry{},
		queue: &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: summaryRetransmit},
	}
}

// setOwn records our own summary with a version newer than any before and
// queues its broadcast.
func (s *summaries) setOwn(b []byte) {
	s.mu.Lock()
	ver := max(uint64(time.Now().UnixNano()), s.lastVer+1)
	s.lastVer = ver
	e := summaryEntry{ver: ver, data: append([]byte(nil), b...)}
	s.entries[s.self] = e
	s.mu.Unlock()
	s.queue.QueueBroadcast(summaryBroadcast{name: s.self, msg: encodeSummaryMsg(s.self, e)})
}

// resendOwn queues our summary again, at its version: members that hold it
// ignore it, those that missed it take it and pass it on.
func (s *summaries) resendOwn() {
	s.mu.Lock()
	e, ok := s.entries[s.self]
	s.mu.Unlock()
	if ok {
		s.queue.QueueBroadcast(summaryBroadcast{name: s.self, msg: encodeSummaryMsg(s.self, e)})
	}
}

// resendLoop runs resendOwn every summaryResend until ctx ends.
func (s *summaries) resendLoop(ctx context.Context) {
	t := time.NewTicker(summaryResend)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.resendOwn()
		}
	}
}

// merge keeps e for name if it is newer than what we hold and the table has
// room, and reports whether it did. Our own entry is only ours to set,
// except that a newer version of it (from before a restart) moves lastVer on.
func (s *summaries) merge(name string, e summaryEntry) bool {
	if len(name) == 0 || len(name) > maxNameLen || len(e.data) > MaxSummary {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == s.self {
		s.lastVer = max(s.lastVer, e.ver)
		return false
	}
	old, had := s.entries[name]
	if had && old.ver >= e.ver {
		return false
	}
	if !had && len(s.entries) >= MaxSummaries {
		s.pruneLocked()
		if len(s.entries) >= MaxSummaries {
			return false
		}
	}
	s.entries[name] = summaryEntry{ver: e.ver, data: append([]byte(nil), e.data...)}
	return true
}

// pruneLocked drops the summaries of names the member table no longer has.
func (s *summaries) pruneLocked() {
	for n := range s.entries {
		if n != s.self && !s.known(n) {
			delete(s.entries, n)
		}
	}
}

// get returns copies of the summaries of members the table knows.
func (s *summaries) get() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.entries))
	for n, e := range s.entries {
		if n == s.self || s.known(n) {
			out[n] = append([]byte(nil), e.data...)
		}
	}
	return out
}

// notify handles a gossiped summary: a newer one is kept and passed on, so
// it spreads epidemically rather than only from its author.
func (s *summaries) notify(msg []byte) {
	if len(msg) == 0 || msg[0] != msgSummary {
		return
	}
	name, e, rest, err := decodeSummary(msg[1:])
	if err != nil || len(rest) != 0 {
		return
	}
	if s.merge(name, e) {
		s.queue.QueueBroadcast(summaryBroadcast{name: name, msg: append([]byte(nil), msg...)})
	}
}

// localState is every summary we hold, for push-pull.
func (s *summaries) localState() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := []byte{stateVersion}
	b = binary.AppendUvarint(b, uint64(len(s.entries)))
	for n, e := range s.entries {
		b = appendSummary(b, n, e)
	}
	return b
}

// mergeState merges a peer's push-pull state, reading at most MaxSummaries
// entries.
func (s *summaries) mergeState(b []byte) {
	if len(b) < 1 || b[0] != stateVersion {
		return
	}
	b = b[1:]
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return
	}
	b = b[n:]
	for i := uint64(0); i < count && i < MaxSummaries; i++ {
		name, e, rest, err := decodeSummary(b)
		if err != nil {
			return
		}
		s.merge(name, e)
		b = rest
	}
}

func encodeSummaryMsg(name string, e summaryEntry) []byte {
	return appendSummary([]byte{msgSummary}, name, e)
}

// appendSummary writes name, version and data; a message adds the tag byte
// in front, a state a count.
func appendSummary(b []byte, name string, e summaryEntry) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, e.ver)
	b = binary.AppendUvarint(b, uint64(len(e.data)))
	return append(b, e.data...)
}

// decodeSummary reads one entry (after a message's tag), checking every
// length against its bound before slicing.
func decodeSummary(b []byte) (string, summaryEntry, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l == 0 || l > maxNameLen || l > uint64(len(b)-n) {
		return "", summaryEntry{}, nil, fmt.Errorf("decode summary name: %w", errSummary)
	}
	name := string(b[n : n+int(l)])
	b = b[n+int(l):]
	ver, n := binary.Uvarint(b)
	if n <= 0 {
		return "", summaryEntry{}, nil, fmt.Errorf("decode summary version: %w", errSummary)
	}
	b = b[n:]
	l, n = binary.Uvarint(b)
	if n <= 0 || l > MaxSummary || l > uint64(len(b)-n) {
		return "", summaryEntry{}, nil, fmt.Errorf("decode summary data: %w", errSummary)
	}
	data := b[n : n+int(l)]
	return name, summaryEntry{ver: ver, data: data}, b[n+int(l):], nil
}

// summaryBroadcast is one queued summary; a newer one of the same member
// replaces it in the queue, which so holds at most one per member.
type summaryBroadcast struct {
	name string
	msg  []byte
}

func (b summaryBroadcast) Name() string { return "summary/" + b.name }
func (b summaryBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(summaryBroadcast)
	return ok && ob.name == b.name
}
func (b summaryBroadcast) Message() []byte { return b.msg }
func (summaryBroadcast) Finished()         {}

// SetSummary gossips b, the node's own summary of itself (at most
// MaxSummary bytes; opaque to the mesh), to the site, which reads it in
// Summaries. It does not block.
func (m *Mesh) SetSummary(b []byte) error {
	if len(b) > MaxSummary {
		return fmt.Errorf("set summary: %d bytes, at most %d", len(b), MaxSummary)
	}
	m.sums.setOwn(b)
	return nil
}

// Summaries returns the newest summary of each member this node knows
// (itself included), by name: at most MaxSummaries.
func (m *Mesh) Summaries() map[string][]byte { return m.sums.get() }

// SummaryStateSize is the size of the push-pull state this node sends now:
// every summary it holds, encoded.
func (m *Mesh) SummaryStateSize() int { return len(m.sums.localState()) }
