package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
		case "/short":
			w.Header().Set("Content-Length", "100")
			w.Write(make([]byte, 50))
		default:
			w.Write(make([]byte, len(r.URL.Path)*1000))
		}
	}))
	defer srv.Close()
	tests := []struct {
		name  string
		paths []string
		want  string // in the error; "" for none
	}{
		{"all there", []string{"/a", "/bb", "/ccc", "/a"}, ""},
		{"one missing", []string{"/a", "/missing", "/bb"}, "404"},
		{"a body shorter than announced", []string{"/a", "/short"}, "/short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var urls []string
			for _, p := range tt.paths {
				urls = append(urls, srv.URL+p)
			}
			list := filepath.Join(t.TempDir(), "urls")
			if err := os.WriteFile(list, []byte(strings.Join(urls, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			bytes, n, err := run(context.Background(), list, 2)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("run = %v, want an error with %q", err, tt.want)
				}
				return
			}
			var want int64
			for _, p := range tt.paths {
				want += int64(len(p) * 1000)
			}
			if err != nil || bytes != want || n != len(tt.paths) {
				t.Errorf("run = %d bytes, %d responses, %v; want %d, %d", bytes, n, err, want, len(tt.paths))
			}
		})
	}
}
