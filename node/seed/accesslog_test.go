package seed

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest/repo"
)

func TestAppendCombined(t *testing.T) {
	start := time.Date(2026, 12, 7, 11, 30, 5, 0, time.FixedZone("", 3600))
	tests := []struct {
		name string
		e    repo.AccessEntry
		want string
	}{
		{
			name: "chunk",
			e: repo.AccessEntry{Start: start, Remote: "10.0.0.7:40312", Method: "GET", Path: "/chunks/ab/abc",
				Proto: "HTTP/1.1", Status: 200, Bytes: 65536, UserAgent: "patchmesh/1.2"},
			want: `10.0.0.7 - - [07/Dec/2026:11:30:05 +0100] "GET /chunks/ab/abc HTTP/1.1" 200 65536 "-" "patchmesh/1.2"` + "\n",
		},
		{
			name: "IPv6, query, referer, no body",
			e: repo.AccessEntry{Start: start, Remote: "[::1]:8080", Method: "HEAD", Path: "/heads/stable.json", Query: "x=1",
				Proto: "HTTP/2.0", Status: 304, Referer: "http://seed/"},
			want: `::1 - - [07/Dec/2026:11:30:05 +0100] "HEAD /heads/stable.json?x=1 HTTP/2.0" 304 - "http://seed/" "-"` + "\n",
		},
		{
			name: "a client's quotes and newlines cannot forge a line",
			e: repo.AccessEntry{Start: start, Remote: "127.0.0.1:1", Method: "GET", Path: "/a\"b\\c",
				Proto: "HTTP/1.1", Status: 404, Bytes: 19, UserAgent: "x\" 200 1\n127.0.0.2 - - \x7f\xff"},
			want: `127.0.0.1 - - [07/Dec/2026:11:30:05 +0100] "GET /a\x22b\x5Cc HTTP/1.1" 404 19 "-" "x\x22 200 1\x0A127.0.0.2 - - \x7F\xFF"` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendCombined(nil, tt.e)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// combinedLine matches a Combined Log Format line of a GET from loopback.
var combinedLine = regexp.MustCompile(`^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} [-+][0-9]{4}\] "GET (/[^ "]*) HTTP/1\.1" ([0-9]{3}) ([0-9]+|-) "-" "([^"]*)"$`)

// TestAccessLogFile: with --access-log FILE every request is a line of FILE,
// and once logrotate moves FILE away the seed writes to a new FILE.
func TestAccessLogFile(t *testing.T) {
	repoDir := newRepo(t, release{channel: "stable", version: "1.0.0"})
	logPath := filepath.Join(t.TempDir(), "access.log")
	var logs bytes.Buffer
	s, stop := runSeed(t, Config{Repo: repoDir, AccessLog: logPath, Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		func(s *Seed) { s.reopenCheck = 0 })
	get := func(p string, want int) {
		t.Helper()
		if code, _, _ := call(t, nil, "GET", "http://"+s.Addr()+p, nil); code != want {
			t.Fatalf("GET %s = %d, want %d", p, code, want)
		}
	}
	head := "/" + repo.HeadPath("stable")
	get(head, http.StatusOK)
	get("/nope", http.StatusNotFound)
	// A request's line is written once its response has ended, which may be
	// just after the client has read it.
	waitLines(t, logPath, 2)
	checkLines(t, logPath, []string{head + " 200", "/nope 404"})

	// logrotate's default: move the file away, and the next request makes a new one.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	get(head, http.StatusOK)
	waitLines(t, logPath, 1)
	checkLines(t, logPath+".1", []string{head + " 200", "/nope 404"})
	checkLines(t, logPath, []string{head + " 200"})
	// Removed outright, too.
	if err := os.Remove(logPath); err != nil {
		t.Fatal(err)
	}
	get("/nope", http.StatusNotFound)
	waitLines(t, logPath, 1)
	checkLines(t, logPath, []string{"/nope 404"})

	stop()
	if strings.Contains(logs.String(), "msg=http") {
		t.Errorf("requests logged to the seed's log too:\n%s", logs.String())
	}
}

// waitLines waits until the file at path holds n lines or more.
func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		data, err := os.ReadFile(path)
		if err == nil && bytes.Count(data, []byte("\n")) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines after 10 s, want %d (%v)", filepath.Base(path), bytes.Count(data, []byte("\n")), n, err)
		}
	}
}

// checkLines checks that the file at path holds exactly one access line for
// each of want ("PATH STATUS"), in order.
func checkLines(t *testing.T, path string, want []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		m := combinedLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: not a combined log line: %q", filepath.Base(path), line)
		}
		if m[4] == "-" || m[4] == "" {
			t.Errorf("%s: no user agent in %q", filepath.Base(path), line)
		}
		got = append(got, m[1]+" "+m[2])
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s holds %q, want %q", filepath.Base(path), got, want)
	}
}

// TestAccessLogToLog: without --access-log requests are logged at debug
// level only; with "-" at info.
func TestAccessLogToLog(t *testing.T) {
	repoDir := newRepo(t, release{channel: "stable", version: "1.0.0"})
	for _, tc := range []struct {
		accessLog string
		level     slog.Level
		wantLines bool
	}{
		{"", slog.LevelInfo, false},
		{"", slog.LevelDebug, true},
		{"-", slog.LevelInfo, true},
		{"-", slog.LevelWarn, false},
	} {
		t.Run(tc.accessLog+" "+tc.level.String(), func(t *testing.T) {
			var logs bytes.Buffer
			s, stop := runSeed(t, Config{Repo: repoDir, AccessLog: tc.accessLog,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: tc.level}))})
			path := "/" + repo.HeadPath("stable")
			if code, _, _ := call(t, nil, "GET", "http://"+s.Addr()+path, nil); code != http.StatusOK {
				t.Fatalf("GET %s = %d", path, code)
			}
			stop()
			got := strings.Contains(logs.String(), "msg=http method=GET path="+path+" status=200")
			if got != tc.wantLines {
				t.Errorf("request logged: %v, want %v; log:\n%s", got, tc.wantLines, logs.String())
			}
		})
	}
}

// TestAccessLogFull: a full disk (/dev/full) drops the lines and warns once a
// minute, not once a request.
func TestAccessLogFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system:", err)
	}
	var logs bytes.Buffer
	a, err := openAccessFile("/dev/full", time.Hour, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	now := time.Now()
	a.now = func() time.Time { return now }
	e := repo.AccessEntry{Start: now, Remote: "127.0.0.1:1", Method: "GET", Path: "/x", Proto: "HTTP/1.1", Status: 200}
	warnings := func() int { return strings.Count(logs.String(), "level=WARN msg=\"access log\"") }
	for range 3 {
		a.Access(e)
	}
	if n := warnings(); n != 1 || !strings.Contains(logs.String(), "no space left on device") {
		t.Fatalf("%d warnings after 3 failed writes, want 1 naming the full disk:\n%s", n, logs.String())
	}
	now = now.Add(time.Minute)
	a.Access(e)
	if n := warnings(); n != 2 {
		t.Errorf("%d warnings a minute later, want 2", n)
	}
}
