package repo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer collects log lines written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestHandlerServesTheRepository(t *testing.T) {
	repoDir, m := publishedRelease(t)
	ref := m.Files[0].Chunks[0]
	chunkURL := "/" + ChunkPath(ref.CID)
	chunkData := readFile(t, filepath.Join(repoDir, ChunkPath(ref.CID)))
	etag := `"` + ref.CID.String() + `"`
	head := readFile(t, filepath.Join(repoDir, HeadPath("stable")))
	tmpURL := "/" + filepath.ToSlash(filepath.Dir(ChunkPath(ref.CID))) + "/.tmp-123"
	writeTree(t, repoDir, map[string][]byte{tmpURL[1:]: []byte("half a chunk")})
	outside := filepath.Join(t.TempDir(), "secret")
	writeTree(t, filepath.Dir(outside), map[string][]byte{"secret": []byte("secret")})
	symlink(t, outside, filepath.Join(repoDir, "evil"))
	symlink(t, "../../..", filepath.Join(repoDir, "channels/stable/up"))

	files, err := OpenDir(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	var stats Stats
	logs := &lockedBuffer{}
	srv := httptest.NewServer(NewHandler(files, HandlerOptions{Access: LogAccess(slog.New(slog.NewJSONHandler(logs, nil)), slog.LevelInfo), Stats: &stats}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantBody   []byte            // nil: not checked
		wantHeader map[string]string // exact values
	}{
		{
			name: "chunk", method: "GET", path: chunkURL, wantStatus: 200, wantBody: chunkData,
			wantHeader: map[string]string{"ETag": etag, "Content-Length": fmt.Sprint(len(chunkData)), "Content-Type": "application/octet-stream", "Cache-Control": "public, max-age=31536000, immutable"},
		},
		{
			name: "range", method: "GET", path: chunkURL, header: map[string]string{"Range": "bytes=10-19"},
			wantStatus: 206, wantBody: chunkData[10:20],
			wantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes 10-19/%d", len(chunkData)), "Content-Length": "10"},
		},
		{
			name: "suffix range", method: "GET", path: chunkURL, header: map[string]string{"Range": "bytes=-5"},
			wantStatus: 206, wantBody: chunkData[len(chunkData)-5:],
		},
		{
			name: "range past the end", method: "GET", path: chunkURL, header: map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(chunkData))},
			wantStatus: 416, wantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", len(chunkData))},
		},
		{name: "if-none-match", method: "GET", path: chunkURL, header: map[string]string{"If-None-Match": etag}, wantStatus: 304, wantBody: []byte{}},
		{name: "if-none-match, other etag", method: "GET", path: chunkURL, header: map[string]string{"If-None-Match": `"other"`}, wantStatus: 200, wantBody: chunkData},
		{
			name: "HEAD of a chunk", method: "HEAD", path: chunkURL, wantStatus: 200, wantBody: []byte{},
			wantHeader: map[string]string{"Content-Length": fmt.Sprint(len(chunkData)), "ETag": etag},
		},
		{
			name: "channel head", method: "GET", path: "/" + HeadPath("stable"), wantStatus: 200, wantBody: head,
			wantHeader: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-cache", "Content-Length": fmt.Sprint(len(head))},
		},
		{
			name: "manifest", method: "GET", path: "/" + ManifestPath("stable", 1), wantStatus: 200,
			wantBody: readFile(t, filepath.Join(repoDir, ManifestPath("stable", 1))), wantHeader: map[string]string{"Cache-Control": "public, max-age=31536000, immutable"},
		},
		{name: "missing chunk", method: "GET", path: "/chunks/aa/bafkreiaaaa", wantStatus: 404},
		{name: "root folder", method: "GET", path: "/", wantStatus: 404},
		{name: "chunks folder", method: "GET", path: "/chunks", wantStatus: 404},
		{name: "chunks folder with slash", method: "GET", path: "/chunks/", wantStatus: 404},
		{name: "manifests folder", method: "GET", path: "/manifests/stable", wantStatus: 404},
		{name: "dot dot", method: "GET", path: "/chunks/../" + HeadPath("stable"), wantStatus: 404},
		{name: "encoded dot dot", method: "GET", path: "/chunks/%2e%2e/" + HeadPath("stable"), wantStatus: 404},
		{name: "encoded dot dot out of the tree", method: "GET", path: "/%2e%2e/%2e%2e/etc/passwd", wantStatus: 404},
		{name: "encoded slash", method: "GET", path: "/channels%2fstable%2fhead.json", wantStatus: 200, wantBody: head},
		{name: "double slash", method: "GET", path: "/channels//stable/head.json", wantStatus: 404},
		{name: "backslash", method: "GET", path: `/channels\stable\head.json`, wantStatus: 404},
		{name: "NUL", method: "GET", path: "/channels/stable/head.json%00", wantStatus: 404},
		{name: "publish lock", method: "GET", path: "/" + lockFile, wantStatus: 404},
		{name: "temporary file", method: "GET", path: tmpURL, wantStatus: 404},
		{name: "symlink out of the tree", method: "GET", path: "/evil", wantStatus: 404},
		{name: "relative symlink out of the tree", method: "GET", path: "/channels/stable/up/etc/passwd", wantStatus: 404},
		{name: "POST", method: "POST", path: chunkURL, wantStatus: 405, wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "PUT", method: "PUT", path: "/" + HeadPath("stable"), wantStatus: 405},
	}
	var chunkBodies, chunkBytes, notFound int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %.80q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Errorf("body of %d bytes differs from the %d bytes wanted", len(body), len(tt.wantBody))
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s: %q, want %q", k, got, v)
				}
			}
			if resp.StatusCode == 404 && bytes.Contains(body, []byte("secret")) {
				t.Error("a refused path leaked the file")
			}
		})
		if tt.method == "GET" && strings.HasPrefix(tt.path, "/chunks/") && (tt.wantStatus == 200 || tt.wantStatus == 206) {
			chunkBodies++
			chunkBytes += int64(len(tt.wantBody))
		}
		if tt.wantStatus == 404 {
			notFound++
		}
	}

	// Counters and the access log are written once a response has ended,
	// which may be just after the client read it: Close waits for that.
	srv.Close()
	snap := stats.Snapshot()
	if snap.Requests != int64(len(tests)) || snap.Chunks != chunkBodies || snap.ChunkBytes != chunkBytes || snap.NotFound != notFound {
		t.Errorf("stats %+v; want %d requests, %d chunk bodies of %d bytes, %d not found", snap, len(tests), chunkBodies, chunkBytes, notFound)
	}

	// One structured access log line per request.
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	lines := 0
	for sc.Scan() {
		var rec struct {
			Msg, Method, Path, Remote string
			Status                    int
			Bytes                     int64
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec.Msg != "http" {
			continue
		}
		lines++
		if rec.Method == "" || rec.Path == "" || rec.Status == 0 || !strings.HasPrefix(rec.Remote, "127.0.0.1:") {
			t.Errorf("access log line lacks a field: %s", sc.Text())
		}
	}
	if lines != len(tests) {
		t.Errorf("%d access log lines for %d requests", lines, len(tests))
	}
}

// errFiles fails every open, as a broken store would.
type errFiles struct{ err error }

func (e errFiles) Open(context.Context, string) (*File, error) { return nil, e.err }

func TestHandlerErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"missing", fmt.Errorf("x: %w", fs.ErrNotExist), 404},
		{"broken store", errors.New("disk on fire"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(NewHandler(errFiles{tt.err}, HandlerOptions{}))
			t.Cleanup(srv.Close)
			resp, err := srv.Client().Get(srv.URL + "/channels/stable/head.json")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if bytes.Contains(body, []byte("fire")) {
				t.Error("an internal error reached the client")
			}
		})
	}
}

func TestOpenDirMissing(t *testing.T) {
	if _, err := OpenDir(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open of a missing folder: %v", err)
	}
}

// TestDirFilesChunkFolders: chunk folders are kept open between requests, yet
// a folder removed, made again or swapped for a link out of the repository
// serves what the repository holds now, and nothing outside it.
func TestDirFilesChunkFolders(t *testing.T) {
	ctx := context.Background()
	repoDir := t.TempDir()
	outside := t.TempDir()
	writeTree(t, outside, map[string][]byte{"x3": []byte("secret"), "secret": []byte("secret")})
	writeTree(t, repoDir, map[string][]byte{"chunks/ab/x1": []byte("one"), "chunks/cd/y": []byte("why")})
	symlink(t, filepath.Join(outside, "secret"), filepath.Join(repoDir, "chunks/cd/evil"))
	files, err := OpenDir(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	steps := []struct {
		name   string
		change func()
		open   string
		want   string // "": not found
	}{
		{name: "chunk", open: "chunks/ab/x1", want: "one"},
		{name: "missing in a kept folder", open: "chunks/ab/nope"},
		{name: "again, from the kept folder", open: "chunks/ab/x1", want: "one"},
		{name: "link out of the repository", open: "chunks/cd/evil"},
		{name: "folder made again", change: func() {
			if err := os.RemoveAll(filepath.Join(repoDir, "chunks/ab")); err != nil {
				t.Fatal(err)
			}
			writeTree(t, repoDir, map[string][]byte{"chunks/ab/x2": []byte("two")})
		}, open: "chunks/ab/x2", want: "two"},
		{name: "gone with its folder", open: "chunks/ab/x1"},
		{name: "folder swapped for a link out", change: func() {
			if err := os.RemoveAll(filepath.Join(repoDir, "chunks/ab")); err != nil {
				t.Fatal(err)
			}
			symlink(t, outside, filepath.Join(repoDir, "chunks/ab"))
		}, open: "chunks/ab/x3"},
		{name: "and asked again", open: "chunks/ab/x3"},
		{name: "other folders still served", open: "chunks/cd/y", want: "why"},
	}
	for _, st := range steps {
		if st.change != nil {
			st.change()
		}
		f, err := files.Open(ctx, st.open)
		if st.want == "" {
			if !errors.Is(err, fs.ErrNotExist) {
				if err == nil {
					f.Close()
				}
				t.Errorf("%s: open %s: %v, want not found", st.name, st.open, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: open %s: %v", st.name, st.open, err)
			continue
		}
		b, err := io.ReadAll(f.Content)
		f.Close()
		if err != nil || string(b) != st.want {
			t.Errorf("%s: %s read %q, %v; want %q", st.name, st.open, b, err, st.want)
		}
	}
}

// TestDirFilesConcurrent: requests at once for chunks of the same folders,
// some of them missing, all get what the repository holds (run with -race).
func TestDirFilesConcurrent(t *testing.T) {
	ctx := context.Background()
	repoDir := t.TempDir()
	tree := map[string][]byte{}
	for i := range 64 {
		tree[fmt.Sprintf("chunks/%c%c/c%d", 'a'+i%4, 'a'+i%4, i)] = []byte(fmt.Sprint(i))
	}
	writeTree(t, repoDir, tree)
	files, err := OpenDir(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 256 {
				k := (i*7 + w) % 80 // 64 to 79 are missing
				name := fmt.Sprintf("chunks/%c%c/c%d", 'a'+k%4, 'a'+k%4, k)
				f, err := files.Open(ctx, name)
				if k >= 64 {
					if !errors.Is(err, fs.ErrNotExist) {
						errs <- fmt.Errorf("open missing %s: %v", name, err)
						return
					}
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("open %s: %w", name, err)
					return
				}
				b, err := io.ReadAll(f.Content)
				f.Close()
				if err != nil || string(b) != fmt.Sprint(k) {
					errs <- fmt.Errorf("%s read %q, %v", name, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
