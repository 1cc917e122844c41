package source

import (
	"context"
	"io"
)

// ReadVerified reads a small file fully, like ReadAll, and hands it to check
// before accepting it. When check refuses the bytes (a tampered chunk, a stale or
// badly signed document) that source counts as failed and the next one is asked,
// so one bad mirror never blocks a good one behind it.
func (l *List) ReadVerified(ctx context.Context, path string, max int64, check func(Source, []byte) error) ([]byte, Source, error) {
	var data []byte
	src, err := l.try(ctx, path, max, func(e *entry, r io.ReadCloser) error {
		defer r.Close()
		b, err := readAll(r, max)
		e.bytesRead.Add(int64(len(b)))
		if err != nil {
			return err
		}
		if err := check(e.src, b); err != nil {
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

// readAll reads r to its end like io.ReadAll, but into one buffer of the size
// the source announced when it did: a chunk is then read with one allocation
// and no copy, where ReadAll grows its buffer from 512 bytes. A body longer
// or shorter than announced is still read whole (the source's bound holds).
func readAll(r io.Reader, max int64) ([]byte, error) {
	sz, ok := r.(interface{ Size() int64 })
	if !ok {
		return io.ReadAll(r)
	}
	n := sz.Size()
	if n < 0 || n > max {
		return io.ReadAll(r)
	}
	// One byte more than announced, so that reading the end needs no growth.
	b := make([]byte, 0, n+1)
	for {
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			// Longer than announced: let append grow it.
			b = append(b, 0)[:len(b)]
		}
	}
}
