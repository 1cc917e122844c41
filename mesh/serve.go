package mesh

import (
	"bufio"
	"context"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
)

// Serve-side bounds.
const (
	// requestReadTimeout bounds reading the small request.
	requestReadTimeout = 10 * time.Second
	// maxServeQueue bounds the wait for a serve slot before answering busy,
	// so the requester moves on to another member in time.
	maxServeQueue = 10 * time.Second
)

// handleStream serves chunk requests on one stream, one after another, until
// the peer closes it or leaves it idle: from the store, or, when asked as
// owner and we agree (or asked to take over), from our WAN, once per CID.
// corrupt, nil but in tests, alters the bytes served (runOptions).
func (m *Mesh) handleStream(s network.Stream, corrupt func([]byte) []byte) {
	if !m.handlerStart(s) {
		return
	}
	defer m.handlers.Done()

	stop := context.AfterFunc(m.serveCtx, func() { _ = s.Reset() })
	defer stop()
	r := bufio.NewReaderSize(s, 256)
	for {
		_ = s.SetReadDeadline(time.Now().Add(streamIdleServe))
		if _, err := r.Peek(1); err != nil {
			// EOF: the peer closed it; a timeout: it stayed idle.
			_ = s.Close()
			return
		}
		if !m.serveOne(s, r, corrupt) {
			_ = s.Reset()
			return
		}
	}
}

// handlerStart counts a stream handler in, so shutdown waits for it; when the
// mesh is closing it resets s and returns false instead.
func (m *Mesh) handlerStart(s network.Stream) bool {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	if m.closing {
		_ = s.Reset()
		return false
	}
	m.handlers.Add(1)
	return true
}

// serveOne reads one request from r and answers it on s. It returns false
// when the stream cannot carry another request.
func (m *Mesh) serveOne(s network.Stream, r *bufio.Reader, corrupt func([]byte) []byte) bool {
	ctx, cancel := context.WithTimeout(m.serveCtx, m.cfg.RequestTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	p := s.Conn().RemotePeer()

	_ = s.SetReadDeadline(time.Now().Add(min(requestReadTimeout, m.cfg.RequestTimeout)))
	c, flag, err := readRequest(r)
	if err != nil {
		m.log.Debug("bad chunk request", "peer", p, "err", err)
		return false
	}
	m.inflight.Add(1)
	defer m.inflight.Add(-1)
	dl, _ := ctx.Deadline()
	_ = s.SetWriteDeadline(dl)

	qctx, qcancel := context.WithTimeout(ctx, min(maxServeQueue, m.cfg.RequestTimeout/2))
	select {
	case m.serveSem <- struct{}{}:
		qcancel()
	case <-qctx.Done():
		qcancel()
		var b []byte
		return writeResponse(s, statusBusy, nil, &b) == nil && stop()
	}
	defer func() { <-m.serveSem }()
	bp := m.bufs.Get().(*[]byte)
	defer m.bufs.Put(bp)
	data, status := m.serveData(ctx, c, flag, (*bp)[:respRoom])
	if status == statusOK && corrupt != nil {
		data = corrupt(data)
	}
	if status == statusOK && m.cfg.UploadThrottle != nil {
		// Paid before the write, within the request's time: a capped
		// node serves fewer chunks, and the requester's timeout still holds.
		if err := m.cfg.UploadThrottle.WaitN(ctx, len(data)); err != nil {
			m.log.Debug("upload cap outlasted the request", "cid", c, "peer", p, "err", err)
			return false
		}
	}
	if err := writeResponse(s, status, data, bp); err != nil {
		m.log.Debug("send chunk", "cid", c, "peer", p, "err", err)
		return false
	}
	if status == statusOK {
		n := int64(len(data)) // the wire form: what moved
		m.stats.servedBytes.Add(n)
		m.stats.servedChunks.Add(1)
		m.peerCounters(p, true).to.Add(n)
	}
	// stop fails if ctx ended and reset the stream meanwhile.
	return stop()
}

// serveData finds the wire form to serve for c and the status to send. A
// stored chunk is read into buf's spare capacity, after buf's bytes (the
// response header's room), so that it is sent without a copy.
func (m *Mesh) serveData(ctx context.Context, c cid.Cid, flag byte, buf []byte) ([]byte, byte) {
	wire, ok, err := m.localWire(ctx, c, buf)
	if err != nil {
		m.log.Warn("read chunk to serve", "cid", c, "err", err)
		return nil, statusFailed
	}
	if ok {
		return wire, statusOK
	}
	takeover, why := flag == flagTakeover, wanAskedTakeover
	switch flag {
	case flagStore:
		return nil, statusNotFound
	case flagOwner:
		if m.Owner(c) != m.name {
			// Views differ for a moment (a member just joined or left);
			// the requester asks the next member, which takes over.
			return nil, statusNotOwner
		}
		takeover, why = m.members.departedAhead(c.Bytes(), m.name, takeoverWindow), wanAskedOwner
	}
	r, err := m.fromWAN(ctx, c, takeover, why)
	if err != nil {
		m.log.Warn("fetch owned chunk", "cid", c, "err", err)
		return nil, statusFailed
	}
	if r.wire == nil { // stored meanwhile: read its stored form
		return m.serveData(ctx, c, flagStore, buf)
	}
	return r.wire, statusOK
}
