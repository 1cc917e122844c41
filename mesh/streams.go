package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A member keeps one chunk stream to each peer it asks, and every request to
// that peer goes on it, tagged, with many in flight at once; the peer answers
// each as soon as it has the bytes. Requests, and answers, that queue up while
// one write is under way go out together in the next. With ~20 KiB chunks the
// cost of a site was per chunk, not per byte: one stream per request, then one
// request per kept stream at a time, spent most of the LAN CPU of a 20-node
// bench-site run on stream setup, small writes and goroutine wakeups.

// Stream idle bounds. The asking side closes an idle stream well before the
// serving side stops waiting on it, so a stream is rarely closed under a request.
const (
	streamIdleServe  = 30 * time.Second
	streamIdleClient = 20 * time.Second
	// streamWriteTimeout bounds one write of queued requests or answers: a
	// peer that stops reading for that long is failed.
	streamWriteTimeout = 30 * time.Second
	// readBufSize buffers reads of a chunk stream: several answers per read.
	readBufSize = 64 << 10
)

// errStreamIdle is set on a stream this node closed for being idle; a request
// that raced the close goes on a new stream.
var errStreamIdle = errors.New("chunk stream closed while idle")

// streamLost is the error of a request whose stream failed before its answer.
// The request is sent again on a new stream once, when the failed stream was
// not opened for it: the peer may have dropped a stream it thought idle.
type streamLost struct{ err error }

func (e *streamLost) Error() string { return "chunk stream lost: " + e.err.Error() }
func (e *streamLost) Unwrap() error { return e.err }

// call is one request on a chunk stream.
type call struct {
	c    cid.Cid
	flag byte
	res  chan callResult // buffered: the stream never waits for the caller
}

type callResult struct {
	status byte
	data   []byte
	err    error
}

// chunkStream is this node's chunk stream to one peer.
type chunkStream struct {
	m *Mesh
	p peer.ID
	s network.Stream

	mu      sync.Mutex
	err     error            // why the stream ended; set once
	next    uint64           // next tag
	calls   map[uint64]*call // sent or queued, not answered
	queue   []byte           // requests not written yet
	writing bool             // a caller is writing the queue
	spare   []byte
}

// stream returns the chunk stream to p, opening it if there is none; fresh
// reports that this call opened it.
func (m *Mesh) stream(ctx context.Context, p peer.ID) (cs *chunkStream, fresh bool, err error) {
	m.peerMu.Lock()
	cs = m.streams[p]
	m.peerMu.Unlock()
	if cs != nil && cs.usable() {
		return cs, false, nil
	}
	opened := false
	cs, err = doFlight(ctx, &m.streamGroup, string(p), func() (*chunkStream, error) {
		m.peerMu.Lock()
		cs := m.streams[p]
		m.peerMu.Unlock()
		if cs != nil && cs.usable() {
			return cs, nil
		}
		s, err := m.host.NewStream(ctx, p, ProtocolID)
		if err != nil {
			return nil, err
		}
		cs = &chunkStream{m: m, p: p, s: s, calls: map[uint64]*call{}}
		// The read loop is a handler: shutdown waits for it.
		if !m.handlerStart(s, m.active()) {
			return nil, errors.New("open chunk stream: mesh is stopping")
		}
		m.peerMu.Lock()
		m.streams[p] = cs
		m.peerMu.Unlock()
		opened = true
		go cs.readLoop()
		return cs, nil
	})
	return cs, opened, err
}

func (cs *chunkStream) usable() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.err == nil
}

// do sends one request for c and waits for its answer or ctx. The answer's
// bytes are not verified here.
func (cs *chunkStream) do(ctx context.Context, c cid.Cid, flag byte) ([]byte, error) {
	cl := &call{c: c, flag: flag, res: make(chan callResult, 1)}
	cs.mu.Lock()
	if cs.err != nil {
		err := cs.err
		cs.mu.Unlock()
		return nil, &streamLost{err: err}
	}
	tag := cs.next
	cs.next++
	cs.calls[tag] = cl
	cs.queue = appendRequest(cs.queue, tag, c, flag)
	if !cs.writing {
		cs.writing = true
		cs.flushLocked()
	}
	cs.mu.Unlock()

	select {
	case r := <-cl.res:
		if r.err != nil {
			return nil, r.err
		}
		if r.status != statusOK {
			return nil, fmt.Errorf("peer refused (status %d): %w", r.status, errPeerStatus)
		}
		return r.data, nil
	case <-ctx.Done():
		cs.mu.Lock()
		delete(cs.calls, tag)
		cs.mu.Unlock()
		return nil, ctx.Err()
	}
}

// flushLocked writes the queued requests, and those queued meanwhile by
// other callers, until the queue is empty; cs.mu is held on entry and exit,
// and released while writing.
func (cs *chunkStream) flushLocked() {
	for len(cs.queue) > 0 && cs.err == nil {
		b := cs.queue
		cs.queue = cs.spare[:0]
		cs.mu.Unlock()
		_ = cs.s.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := cs.s.Write(b)
		cs.mu.Lock()
		cs.spare = b[:0]
		if err != nil {
			cs.mu.Unlock()
			cs.fail(fmt.Errorf("send requests: %w", err))
			cs.mu.Lock()
		}
	}
	cs.writing = false
}

// readLoop reads answers and hands each to its caller, until the stream
// fails or stays idle.
func (cs *chunkStream) readLoop() {
	defer cs.m.handlers.Done()
	r := bufio.NewReaderSize(cs.s, readBufSize)
	lastAnswer := time.Now()
	for {
		if r.Buffered() == 0 {
			_ = cs.s.SetReadDeadline(time.Now().Add(streamIdleClient))
			if _, err := r.Peek(1); err != nil {
				if !isTimeout(err) {
					cs.fail(fmt.Errorf("read answer: %w", err))
					return
				}
				cs.mu.Lock()
				idle := len(cs.calls) == 0 && !cs.writing
				if idle {
					cs.err = errStreamIdle
				}
				cs.mu.Unlock()
				switch {
				case idle:
					cs.forget()
					_ = cs.s.Close()
					return
				case time.Since(lastAnswer) > cs.m.cfg.RequestTimeout:
					cs.fail(errors.New("peer stopped answering"))
					return
				}
				continue
			}
		}
		tag, status, data, err := readResponse(r)
		if err != nil {
			cs.fail(fmt.Errorf("read answer: %w", err))
			return
		}
		lastAnswer = time.Now()
		cs.mu.Lock()
		cl := cs.calls[tag]
		delete(cs.calls, tag)
		issued := tag < cs.next
		cs.mu.Unlock()
		switch {
		case cl != nil:
			cl.res <- callResult{status: status, data: data}
		case !issued:
			cs.fail(fmt.Errorf("answer to tag %d never asked: %w", tag, errProtocol))
			return
		}
		// An answer to a call whose caller gave up is dropped.
	}
}

// fail ends the stream: every call waiting on it gets err.
func (cs *chunkStream) fail(err error) {
	cs.mu.Lock()
	if cs.err == nil {
		cs.err = err
	}
	err = cs.err
	calls := cs.calls
	cs.calls = nil
	cs.mu.Unlock()
	cs.forget()
	_ = cs.s.Reset()
	for _, cl := range calls {
		cl.res <- callResult{err: &streamLost{err: err}}
	}
}

// forget removes cs from the mesh's streams, if it is still there.
func (cs *chunkStream) forget() {
	cs.m.peerMu.Lock()
	if cs.m.streams[cs.p] == cs {
		delete(cs.m.streams, cs.p)
	}
	cs.m.peerMu.Unlock()
}

// dropStreams ends the chunk stream to p (p left, or was penalized).
func (m *Mesh) dropStreams(p peer.ID) {
	m.peerMu.Lock()
	cs := m.streams[p]
	m.peerMu.Unlock()
	if cs != nil {
		cs.fail(errors.New("peer dropped"))
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
