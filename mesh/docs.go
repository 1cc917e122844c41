package mesh

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// DocProtocolID is the libp2p protocol of one repository document request: a
// channel head, a manifest or a trust root, by its repository path. Documents
// are signed, so any member may hand them out and the asking node verifies them
// like a mirror's; this lets a site keep working while every update source is down.
const DocProtocolID protocol.ID = "/patchmesh/doc/1"

// Document bounds.
const (
	maxDocPath = 512
	// MaxDocSize bounds one document (the largest manifest a node accepts).
	MaxDocSize = 64 << 20
	// docAttempts bounds how many members one FetchDoc asks.
	docAttempts = 4
)

// ErrNoDoc is returned when no member could hand out a document.
var ErrNoDoc = errors.New("no site member has the document")

// FetchDoc asks live members, those holding the newest release first, for the
// document at path, reading at most max bytes. The bytes are not verified here:
// documents are signed and the caller verifies them.
func (m *Mesh) FetchDoc(ctx context.Context, p string, max int64) ([]byte, string, error) {
	if err := checkDocPath(p); err != nil {
		return nil, "", err
	}
	if max <= 0 || max > MaxDocSize {
		max = MaxDocSize
	}
	if m.host == nil || !m.active() {
		return nil, "", fmt.Errorf("fetch %s from the site: mesh not running: %w", p, ErrNoDoc)
	}
	var cands []memberEntry
	for _, e := range m.members.all() {
		if !e.self && e.live() && !m.penalized(e.meta.peerID) {
			cands = append(cands, e)
		}
	}
	slices.SortStableFunc(cands, func(a, b memberEntry) int { return cmp.Compare(b.meta.holding, a.meta.holding) })
	var errs []error
	for i, e := range cands {
		if i == docAttempts {
			break
		}
		data, err := m.requestDoc(ctx, e, p, max)
		if err == nil {
			return data, e.name, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", e.name, err))
	}
	return nil, "", fmt.Errorf("fetch %s from the site: %w", p, errors.Join(append([]error{ErrNoDoc}, errs...)...))
}

func (m *Mesh) requestDoc(ctx context.Context, e memberEntry, p string, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	s, err := m.host.NewStream(ctx, e.meta.peerID, DocProtocolID)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	req := binary.AppendUvarint([]byte{1}, uint64(len(p)))
	req = append(req, p...)
	if _, err := s.Write(req); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("send request: %w", err)
	}
	_ = s.CloseWrite()
	r := bufio.NewReader(s)
	status, err := r.ReadByte()
	if err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("read response: %w", err)
	}
	if status != statusOK {
		_ = s.Reset()
		return nil, fmt.Errorf("status %d: %w", status, errPeerStatus)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || int64(n) > max {
		_ = s.Reset()
		return nil, fmt.Errorf("document of %d bytes (limit %d): %w", n, max, errProtocol)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("read document: %w", err)
	}
	_ = s.Close()
	return data, nil
}

// handleDoc serves one document request from the Delegate.
func (m *Mesh) handleDoc(s network.Stream) {
	if !m.handlerStart(s) {
		return
	}
	defer m.handlers.Done()

	ctx, cancel := context.WithTimeout(m.serveCtx, m.cfg.RequestTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetReadDeadline(time.Now().Add(min(requestReadTimeout, m.cfg.RequestTimeout)))
	r := bufio.NewReaderSize(s, 256)
	v, err := r.ReadByte()
	if err != nil || v != 1 {
		_ = s.Reset()
		return
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n == 0 || n > maxDocPath {
		_ = s.Reset()
		return
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		_ = s.Reset()
		return
	}
	dl, _ := ctx.Deadline()
	_ = s.SetWriteDeadline(dl)
	p := string(buf)
	if checkDocPath(p) != nil {
		_, _ = s.Write([]byte{statusNotFound})
		_ = s.Close()
		return
	}
	data, err := m.node.ReadDoc(ctx, p)
	if err != nil || len(data) > MaxDocSize {
		_, _ = s.Write([]byte{statusNotFound})
		_ = s.Close()
		return
	}
	out := binary.AppendUvarint([]byte{statusOK}, uint64(len(data)))
	_, err = s.Write(out)
	if err == nil {
		_, err = s.Write(data)
	}
	if err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// checkDocPath admits clean relative repository paths of documents, not chunks.
func checkDocPath(p string) error {
	if p == "" || len(p) > maxDocPath || path.Clean(p) != p || strings.HasPrefix(p, "/") ||
		strings.Contains(p, "..") || !strings.HasSuffix(p, ".json") || strings.HasPrefix(p, "chunks/") {
		return fmt.Errorf("document path %q: %w", p, errProtocol)
	}
	return nil
}
