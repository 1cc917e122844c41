package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
)

// maxScrubList bounds the damaged CIDs one scrub returns; the count goes on.
const maxScrubList = 1000

// ScrubResult is what one pass of Scrub read and dropped.
type ScrubResult struct {
	Chunks, Bytes int64     // chunks read and checked, and their raw bytes
	Damaged       int64     // chunks found damaged and dropped
	DamagedCIDs   []cid.Cid // the first maxScrubList of them
}

// Integrity counts, since the store opened, the damaged chunks dropped (by
// any read or a scrub) and what scrubs read.
type Integrity struct {
	Dropped                              int64
	ScrubChunks, ScrubBytes, ScrubPasses int64
}

// Integrity returns the store's integrity counters.
func (s *Store) Integrity() Integrity {
	return Integrity{Dropped: s.dropped.Load(), ScrubChunks: s.scrubChunks.Load(),
		ScrubBytes: s.scrubBytes.Load(), ScrubPasses: s.scrubPasses.Load()}
}

// Scrub reads every chunk the store holds and checks it as every read does,
// dropping the damaged ones, so that damage is found while the chunk can
// still be fetched again, not when a release or a peer needs it. rate bounds
// the raw bytes read per second (0: no bound), so a background pass does not
// compete with the node's work. A chunk put during the pass may or may not
// be read.
func (s *Store) Scrub(ctx context.Context, rate int64) (ScrubResult, error) {
	var res ScrubResult
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	start := time.Now()
	err := s.ForEach(ctx, func(c cid.Cid, size int64) error {
		err := s.read(ctx, c, (*bp)[:0], false, func(_, _ []byte) error { return nil })
		switch {
		case errors.Is(err, ErrCorrupt):
			res.Damaged++
			if len(res.DamagedCIDs) < maxScrubList {
				res.DamagedCIDs = append(res.DamagedCIDs, c)
			}
		case errors.Is(err, ErrNotFound): // deleted since the walk listed it
			return nil
		case err != nil:
			return fmt.Errorf("scrub chunk %s: %w", c, err)
		}
		res.Chunks++
		res.Bytes += size
		s.scrubChunks.Add(1)
		s.scrubBytes.Add(size)
		if rate > 0 {
			// Ahead of rate: wait until the bytes read so far are due.
			due := start.Add(time.Duration(float64(res.Bytes) / float64(rate) * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				t := time.NewTimer(wait)
				defer t.Stop()
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-t.C:
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("scrub chunk store: %w", err)
	}
	s.scrubPasses.Add(1)
	s.log.Info("chunk store scrubbed", "chunks", res.Chunks, "bytes", res.Bytes, "damaged", res.Damaged,
		"took", time.Since(start).Round(time.Millisecond))
	return res, nil
}
