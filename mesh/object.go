package mesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ObjectProtocolID is the libp2p protocol of one request for a site-shared
// object other than a chunk (the caching proxy's URLs): the asker sends a small
// opaque request, the member that owns the object answers with a byte stream.
// The mesh frames the request, admits only site members and bounds the time;
// what the bytes mean is the Objects implementation's business.
const ObjectProtocolID protocol.ID = "/patchmesh/object/1"

// Object stream bounds.
const (
	// MaxObjectRequest bounds one object request.
	MaxObjectRequest = 8 << 10
	// objectWriteIdle bounds one write of an answer: a reader that stops
	// reading for this long loses the stream.
	objectWriteIdle = 30 * time.Second
)

// ErrNoMember is returned by OpenObject for a member that is not live.
var ErrNoMember = errors.New("no such live member")

// ObjectOwner returns the live member that owns the object named key, by
// rendezvous hash over the live members (distribution points first, as for
// chunks), and whether that is this node. Alone, this node owns everything.
func (m *Mesh) ObjectOwner(key []byte) (name string, self bool) {
	o := hrwOwner(key, m.members.liveCandidates())
	if o == "" || o == m.name {
		return m.name, true
	}
	return o, false
}

// ObjectRequest is one OpenObject call.
type ObjectRequest struct {
	Member string // the member to ask
	Req    []byte // at most MaxObjectRequest bytes
	// Wait bounds the time to the first byte of the answer, which may come
	// only after the owner fetched the object; Idle bounds every later read.
	Wait, Idle time.Duration
}

// OpenObject sends r.Req to r.Member and returns the answer as a stream. The
// caller closes it.
func (m *Mesh) OpenObject(ctx context.Context, r ObjectRequest) (io.ReadCloser, error) {
	if len(r.Req) == 0 || len(r.Req) > MaxObjectRequest {
		return nil, fmt.Errorf("open object: request of %d bytes: %w", len(r.Req), errProtocol)
	}
	if m.host == nil || !m.active() {
		return nil, fmt.Errorf("open object at %s: mesh not running: %w", r.Member, ErrNoMember)
	}
	e, ok := m.members.get(r.Member)
	if !ok || !e.live() || e.self {
		return nil, fmt.Errorf("open object at %s: %w", r.Member, ErrNoMember)
	}
	octx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	s, err := m.host.NewStream(octx, e.meta.peerID, ObjectProtocolID)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("open object at %s: open stream: %w", r.Member, err)
	}
	_ = s.SetWriteDeadline(time.Now().Add(min(requestReadTimeout, m.cfg.RequestTimeout)))
	req := binary.AppendUvarint([]byte{1}, uint64(len(r.Req)))
	req = append(req, r.Req...)
	if _, err := s.Write(req); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("open object at %s: send request: %w", r.Member, err)
	}
	_ = s.CloseWrite()
	o := &objectStream{s: s, wait: r.Wait, idle: r.Idle}
	// The stream outlives this call; ctx still ends it.
	o.stop = context.AfterFunc(ctx, func() { _ = s.Reset() })
	return o, nil
}

// objectStream reads an object answer with a deadline per read.
type objectStream struct {
	s          network.Stream
	stop       func() bool
	wait, idle time.Duration
	started    bool
	eof        bool
}

func (o *objectStream) Read(p []byte) (int, error) {
	d := o.idle
	if !o.started {
		d = o.wait
	}
	if d > 0 {
		_ = o.s.SetReadDeadline(time.Now().Add(d))
	}
	n, err := o.s.Read(p)
	if n > 0 {
		o.started = true
	}
	if errors.Is(err, io.EOF) {
		o.eof = true
	}
	return n, err
}

// Close ends the stream: gracefully after the whole answer, else by reset, so
// the owner stops sending.
func (o *objectStream) Close() error {
	o.stop()
	if o.eof {
		return o.s.Close()
	}
	return o.s.Reset()
}

// handleObject serves one object request from the Delegate, once per
// stream, with a context ended when the mesh stops.
func (m *Mesh) handleObject(s network.Stream) {
	if !m.handlerStart(s) {
		return
	}
	defer m.handlers.Done()

	ctx, cancel := context.WithCancel(m.serveCtx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetReadDeadline(time.Now().Add(min(requestReadTimeout, m.cfg.RequestTimeout)))
	r := bufio.NewReaderSize(s, 512)
	v, err := r.ReadByte()
	if err != nil || v != 1 {
		_ = s.Reset()
		return
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n == 0 || n > MaxObjectRequest {
		_ = s.Reset()
		return
	}
	req := make([]byte, n)
	if _, err := io.ReadFull(r, req); err != nil {
		_ = s.Reset()
		return
	}
	if err := m.node.ServeObject(ctx, req, idleWriter{s}); err != nil {
		m.log.Debug("serve object", "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// idleWriter gives every write to s its own deadline.
type idleWriter struct{ s network.Stream }

func (w idleWriter) Write(p []byte) (int, error) {
	_ = w.s.SetWriteDeadline(time.Now().Add(objectWriteIdle))
	return w.s.Write(p)
}
