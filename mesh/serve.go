package mesh

import (
	"bufio"
	"context"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Serve-side bounds.
const (
	// requestReadTimeout bounds reading the rest of a request once its
	// first byte arrived.
	requestReadTimeout = 10 * time.Second
	// maxServeQueue bounds the wait for a serve slot before answering busy,
	// so the requester moves on to another member in time.
	maxServeQueue = 10 * time.Second
	// maxStreamPending bounds the requests of one stream being served at
	// once; the stream is not read further until one is answered.
	maxStreamPending = 64
	// flushBytes is where queued answers are written without waiting for
	// the requests already received.
	flushBytes = 256 << 10
	// maxQueuedBytes bounds the answers read from the store and not yet
	// being written; the stream is not read further until they are.
	maxQueuedBytes = 1 << 20
)

// answer is one queued answer of a served chunk stream.
type answer struct {
	tag    uint64
	status byte
	data   []byte
}

// servedStream is a peer's chunk stream this node serves.
type servedStream struct {
	m     *Mesh
	s     network.Stream
	p     peer.ID
	slots chan struct{} // one per request being served

	mu       sync.Mutex
	drained  *sync.Cond // on mu: the queue was taken for writing, or failed
	out      []answer   // queued, not written
	spare    []answer
	outLen   int // bytes of data queued
	writing  bool
	failed   bool
	buf      []byte
	flushers sync.WaitGroup // flushes queue started in the background
}

// handleStream serves a peer's chunk stream until the peer closes it or
// leaves it idle: each request from the store at once, or, when asked as
// owner and we agree (or asked to take over), from our WAN, once per CID,
// while later requests go on being served.
func (m *Mesh) handleStream(s network.Stream) {
	if !m.handlerStart(s, true) {
		return
	}
	defer m.handlers.Done()

	ctx, cancel := context.WithCancel(m.serveCtx)
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	ss := &servedStream{m: m, s: s, p: s.Conn().RemotePeer(), slots: make(chan struct{}, maxStreamPending)}
	ss.drained = sync.NewCond(&ss.mu)
	var slow sync.WaitGroup
	defer func() {
		stop()
		cancel()
		slow.Wait()
		ss.flushers.Wait()
	}()
	r := bufio.NewReaderSize(s, 4096)
	for {
		if r.Buffered() == 0 {
			// About to wait for the peer: answers queued meanwhile go now.
			ss.flush()
			_ = s.SetReadDeadline(time.Now().Add(streamIdleServe))
			if _, err := r.Peek(1); err != nil {
				if isTimeout(err) && len(ss.slots) > 0 {
					continue // requests still being served: not idle
				}
				// EOF: the peer closed it; a timeout: it stayed idle.
				_ = s.Close()
				return
			}
			_ = s.SetReadDeadline(time.Now().Add(requestReadTimeout))
		}
		tag, c, flag, err := readRequest(r)
		if err != nil {
			m.log.Debug("bad chunk request", "peer", ss.p, "err", err)
			_ = s.Reset()
			return
		}
		select {
		case ss.slots <- struct{}{}:
		default:
			ss.flush()
			select {
			case ss.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		data, ok, err := m.local(ctx, c)
		switch {
		case err != nil:
			m.log.Warn("read chunk to serve", "cid", c, "err", err)
			ss.queue(tag, statusFailed, nil)
		case ok:
			ss.queue(tag, statusOK, data)
			ss.awaitRoom()
		case flag == flagStore:
			ss.queue(tag, statusNotFound, nil)
		default:
			slow.Add(1)
			go func() {
				defer slow.Done()
				status, data := m.serveSlow(ctx, c, flag)
				ss.queue(tag, status, data)
				ss.flush()
			}()
		}
	}
}

// handlerStart counts a stream handler in, so shutdown waits for it; when the
// mesh is closing or serve is false it resets s and returns false instead.
func (m *Mesh) handlerStart(s network.Stream, serve bool) bool {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	if m.closing || !serve {
		_ = s.Reset()
		return false
	}
	m.handlers.Add(1)
	return true
}

// serveSlow answers a request for a chunk the store lacks, asked as owner or
// to take over: from our WAN, if we agree, within a serve slot.
func (m *Mesh) serveSlow(ctx context.Context, c cid.Cid, flag byte) (byte, []byte) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	qctx, qcancel := context.WithTimeout(ctx, min(maxServeQueue, m.cfg.RequestTimeout/2))
	select {
	case m.serveSem <- struct{}{}:
		qcancel()
	case <-qctx.Done():
		qcancel()
		return statusBusy, nil
	}
	defer func() { <-m.serveSem }()
	takeover := flag == flagTakeover
	if flag == flagOwner {
		if m.Owner(c) != m.name {
			// Views differ for a moment (a member just joined or left);
			// the requester asks the next member, which takes over.
			return statusNotOwner, nil
		}
		takeover = m.members.departedAhead(c.Bytes(), m.name, takeoverWindow)
	}
	r, err := m.fromWAN(ctx, c, takeover)
	if err != nil {
		m.log.Warn("fetch owned chunk", "cid", c, "err", err)
		return statusFailed, nil
	}
	return statusOK, r.data
}

// queue adds an answer; the next flush writes it.
func (ss *servedStream) queue(tag uint64, status byte, data []byte) {
	if status == statusOK && ss.m.corruptServe != nil {
		data = ss.m.corruptServe(data)
	}
	ss.mu.Lock()
	ss.out = append(ss.out, answer{tag, status, data})
	ss.outLen += len(data)
	// Enough for a write of its own: it goes out from another goroutine
	// while this one reads on, from the store or the stream.
	start := ss.outLen >= flushBytes && !ss.writing
	if start {
		ss.flushers.Add(1)
	}
	ss.mu.Unlock()
	if start {
		go func() {
			defer ss.flushers.Done()
			ss.flush()
		}()
	}
}

// awaitRoom waits while the queued answers are at their bound.
func (ss *servedStream) awaitRoom() {
	ss.mu.Lock()
	for ss.outLen >= maxQueuedBytes && !ss.failed {
		ss.drained.Wait()
	}
	ss.mu.Unlock()
}

// flush writes the queued answers, and those queued meanwhile, unless
// another caller is already doing so.
func (ss *servedStream) flush() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.writing {
		return // the writer loops until the queue is empty
	}
	ss.writing = true
	defer func() { ss.writing = false }()
	for len(ss.out) > 0 && !ss.failed {
		out := ss.out
		ss.out, ss.outLen = ss.spare[:0], 0
		ss.drained.Broadcast()
		b := ss.buf[:0]
		var n, chunks int64
		for _, a := range out {
			b = appendResponse(b, a.tag, a.status, a.data)
			if a.status == statusOK {
				n += int64(len(a.data))
				chunks++
			}
		}
		ss.mu.Unlock()
		_ = ss.s.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := ss.s.Write(b)
		for range out {
			<-ss.slots
		}
		if err != nil {
			ss.m.log.Debug("send chunks", "peer", ss.p, "err", err)
			_ = ss.s.Reset()
		} else if chunks > 0 {
			ss.m.stats.servedBytes.Add(n)
			ss.m.stats.servedChunks.Add(chunks)
			ss.m.peerCounters(ss.p, true).to.Add(n)
		}
		clear(out)
		ss.mu.Lock()
		ss.failed = ss.failed || err != nil
		ss.spare = out[:0]
		if cap(b) <= 2*flushBytes {
			ss.buf = b[:0]
		}
	}
	if ss.failed {
		// Nothing more goes out: free the slots of what was queued.
		for range ss.out {
			<-ss.slots
		}
		ss.out, ss.outLen = ss.out[:0], 0
		ss.drained.Broadcast()
	}
}
