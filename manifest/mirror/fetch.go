package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const userAgent = "patchmesh-mirror"

// fetched is the outcome of collecting one file.
type fetched struct {
	st         fileState
	kept       bool  // taken from the previous tree
	downloaded int64 // bytes moved from the upstream
	resumed    int64 // bytes of a partial download reused
}

// fetch puts item it at dst (under next/), reusing the previous tree's copy
// when it is known unchanged, and checks it against the index.
func (m *Mirror) fetch(ctx context.Context, it item, prev *fileState, dst string) (fetched, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fetched{}, err
	}
	old := filepath.Join(m.treeDir(), filepath.FromSlash(it.path))
	if prev != nil && it.sha256 != "" && prev.SHA256 == it.sha256 && (it.size < 0 || it.size == prev.Size) && exists(old) {
		if err := linkOrCopy(old, dst); err != nil {
			return fetched{}, err
		}
		return fetched{st: *prev, kept: true}, nil
	}
	if it.data != nil {
		st := fileState{Size: int64(len(it.data)), SHA256: hexSum(it.data)}
		if err := os.WriteFile(dst, it.data, 0o644); err != nil {
			return fetched{}, err
		}
		return fetched{st: st}, nil
	}
	if it.url == "" {
		return m.fetchSource(ctx, it, dst)
	}
	if prev != nil && (prev.URL != it.url || !exists(old) || it.sha256 != "") {
		// Validators of another URL or of a lost file say nothing, and the
		// index already said the file changed: an If-Modified-Since could
		// still get a 304 for a change within the same second.
		prev = nil
	}
	var f fetched
	var err error
	for attempt := 1; attempt <= m.cfg.Attempts; attempt++ {
		var r fetched
		r, err = m.download(ctx, it, prev, old, dst)
		f.downloaded += r.downloaded
		if f.resumed == 0 {
			f.resumed = r.resumed
		}
		if err == nil {
			f.st, f.kept = r.st, r.kept
			return f, nil
		}
		if errors.Is(err, ErrRefused) || ctx.Err() != nil || errors.Is(err, errNotFound) {
			break
		}
		m.log.Info("mirror: download failed, resuming", "path", it.path, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
	}
	return f, err
}

var errNotFound = errors.New("not found upstream")

// partMeta is kept beside a partial download: a resumed range is asked only
// for the same version of the file (If-Range).
type partMeta struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// download GETs it.url into a partial file, resuming one a previous attempt
// left, then checks and moves it to dst. With prev (the previous tree's
// validators) and no partial, the GET is conditional: 304 keeps old.
func (m *Mirror) download(ctx context.Context, it item, prev *fileState, old, dst string) (fetched, error) {
	key := hexSum([]byte(it.url))[:32]
	part := filepath.Join(m.partialDir(), key+".part")
	metaPath := filepath.Join(m.partialDir(), key+".json")
	if err := os.MkdirAll(m.partialDir(), 0o755); err != nil {
		return fetched{}, err
	}
	var meta partMeta
	var off int64
	if data, err := os.ReadFile(metaPath); err == nil && json.Unmarshal(data, &meta) == nil && meta.URL == it.url && (meta.ETag != "" || meta.LastModified != "") {
		if fi, err := os.Stat(part); err == nil {
			off = fi.Size()
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, it.url, nil)
	if err != nil {
		return fetched{}, fmt.Errorf("get %s: %w", it.path, err)
	}
	req.Header.Set("User-Agent", userAgent)
	switch {
	case off > 0:
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
		if meta.ETag != "" && !strings.HasPrefix(meta.ETag, "W/") {
			req.Header.Set("If-Range", meta.ETag)
		} else {
			req.Header.Set("If-Range", meta.LastModified)
		}
	case prev != nil && prev.ETag != "":
		req.Header.Set("If-None-Match", prev.ETag)
	case prev != nil && prev.LastModified != "":
		req.Header.Set("If-Modified-Since", prev.LastModified)
	}
	// The body is bounded by the idle timer below, not by a whole-request one:
	// a large file on a slow link legitimately takes long.
	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, err := m.client.Do(req.WithContext(reqCtx))
	if err != nil {
		return fetched{}, fmt.Errorf("get %s: %w", it.url, err)
	}
	defer resp.Body.Close()
	var flags int
	var res fetched
	switch {
	case resp.StatusCode == http.StatusNotModified && prev != nil && off == 0:
		if err := linkOrCopy(old, dst); err != nil {
			return fetched{}, err
		}
		return fetched{st: *prev, kept: true}, nil
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != off {
			return fetched{}, fmt.Errorf("get %s: server answered range %q to a request from byte %d", it.url, resp.Header.Get("Content-Range"), off)
		}
		flags = os.O_WRONLY | os.O_APPEND
		res.resumed = off
	case resp.StatusCode == http.StatusOK:
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		off = 0
		meta = partMeta{URL: it.url, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
		data, _ := json.Marshal(meta)
		if err := os.WriteFile(metaPath, data, 0o644); err != nil {
			return fetched{}, err
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The partial file is not a prefix of what the server has now.
		os.Remove(part)
		os.Remove(metaPath)
		return fetched{}, fmt.Errorf("get %s: %s to a resumed range; starting over", it.url, resp.Status)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fetched{}, fmt.Errorf("get %s: %s: %w", it.url, resp.Status, errNotFound)
	default:
		return fetched{}, fmt.Errorf("get %s: server answered %s", it.url, resp.Status)
	}
	limit := m.cfg.MaxFileSize
	if it.size >= 0 {
		limit = it.size // more than the index says is already wrong
	}
	if resp.ContentLength > 0 && off+resp.ContentLength > limit {
		os.Remove(part)
		os.Remove(metaPath)
		return fetched{}, fmt.Errorf("get %s: %d bytes, over the %d expected: %w", it.path, off+resp.ContentLength, limit, ErrRefused)
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return fetched{}, err
	}
	body := &idleReader{r: resp.Body, timeout: m.cfg.IdleTimeout, cancel: cancel}
	n, err := io.Copy(f, io.LimitReader(body, limit-off+1))
	body.stop()
	res.downloaded = n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if c := context.Cause(reqCtx); errors.Is(c, errStalled) {
			err = fmt.Errorf("%w (%w)", c, err)
		}
		return res, fmt.Errorf("get %s: after %d bytes: %w", it.url, off+n, err)
	}
	if off+n > limit {
		os.Remove(part)
		os.Remove(metaPath)
		return res, fmt.Errorf("get %s: more than the %d bytes expected: %w", it.path, limit, ErrRefused)
	}
	st, err := m.check(it, part)
	if err != nil {
		os.Remove(metaPath)
		return res, err
	}
	st.URL, st.ETag, st.LastModified = it.url, meta.ETag, meta.LastModified
	if err := os.Rename(part, dst); err != nil {
		return res, err
	}
	os.Remove(metaPath)
	res.st = st
	return res, nil
}

// fetchSource copies a file of an FTP or folder upstream (no resume: folders
// need none, and FTP upstreams are rare enough).
func (m *Mirror) fetchSource(ctx context.Context, it item, dst string) (fetched, error) {
	if m.src == nil {
		return fetched{}, fmt.Errorf("fetch %s: no upstream", it.path)
	}
	limit := m.cfg.MaxFileSize
	if it.size >= 0 {
		limit = it.size + 1 // one more byte tells "too large" from "exact"
	}
	rc, err := m.src.Open(ctx, it.path, limit)
	if err != nil {
		return fetched{}, fmt.Errorf("fetch %s: %w", it.path, err)
	}
	defer rc.Close()
	tmp := dst + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fetched{}, err
	}
	n, err := io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fetched{downloaded: n}, fmt.Errorf("fetch %s: %w", it.path, err)
	}
	st, err := m.check(it, tmp)
	if err != nil {
		return fetched{downloaded: n}, err
	}
	return fetched{st: st, downloaded: n}, os.Rename(tmp, dst)
}

// check hashes a collected file and compares it with the index; a file that
// does not match is removed.
func (m *Mirror) check(it item, name string) (fileState, error) {
	f, err := os.Open(name)
	if err != nil {
		return fileState{}, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		return fileState{}, fmt.Errorf("hash %s: %w", it.path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	switch {
	case it.size >= 0 && n != it.size:
		os.Remove(name)
		return fileState{}, fmt.Errorf("%s: %d bytes, the index says %d: %w", it.path, n, it.size, ErrRefused)
	case it.sha256 != "" && sum != it.sha256:
		os.Remove(name)
		return fileState{}, fmt.Errorf("%s: sha256 %s, the index says %s: %w", it.path, sum, it.sha256, ErrRefused)
	}
	return fileState{Size: n, SHA256: sum}, nil
}

// rangeStart parses the first byte of "bytes first-last/total".
func rangeStart(cr string) (int64, bool) {
	s, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(first, 10, 64)
	return v, err == nil
}

var errStalled = errors.New("transfer stalled")

// idleReader cancels its request when no byte arrives for timeout.
type idleReader struct {
	r       io.Reader
	timeout time.Duration
	cancel  context.CancelCauseFunc
	timer   *time.Timer
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.timer == nil {
		r.timer = time.AfterFunc(r.timeout, func() { r.cancel(errStalled) })
	} else {
		r.timer.Reset(r.timeout)
	}
	return r.r.Read(p)
}

func (r *idleReader) stop() {
	if r.timer != nil {
		r.timer.Stop()
	}
}

// linkOrCopy puts a file of the previous tree into the next one: a hard link
// where the file system has them (files are never written in place), else a copy.
func linkOrCopy(from, to string) error {
	if err := os.Link(from, to); err == nil {
		return nil
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
