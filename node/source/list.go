package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Backoff of a failed source: 1s, doubling per consecutive failure, up to 5m.
const (
	backoffMin = time.Second
	backoffMax = 5 * time.Minute
)

// List is an ordered list of sources with failure memory: a source that fails
// is skipped for a backoff period, so a dead server does not cost a timeout
// on every file. It is safe for concurrent use.
type List struct {
	logger  *slog.Logger
	now     func() time.Time // the clock; tests replace it
	entries []*entry
	batches *batches

	mu sync.Mutex // guards the state fields of entries
}

type entry struct {
	src       Source
	bytesRead atomic.Int64

	failures  int
	total     int64 // failures ever, for counters that never go down
	lastErr   string
	lastErrAt time.Time
	lastOK    time.Time
	retryAt   time.Time
	// noBatchUntil: until then, the source's chunks are read one at a time
	// (its batch read failed).
	noBatchUntil time.Time
	batched      bool // a batch was answered since
}

// Health is the state of one source, for status pages and the API.
type Health struct {
	URL           string    `json:"url"`
	Healthy       bool      `json:"healthy"`
	Failures      int       `json:"failures"`       // consecutive, reset on success
	FailuresTotal int64     `json:"failures_total"` // since start, never reset
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	LastOK        time.Time `json:"last_ok,omitzero"`
	RetryAt       time.Time `json:"retry_at,omitzero"` // end of the backoff
	BytesRead     int64     `json:"bytes_read"`
}

// NewList returns a list trying sources in the given order. A nil logger
// discards logs.
func NewList(sources []Source, logger *slog.Logger) *List {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &List{logger: logger, now: time.Now}
	l.batches = newBatches(l)
	for _, s := range sources {
		l.entries = append(l.entries, &entry{src: s})
	}
	return l
}

// Close ends the batch reads in flight and closes the sources that hold
// connections.
func (l *List) Close() error {
	l.batches.stop()
	var errs []error
	for _, e := range l.entries {
		if c, ok := e.src.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close source %s: %w", e.src, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Open tries the sources in order, skipping those in backoff (unless all
// are), and returns the first that answers with the file. ErrNotFound from a
// source means the file is not there: the next source is tried too, and if
// every source says not found the error is ErrNotFound. A failure (connection
// refused, 5xx, timeout, stall, TLS error, too large) puts the source in
// backoff and moves on; so does a failure while the returned reader is read.
func (l *List) Open(ctx context.Context, path string, max int64) (io.ReadCloser, Source, error) {
	var rc io.ReadCloser
	src, err := l.try(ctx, path, max, func(e *entry, r io.ReadCloser) error {
		rc = &countingReader{r: r, l: l, e: e, ctx: ctx, path: path}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return rc, src, nil
}

// ReadAll reads a small file fully, bounded by max. A failure in the middle
// of the body also moves on to the next source.
func (l *List) ReadAll(ctx context.Context, path string, max int64) ([]byte, Source, error) {
	var data []byte
	src, err := l.try(ctx, path, max, func(e *entry, r io.ReadCloser) error {
		defer r.Close()
		b, err := io.ReadAll(r)
		e.bytesRead.Add(int64(len(b)))
		if err != nil {
			return err
		}
		data = b
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return data, src, nil
}

// try opens path on each candidate source in turn and hands the reader to
// use; an error from use is a failure of that source.
func (l *List) try(ctx context.Context, path string, max int64, use func(*entry, io.ReadCloser) error) (Source, error) {
	if err := checkRequest(path, max); err != nil {
		return nil, err
	}
	var failed []error
	var notFound []string
	for _, e := range l.candidates() {
		r, err := e.src.Open(ctx, path, max)
		if err == nil {
			l.answered(e)
			err = use(e, r)
			if err == nil {
				return e.src, nil
			}
		}
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("open %s: %w", path, ctx.Err())
		case errors.Is(err, ErrNotFound):
			l.answered(e)
			l.logger.Debug("file not on source", "source", e.src.String(), "path", path)
			notFound = append(notFound, e.src.String())
		default:
			l.fail(e, path, err)
			failed = append(failed, err)
		}
	}
	switch {
	case len(failed) == 0 && len(notFound) == 0:
		return nil, fmt.Errorf("open %s: no sources configured", path)
	case len(failed) == 0:
		return nil, fmt.Errorf("open %s: not on %s: %w", path, strings.Join(notFound, ", "), ErrNotFound)
	}
	// Not ErrNotFound: a failed source may hold the file.
	msg := fmt.Sprintf("open %s: %d of %d sources failed", path, len(failed), len(failed)+len(notFound))
	if len(notFound) > 0 {
		msg += " (not found on " + strings.Join(notFound, ", ") + ")"
	}
	return nil, fmt.Errorf("%s: %w", msg, errors.Join(failed...))
}

// candidates returns the sources not in backoff, in order, then those in
// backoff: a source in backoff is asked only when no other delivered, so that
// a file is never reported missing while a source that may hold it was not
// asked.
func (l *List) candidates() []*entry {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	ready := make([]*entry, 0, len(l.entries))
	var later []*entry
	for _, e := range l.entries {
		if e.failures == 0 || !now.Before(e.retryAt) {
			ready = append(ready, e)
		} else {
			later = append(later, e)
		}
	}
	return append(ready, later...)
}

// answered records that e responded (with the file or a clean not-found).
func (l *List) answered(e *entry) {
	now := l.now()
	l.mu.Lock()
	recovered := e.failures > 0
	e.failures = 0
	e.retryAt = time.Time{}
	e.lastOK = now
	l.mu.Unlock()
	if recovered {
		l.logger.Info("source recovered", "source", e.src.String())
	}
}

func (l *List) fail(e *entry, path string, err error) {
	now := l.now()
	l.mu.Lock()
	e.failures++
	e.total++
	wait := backoffMax
	if e.failures <= 16 {
		wait = min(backoffMin<<(e.failures-1), backoffMax)
	}
	e.retryAt = now.Add(wait)
	e.lastErr = err.Error()
	e.lastErrAt = now
	failures := e.failures
	l.mu.Unlock()
	l.logger.Warn("source failed", "source", e.src.String(), "path", path,
		"failures", failures, "retry_in", wait, "err", err)
}

// Health returns the state of every source, in list order.
func (l *List) Health() []Health {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := make([]Health, 0, len(l.entries))
	for _, e := range l.entries {
		hs = append(hs, Health{
			URL:           e.src.String(),
			Healthy:       e.failures == 0,
			Failures:      e.failures,
			FailuresTotal: e.total,
			LastError:     e.lastErr,
			LastErrorAt:   e.lastErrAt,
			LastOK:        e.lastOK,
			RetryAt:       e.retryAt,
			BytesRead:     e.bytesRead.Load(),
		})
	}
	return hs
}

// countingReader counts bytes for Health and puts the source in backoff when
// the body fails (stall, reset, too large) after Open returned.
type countingReader struct {
	r      io.ReadCloser
	l      *List
	e      *entry
	ctx    context.Context
	path   string
	failed bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.e.bytesRead.Add(int64(n))
	if err != nil && !errors.Is(err, io.EOF) && !c.failed && c.ctx.Err() == nil {
		c.failed = true
		c.l.fail(c.e, c.path, err)
	}
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
