package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patchmesh/patchmesh/manifest/batch"
)

// batchReader is a source that can read many chunk files in one request
// (package batch): an HTTP server that is a patchmesh seed.
type batchReader interface {
	// readBatch reads the files at paths, each at most max bytes, and hands
	// each to each as it arrives, in order: its bytes, or found false. An
	// error means the source did not deliver the rest; wrapping errNoBatch,
	// that it does not answer batch reads at all.
	readBatch(ctx context.Context, paths []string, max int64, each func(i int, data []byte, found bool)) error
}

// errNoBatch means a source answered a batch read as a server without them
// does (404, 405, a body of another type).
var errNoBatch = errors.New("source does not answer batch reads")

// Batches gather the chunk reads made at once into batch reads.
const (
	// batchesInFlight bounds the batch requests in flight: the reads made
	// while they are queue for the next, so the more reads at once the
	// larger each batch. Two keep the link busy while one is answered.
	batchesInFlight = 2
	// batchMax is the most reads one batch carries.
	batchMax = 64
	// noBatchFor is how long a source whose batch read failed is read a
	// file at a time before it is asked for a batch again: a server
	// without them pays one refused request a minute.
	noBatchFor = time.Minute
)

// batches gathers a List's concurrent chunk reads into batch reads to the
// first source, when it answers them. It owns the goroutines that make the
// requests; List.Close stops them.
type batches struct {
	l      *List
	ctx    context.Context // cancelled by stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	queue   []*batchItem
	running int // batch requests in flight
}

type batchItem struct {
	e    *entry
	path string
	max  int64
	left atomic.Bool // the reader stopped waiting
	done chan batchResult
}

type batchResult struct {
	data []byte
	err  error
}

// errMissing: the batch said the file is not on the source.
var errMissing = errors.New("not in batch")

func newBatches(l *List) *batches {
	ctx, cancel := context.WithCancel(context.Background())
	return &batches{l: l, ctx: ctx, cancel: cancel}
}

// stop ends the batch requests in flight and waits for their goroutines.
func (b *batches) stop() {
	// Under the lock that read holds from its check of ctx to wg.Add, so
	// no dispatcher starts after Wait.
	b.mu.Lock()
	b.cancel()
	b.mu.Unlock()
	b.wg.Wait()
}

// read queues path for a batch to e and waits for its bytes. Any error means
// the file is to be read on its own.
func (b *batches) read(ctx context.Context, e *entry, path string, max int64) ([]byte, error) {
	it := &batchItem{e: e, path: path, max: max, done: make(chan batchResult, 1)}
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		return nil, b.ctx.Err()
	}
	b.queue = append(b.queue, it)
	if b.running < batchesInFlight {
		b.running++
		b.wg.Add(1)
		go b.dispatch()
	}
	b.mu.Unlock()
	select {
	case r := <-it.done:
		return r.data, r.err
	case <-ctx.Done():
		it.left.Store(true)
		return nil, ctx.Err()
	}
}

// dispatch sends batches while reads are queued.
func (b *batches) dispatch() {
	defer b.wg.Done()
	for {
		items := b.take()
		if items == nil {
			return
		}
		b.send(items)
	}
}

// take removes the next batch from the queue: reads of the source at its
// head, in order, whose readers still wait. When there is none it counts
// the dispatcher out and returns nil.
func (b *batches) take() []*batchItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	var items []*batchItem
	rest := b.queue[:0]
	for _, it := range b.queue {
		switch {
		case it.left.Load():
		case b.ctx.Err() != nil:
			it.done <- batchResult{err: b.ctx.Err()}
		case len(items) < batchMax && (items == nil || it.e == items[0].e):
			items = append(items, it)
		default:
			rest = append(rest, it)
		}
	}
	clear(b.queue[len(rest):])
	b.queue = rest
	if items == nil {
		b.running--
	}
	return items
}

// send makes one batch request and hands each read its result.
func (b *batches) send(items []*batchItem) {
	e := items[0].e
	if b.l.batchEntry() != e {
		// Its last batch failed, or it went into backoff, since these
		// were queued: they are read on their own.
		for _, it := range items {
			it.done <- batchResult{err: errNoBatch}
		}
		return
	}
	paths := make([]string, len(items))
	limit := int64(0)
	for i, it := range items {
		paths[i] = it.path
		limit = max(limit, it.max)
	}
	got := 0
	err := e.src.(batchReader).readBatch(b.ctx, paths, limit, func(i int, data []byte, found bool) {
		if i == 0 {
			// The source answers; before any reader checks what it sent,
			// so bad bytes leave it failed.
			b.l.answered(e)
			b.l.mu.Lock()
			e.batched = true
			b.l.mu.Unlock()
		}
		got = i + 1
		if !found {
			items[i].done <- batchResult{err: errMissing}
			return
		}
		e.bytesRead.Add(int64(len(data)))
		if int64(len(data)) > items[i].max {
			items[i].done <- batchResult{err: fmt.Errorf("batch: %s: %d bytes, over %d: %w", items[i].path, len(data), items[i].max, ErrTooLarge)}
			return
		}
		items[i].done <- batchResult{data: data}
	})
	if err != nil && b.ctx.Err() == nil {
		// Not a failure of the source: its files are read one at a time
		// for a while, and those reads judge it. Said before the reads
		// left move on, so none of them is sent in another batch.
		b.l.noBatch(e, err)
	}
	for _, it := range items[got:] {
		it.done <- batchResult{err: fmt.Errorf("batch: %w", err)}
	}
}

// ReadChunk reads a chunk file like ReadVerified. While the first source in
// order is up and answers batch reads, the chunk files read at once go to it
// in batches, a request for many; the bytes are checked alike. A chunk a
// batch did not bring, or brought bad, is then read on its own through
// ReadVerified: every source in order.
func (l *List) ReadChunk(ctx context.Context, path string, max int64, check func(Source, []byte) error) ([]byte, Source, error) {
	if e := l.batchEntry(); e != nil && strings.HasPrefix(path, "chunks/") {
		data, err := l.batches.read(ctx, e, path, max)
		if err == nil {
			if err = check(e.src, data); err == nil {
				return data, e.src, nil
			}
			// As ReadVerified would: bad bytes are the source's failure.
			l.fail(e, path, err)
		}
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("open %s: %w", path, ctx.Err())
		}
	}
	return l.ReadVerified(ctx, path, max, check)
}

// Batches reports whether chunk reads now go to the first source in
// batches: it is up and answers them. Unless one of its batches was answered
// since the last failed, it asks, with a batch of no chunks; so a caller may
// size what it reads at once before it reads.
func (l *List) Batches(ctx context.Context) bool {
	e := l.batchEntry()
	if e == nil {
		return false
	}
	l.mu.Lock()
	known := e.batched
	l.mu.Unlock()
	if known {
		return true
	}
	err := e.src.(batchReader).readBatch(ctx, nil, 0, nil)
	if err != nil {
		if ctx.Err() == nil {
			l.noBatch(e, err)
		}
		return false
	}
	l.mu.Lock()
	e.batched = true
	l.mu.Unlock()
	return true
}

// batchEntry returns the first source in order if it is up and may answer
// batch reads, or nil.
func (l *List) batchEntry() *entry {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.failures > 0 && now.Before(e.retryAt) {
			continue // in backoff: the next is first
		}
		if _, ok := e.src.(batchReader); !ok || now.Before(e.noBatchUntil) {
			return nil
		}
		return e
	}
	return nil
}

// noBatch records that e's batch read failed: its chunks are read one at a
// time for noBatchFor.
func (l *List) noBatch(e *entry, err error) {
	l.mu.Lock()
	first := e.noBatchUntil.IsZero()
	e.noBatchUntil = l.now().Add(noBatchFor)
	e.batched = false
	l.mu.Unlock()
	if errors.Is(err, errNoBatch) {
		// A static server: expected, and said once.
		if first {
			l.logger.Info("source does not answer batch reads; reading chunks one at a time", "source", e.src.String(), "err", err)
		}
		return
	}
	l.logger.Warn("batch read failed; reading chunks one at a time for a while", "source", e.src.String(), "retry_in", noBatchFor, "err", err)
}

// readBatch implements batchReader: POST batch.Path.
func (s *httpSource) readBatch(ctx context.Context, paths []string, max int64, each func(i int, data []byte, found bool)) error {
	start := time.Now()
	u := *s.base
	u.Path += "/" + batch.Path
	name := s.String() + "/" + batch.Path

	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(s.opts.Timeout, func() { cancel(errTimeout) })
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, u.String(), strings.NewReader(strings.Join(paths, "\n")+"\n"))
	if err != nil {
		timer.Stop()
		return fmt.Errorf("post %s: %w", name, err)
	}
	req.Header.Set("User-Agent", s.opts.UserAgent)
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("Accept", batch.ContentType)
	resp, err := s.client.Do(req)
	timedOut := !timer.Stop()
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("post %s: %w", name, ctx.Err())
	case timedOut:
		if resp != nil {
			resp.Body.Close()
		}
		return fmt.Errorf("post %s: no response in %v: %w", name, s.opts.Timeout, errTimeout)
	case err != nil:
		return fmt.Errorf("post %s: %w", name, err)
	}
	defer resp.Body.Close()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || mt != batch.ContentType {
		return fmt.Errorf("post %s: %s, %q: %w", name, resp.Status, mt, errNoBatch)
	}
	body := resp.Body
	g := newGuard(ctx, name, body, int64(len(paths))*(max+16), s.opts, start, func() { body.Close() }, func(bool) error { return body.Close() })
	defer g.Close()
	br := bufio.NewReaderSize(g, 64<<10)
	for i := range paths {
		st, n, err := batch.ReadHeader(br, max)
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("read %s: item %d of %d: %w", name, i+1, len(paths), err)
		}
		if st == batch.Missing {
			each(i, nil, false)
			continue
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(br, data); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read %s: item %d of %d: %w", name, i+1, len(paths), err)
		}
		each(i, data, true)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = fmt.Errorf("more than %d items: %w", len(paths), batch.ErrFormat)
		}
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}
