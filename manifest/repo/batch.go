package repo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/patchmesh/patchmesh/manifest/batch"
)

// serveBatch answers a batch read (package batch): the chunk files the
// request's body names, in its order. A failure after the first byte breaks
// the connection, so the client cannot take a short stream for a whole one.
func (h *handler) serveBatch(w *countingWriter, r *http.Request) {
	names, err := batchRequest(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", batch.ContentType)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	// Items are small (19 KiB on average): gathered, a batch leaves in a few
	// large writes.
	bw := bufio.NewWriterSize(w, 64<<10)
	abort := func(name string, err error) {
		if h.opts.Logger != nil {
			h.opts.Logger.Error("batch", "path", name, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	for _, name := range names {
		f, err := h.files.Open(r.Context(), name)
		if errors.Is(err, fs.ErrNotExist) {
			if h.opts.Stats != nil {
				h.opts.Stats.NotFound.Add(1)
			}
			if err := batch.WriteHeader(bw, batch.Missing, 0); err != nil {
				abort(name, err)
			}
			continue
		}
		if err != nil {
			abort(name, err)
		}
		err = batch.WriteHeader(bw, batch.Found, f.Size)
		var n int64
		if err == nil {
			n, err = io.CopyN(bw, f.Content, f.Size)
		}
		if f.Close != nil {
			f.Close()
		}
		if err != nil {
			abort(name, err)
		}
		if h.opts.Stats != nil {
			h.opts.Stats.Chunks.Add(1)
			h.opts.Stats.ChunkBytes.Add(n)
		}
	}
	if err := bw.Flush(); err != nil {
		abort(batch.Path, err)
	}
}

// batchRequest reads a batch request's body: chunk paths, one per line.
func batchRequest(body io.Reader) ([]string, error) {
	data, err := io.ReadAll(io.LimitReader(body, batch.MaxRequest+1))
	if err != nil {
		return nil, fmt.Errorf("batch: read request: %w", err)
	}
	if len(data) > batch.MaxRequest {
		return nil, fmt.Errorf("batch: request over %d bytes", batch.MaxRequest)
	}
	text := strings.TrimSuffix(string(data), "\n")
	if text == "" {
		return nil, nil // a client asking whether batches are answered
	}
	names := strings.Split(text, "\n")
	if len(names) > batch.MaxPaths {
		return nil, fmt.Errorf("batch: %d paths, over %d", len(names), batch.MaxPaths)
	}
	for _, n := range names {
		clean, ok := cleanRequestPath("/" + n)
		if !ok || clean != n || n == batch.Path || !strings.HasPrefix(n, chunksDir+"/") {
			return nil, fmt.Errorf("batch: %q is not a chunk path", n)
		}
	}
	return names, nil
}
