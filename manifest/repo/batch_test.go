package repo

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchmesh/patchmesh/manifest/batch"
)

// batchServer publishes a release and serves it with batches on or off. It
// returns the server, its stats, and the release's first chunk paths.
func batchServer(t *testing.T, on bool) (*httptest.Server, *Stats, []string, string) {
	t.Helper()
	repoDir, m := publishedRelease(t)
	var paths []string
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			paths = append(paths, ChunkPath(c.CID))
		}
	}
	files, err := OpenDir(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	stats := &Stats{}
	srv := httptest.NewServer(NewHandler(files, HandlerOptions{Stats: stats, Batch: on}))
	t.Cleanup(srv.Close)
	return srv, stats, paths, repoDir
}

func postBatch(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url+"/"+batch.Path, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestBatchServesChunksInOrder(t *testing.T) {
	srv, stats, paths, repoDir := batchServer(t, true)
	if len(paths) < 3 {
		t.Fatalf("the release has %d chunks; the test needs 3", len(paths))
	}
	// Two chunks, one missing between them, the first again.
	gone := paths[0][:len(paths[0])-4] + "aaaa"
	ask := []string{paths[1], gone, paths[0], paths[1]}
	resp := postBatch(t, srv.URL, strings.Join(ask, "\n")+"\n")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != batch.ContentType {
		t.Fatalf("answer: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	var bytes int64
	for i, p := range ask {
		st, n, err := batch.ReadHeader(br, 1<<20)
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if p == gone {
			if st != batch.Missing {
				t.Fatalf("item %d (%s, not in the repository): status %d, want missing", i, p, st)
			}
			continue
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(br, data); err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if want := readFile(t, filepath.Join(repoDir, p)); string(data) != string(want) {
			t.Fatalf("item %d (%s): %d bytes, not the chunk file's %d", i, p, len(data), len(want))
		}
		bytes += n
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Fatalf("%d bytes after the last item", len(rest))
	}
	s := stats.Snapshot()
	if s.Requests != 1 || s.Chunks != 3 || s.ChunkBytes != bytes || s.NotFound != 1 {
		t.Errorf("stats %+v: want 1 request, 3 chunks of %d bytes, 1 not found", s, bytes)
	}
}

func TestBatchRefusesBadRequests(t *testing.T) {
	srv, stats, paths, _ := batchServer(t, true)
	many := strings.Repeat(paths[0]+"\n", batch.MaxPaths+1)
	tests := []struct {
		name string
		body string
	}{
		{"a blank line", paths[0] + "\n\n" + paths[1]},
		{"not a chunk", "channels/stable/head.json"},
		{"the batch path", batch.Path},
		{"up and out", "chunks/../trust.json"},
		{"absolute", "/" + paths[0]},
		{"hidden", "chunks/ab/.tmp-1"},
		{"too many", many},
		{"too large", strings.Repeat("x", batch.MaxRequest+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := postBatch(t, srv.URL, tt.body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("answer %s, want 400", resp.Status)
			}
		})
	}
	if s := stats.Snapshot(); s.Chunks != 0 {
		t.Errorf("refused batches served %d chunks", s.Chunks)
	}
}

// TestBatchProbe: a batch without paths is answered, with no items.
func TestBatchProbe(t *testing.T) {
	srv, stats, _, _ := batchServer(t, true)
	for _, body := range []string{"", "\n"} {
		resp := postBatch(t, srv.URL, body)
		data, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != batch.ContentType || len(data) != 0 {
			t.Fatalf("batch of %q: %s, %q, %d bytes, %v; want 200, %s, no bytes", body, resp.Status, resp.Header.Get("Content-Type"), len(data), err, batch.ContentType)
		}
	}
	if s := stats.Snapshot(); s.Chunks != 0 || s.Requests != 2 {
		t.Errorf("stats %+v: want 2 requests, no chunk", s)
	}
}

func TestBatchOff(t *testing.T) {
	srv, stats, paths, _ := batchServer(t, false)
	resp := postBatch(t, srv.URL, paths[0])
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("batch to a server without them: %s, Allow %q; want 405, GET, HEAD", resp.Status, resp.Header.Get("Allow"))
	}
	if s := stats.Snapshot(); s.Chunks != 0 {
		t.Errorf("served %d chunks", s.Chunks)
	}
	// With batches on, the path is still no file to GET.
	srv, _, _, _ = batchServer(t, true)
	get, err := http.Get(srv.URL + "/" + batch.Path)
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	if get.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s: %s, want 404", batch.Path, get.Status)
	}
}
