package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/node/source"
)

// retryAttempts is how many times Retry asks its source for one chunk.
const retryAttempts = 4

// Retry returns a Source that asks src a few times, waiting delay, then twice
// delay, and so on between attempts (zero means 500ms): a failed attempt (a
// dead peer, a source that timed out) is often fixed by the next, which may go
// elsewhere. A chunk no source has (source.ErrNotFound) is not asked again.
// log, if not nil, gets each failed attempt.
func Retry(src Source, delay time.Duration, log *slog.Logger) Source {
	if delay <= 0 {
		delay = 500 * time.Millisecond
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &retry{src: src, delay: delay, log: log}
}

type retry struct {
	src   Source
	delay time.Duration
	log   *slog.Logger
}

func (r *retry) Fetch(ctx context.Context, c cid.Cid) ([]byte, chunk.Origin, error) {
	var last error
	for attempt := range retryAttempts {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt) * r.delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, chunk.Origin{}, ctx.Err()
			}
		}
		data, o, err := r.src.Fetch(ctx, c)
		if err == nil {
			return data, o, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, chunk.Origin{}, ctx.Err()
		}
		if errors.Is(err, source.ErrNotFound) {
			break
		}
		r.log.Debug("chunk fetch failed", "cid", c, "attempt", attempt+1, "err", err)
	}
	return nil, chunk.Origin{}, last
}
