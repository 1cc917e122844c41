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
		b, err := io.ReadAll(r)
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
