package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// guard bounds a body stream: at most max bytes, no wait longer than idle
// inside a Read, the whole-request deadline for small bodies, and the caller's
// context. Time spent by the caller between Reads does not count as a stall.
type guard struct {
	ctx  context.Context
	name string // "<source>/<path>" for messages
	r    io.Reader
	// abort unblocks a Read in progress (close the body, expire a deadline);
	// it may run concurrently with Read. Nil when reads never block long.
	abort func()
	// release frees the stream; clean reports that it was read to EOF without
	// error, so a connection can be reused.
	release func(clean bool) error

	max, n   int64
	size     int64 // the body's announced length; -1: unknown
	idle     time.Duration
	deadline time.Time // zero: none
	throttle Throttle  // nil: none

	timer     *time.Timer
	stopAfter func() bool // unregisters the context watch
	err       error       // sticky
	eof       bool
	closeOnce sync.Once
	closeErr  error
}

func newGuard(ctx context.Context, name string, r io.Reader, max int64, opts Options, start time.Time, abort func(), release func(bool) error) *guard {
	g := &guard{ctx: ctx, name: name, r: r, abort: abort, release: release, max: max, size: -1, idle: opts.IdleTimeout, throttle: opts.Throttle}
	if max <= smallBody && opts.Timeout > 0 {
		g.deadline = start.Add(opts.Timeout)
	}
	if abort != nil {
		g.timer = time.AfterFunc(time.Hour, abort)
		g.timer.Stop()
		g.stopAfter = context.AfterFunc(ctx, abort)
	}
	return g
}

func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.eof {
		return 0, io.EOF
	}
	if err := g.ctx.Err(); err != nil {
		g.err = fmt.Errorf("read %s: %w", g.name, err)
		return 0, g.err
	}
	// Ask for one byte more than allowed, so an oversized body is detected
	// without reading further.
	if room := g.max + 1 - g.n; int64(len(p)) > room {
		p = p[:room]
	}
	wait, why := g.idle, ErrStalled
	if !g.deadline.IsZero() {
		if left := time.Until(g.deadline); left < wait {
			wait, why = left, errTimeout
		}
	}
	if wait <= 0 {
		g.err = fmt.Errorf("read %s: %w", g.name, why)
		return 0, g.err
	}
	if g.timer != nil {
		g.timer.Reset(wait)
	}
	n, err := g.r.Read(p)
	fired := g.timer != nil && !g.timer.Stop()
	g.n += int64(n)
	if n > 0 && g.throttle != nil && !fired {
		// Paid after the read: the bytes moved. The wait is ours, not the
		// source's, so it moves the whole-request deadline along.
		start := time.Now()
		werr := g.throttle.WaitN(g.ctx, n)
		if !g.deadline.IsZero() {
			g.deadline = g.deadline.Add(time.Since(start))
		}
		if werr != nil && err == nil {
			g.err = fmt.Errorf("read %s: %w", g.name, werr)
			return n, g.err
		}
	}
	switch {
	case g.n > g.max:
		n -= int(g.n - g.max)
		g.n = g.max
		g.err = fmt.Errorf("read %s: over %d bytes: %w", g.name, g.max, ErrTooLarge)
		return n, g.err
	case g.ctx.Err() != nil && (err != nil || fired):
		g.err = fmt.Errorf("read %s: %w", g.name, g.ctx.Err())
		return n, g.err
	case fired:
		if why == ErrStalled {
			g.err = fmt.Errorf("read %s: no data for %v: %w", g.name, wait, ErrStalled)
		} else {
			g.err = fmt.Errorf("read %s: %w", g.name, errTimeout)
		}
		return n, g.err
	case errors.Is(err, io.EOF):
		g.eof = true
		return n, io.EOF
	case err != nil:
		g.err = fmt.Errorf("read %s: %w", g.name, err)
		return n, g.err
	}
	return n, nil
}

// Size returns the length the source announced for the body (an HTTP
// Content-Length, a file's size), or -1. It is a hint for sizing a buffer: the
// bounds still apply to what is read.
func (g *guard) Size() int64 { return g.size }

func (g *guard) Close() error {
	g.closeOnce.Do(func() {
		if g.timer != nil {
			g.timer.Stop()
			g.stopAfter()
		}
		g.closeErr = g.release(g.eof && g.err == nil)
	})
	return g.closeErr
}
