package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestEndpoints(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{Version: "0.1.0"})
	want := f.Status()

	tests := []struct {
		name, method, path string
		code               int
		contentType        string
		check              func(t *testing.T, body string)
	}{
		{"status", "GET", "/api/status", 200, "application/json", func(t *testing.T, body string) {
			var st Status
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatal(err)
			}
			if st.Current.Version != "1.4.2" || st.Progress.ChunksDone != 10 || len(st.Peers) != 4 || st.Bytes.LAN != 3000 {
				t.Errorf("status does not carry the node's state: %+v", st)
			}
		}},
		{"releases", "GET", "/api/releases", 200, "application/json", func(t *testing.T, body string) {
			var rels []ReleaseInfo
			if err := json.Unmarshal([]byte(body), &rels); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rels, want.Releases) {
				t.Errorf("releases = %+v, want %+v", rels, want.Releases)
			}
		}},
		{"peers", "GET", "/api/peers", 200, "application/json", func(t *testing.T, body string) {
			var peers []Peer
			if err := json.Unmarshal([]byte(body), &peers); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(peers, want.Peers) {
				t.Errorf("peers = %+v, want %+v", peers, want.Peers)
			}
		}},
		{"dashboard", "GET", "/", 200, "text/html", func(t *testing.T, body string) {
			for _, id := range []string{`id="check-now"`, `id="rollback"`, `id="peers"`, `id="progress"`, `id="current-version"`, `id="saving"`} {
				if !strings.Contains(body, id) {
					t.Errorf("dashboard lacks %s", id)
				}
			}
		}},
		{"script", "GET", "/static/app.js", 200, "text/javascript", func(t *testing.T, body string) {
			if !strings.Contains(body, "/api/events") {
				t.Error("the script does not subscribe to /api/events")
			}
		}},
		{"style", "GET", "/static/app.css", 200, "text/css", nil},
		{"metrics", "GET", "/metrics", 200, "text/plain", func(t *testing.T, body string) {
			if !strings.Contains(body, "patchmesh_up 1") {
				t.Error("no patchmesh_up 1")
			}
		}},
		{"update queued", "POST", "/api/update", 202, "application/json", func(t *testing.T, body string) {
			var res CheckResult
			if err := json.Unmarshal([]byte(body), &res); err != nil || res.Outcome != "queued" {
				t.Errorf("update = %s (%v), want outcome queued", body, err)
			}
		}},
		{"update wait", "POST", "/api/update?wait=1", 200, "application/json", func(t *testing.T, body string) {
			var res CheckResult
			if err := json.Unmarshal([]byte(body), &res); err != nil || res.Outcome != "applied" || res.Version != "1.5.0" {
				t.Errorf("update = %s (%v), want the applied check", body, err)
			}
		}},
		{"rollback", "POST", "/api/rollback", 200, "application/json", func(t *testing.T, body string) {
			var res RollbackResult
			if err := json.Unmarshal([]byte(body), &res); err != nil || res != (RollbackResult{From: "1.4.2-7", To: "1.4.1-6"}) {
				t.Errorf("rollback = %s (%v)", body, err)
			}
		}},
		{"unknown api", "GET", "/api/nope", 404, "application/json", nil},
		{"unknown page", "GET", "/nope", 404, "application/json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := call(t, nil, tt.method, srv.URL+tt.path, actionHeader(), "")
			if code != tt.code {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, code, body, tt.code)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type = %q, want %s", ct, tt.contentType)
			}
			if tt.code >= 400 {
				var eb errorBody
				if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" {
					t.Errorf("error answer %q is not {\"error\": ...}", body)
				}
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
	if checks, rollbacks := f.actions(); checks != 2 || rollbacks != 1 {
		t.Errorf("backend saw %d checks and %d rollbacks, want 2 and 1", checks, rollbacks)
	}
}

func TestRollbackReasonAndNothingToRollBackTo(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{})
	code, body, _ := call(t, nil, "POST", srv.URL+"/api/rollback", map[string]string{"Content-Type": "application/json"}, `{"reason":"agent crashes on start"}`)
	f.mu.Lock()
	reasons := f.rollbacks
	f.noPrevious = true
	f.mu.Unlock()
	if code != 200 || len(reasons) != 1 || reasons[0] != "agent crashes on start" {
		t.Fatalf("rollback = %d %s, reasons %q", code, body, reasons)
	}

	code, body, _ = call(t, nil, "POST", srv.URL+"/api/rollback", actionHeader(), "")
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); code != http.StatusConflict || err != nil || eb.Code != codeNoPrevious || !strings.Contains(eb.Error, "no previous release") {
		t.Fatalf("rollback without a previous release = %d %s, want 409 naming the reason", code, body)
	}

	code, _, _ = call(t, nil, "POST", srv.URL+"/api/rollback", map[string]string{"Content-Type": "application/json"}, strings.Repeat("x", maxBodyBytes+10))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body = %d, want 413", code)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{})
	tests := []struct{ method, path string }{
		{"GET", "/api/update"},
		{"GET", "/api/rollback"},
		{"GET", "/api/scrub"},
		{"POST", "/api/status"},
		{"POST", "/api/releases"},
		{"POST", "/api/peers"},
		{"POST", "/api/events"},
		{"DELETE", "/api/status"},
		{"PUT", "/api/update"},
		{"POST", "/metrics"},
		{"POST", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			code, body, hdr := call(t, nil, tt.method, srv.URL+tt.path, actionHeader(), "")
			if code != http.StatusMethodNotAllowed || !strings.Contains(body, `"error"`) || hdr.Get("Allow") == "" {
				t.Errorf("%s %s = %d %s (Allow %q), want 405 with a JSON error", tt.method, tt.path, code, body, hdr.Get("Allow"))
			}
		})
	}
	if checks, rollbacks := f.actions(); checks+rollbacks != 0 {
		t.Errorf("a refused method reached the node: %d checks, %d rollbacks", checks, rollbacks)
	}
}

func TestCrossSitePostRefused(t *testing.T) {
	tests := []struct {
		name string
		hdr  map[string]string
		code int
	}{
		{"foreign origin", map[string]string{"Origin": "https://evil.example", "Content-Type": "application/json"}, 403},
		{"foreign origin with custom header", map[string]string{"Origin": "http://evil.example", "X-Patchmesh": "1"}, 403},
		{"null origin", map[string]string{"Origin": "null", "X-Patchmesh": "1"}, 403},
		{"fetch metadata cross-site", map[string]string{"Sec-Fetch-Site": "cross-site", "X-Patchmesh": "1"}, 403},
		{"fetch metadata same-site", map[string]string{"Sec-Fetch-Site": "same-site", "X-Patchmesh": "1"}, 403},
		{"plain form post", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 403},
		{"text/plain post", map[string]string{"Content-Type": "text/plain"}, 403},
		{"same origin dashboard", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "SELF", "X-Patchmesh": "1", "Content-Type": "application/json"}, 202},
		{"CLI", map[string]string{"X-Patchmesh": "1"}, 202},
		{"JSON client", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNode()
			srv, _ := serve(t, f, Options{})
			if tt.hdr["Origin"] == "SELF" {
				tt.hdr["Origin"] = srv.URL
			}
			code, body, _ := call(t, nil, "POST", srv.URL+"/api/update", tt.hdr, "")
			if code != tt.code {
				t.Fatalf("POST /api/update = %d %s, want %d", code, body, tt.code)
			}
			checks, _ := f.actions()
			if (code == 403) != (checks == 0) {
				t.Errorf("answer %d but the node saw %d checks", code, checks)
			}
			code, _, _ = call(t, nil, "POST", srv.URL+"/api/rollback", tt.hdr, "")
			if tt.code == 403 && code != 403 {
				t.Errorf("POST /api/rollback = %d, want 403", code)
			}
		})
	}
}

func TestToken(t *testing.T) {
	const token = "s3cr3t-api-token-for-tests"
	f := newFakeNode()
	srv, _ := serve(t, f, Options{Token: token})

	paths := []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/static/app.js"}, {"GET", "/api/status"}, {"GET", "/api/releases"},
		{"GET", "/api/peers"}, {"GET", "/metrics"}, {"POST", "/api/update"}, {"POST", "/api/rollback"},
	}
	for _, p := range paths {
		t.Run("without "+p.path, func(t *testing.T) {
			for _, auth := range []string{"", "Bearer wrong", "Basic " + token, "Bearer " + token + "x"} {
				hdr := actionHeader()
				if auth != "" {
					hdr["Authorization"] = auth
				}
				code, _, h := call(t, nil, p.method, srv.URL+p.path, hdr, "")
				if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s with Authorization %q = %d, want 401", p.method, p.path, auth, code)
				}
			}
		})
	}
	if checks, rollbacks := f.actions(); checks+rollbacks != 0 {
		t.Fatalf("unauthorized requests reached the node: %d checks, %d rollbacks", checks, rollbacks)
	}
	for _, p := range paths {
		hdr := actionHeader()
		hdr["Authorization"] = "Bearer " + token
		if code, body, _ := call(t, nil, p.method, srv.URL+p.path, hdr, ""); code/100 != 2 {
			t.Errorf("%s %s with the token = %d %s", p.method, p.path, code, body)
		}
	}

	t.Run("cookie", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if code, _, _ := call(t, noFollow, "GET", srv.URL+"/?token=wrong", nil, ""); code != http.StatusUnauthorized {
			t.Errorf("wrong ?token = %d, want 401", code)
		}
		code, _, hdr := call(t, noFollow, "GET", srv.URL+"/?token="+token, nil, "")
		if code != http.StatusSeeOther || hdr.Get("Location") != "/" {
			t.Fatalf("/?token= = %d Location %q, want 303 to /", code, hdr.Get("Location"))
		}
		set := hdr.Get("Set-Cookie")
		if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Strict") || strings.Contains(set, token) {
			t.Errorf("Set-Cookie %q: want HttpOnly, SameSite=Strict and not the token itself", set)
		}
		browser := &http.Client{Jar: jar}
		for _, p := range []string{"/", "/api/status", "/static/app.css"} {
			if code, body, _ := call(t, browser, "GET", srv.URL+p, nil, ""); code != 200 {
				t.Errorf("GET %s with the cookie = %d %s", p, code, body)
			}
		}
		if code, _, _ := call(t, browser, "POST", srv.URL+"/api/update", actionHeader(), ""); code != http.StatusAccepted {
			t.Errorf("POST /api/update with the cookie = %d", code)
		}
		if code, _, _ := call(t, browser, "POST", srv.URL+"/api/update", map[string]string{"X-Patchmesh": "1", "Origin": "https://evil.example"}, ""); code != http.StatusForbidden {
			t.Errorf("cross-site POST with the cookie = %d, want 403", code)
		}
	})
}

func TestForeignHostRefusedWithoutToken(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{})
	tests := []struct {
		host string
		code int
	}{
		{"evil.example:7780", 403},
		{"192.168.1.20:7780", 403},
		{"localhost:7780", 200},
		{"127.0.0.1:7780", 200},
		{"[::1]:7780", 200},
	}
	for _, tt := range tests {
		if code, body, _ := call(t, nil, "GET", srv.URL+"/api/status", map[string]string{"Host": tt.host}, ""); code != tt.code {
			t.Errorf("Host %s = %d %s, want %d", tt.host, code, body, tt.code)
		}
	}
}

func TestNoSecretInAnyAnswer(t *testing.T) {
	const token = "tok-9d8e7f-never-shown"
	f := newFakeNode()
	srv, h := serve(t, f, Options{Token: token}, func(h *handler) { h.eventsLifetime = 50 * time.Millisecond })
	auth := map[string]string{"Authorization": "Bearer " + token}
	secrets := []string{token, h.session, "hunter2-ftp-password", "PRIVATE KEY", "private_key", "secret_key", "site_key"}
	for _, p := range []string{"/", "/static/app.js", "/api/status", "/api/releases", "/api/peers", "/api/events", "/metrics"} {
		_, body, _ := call(t, nil, "GET", srv.URL+p, auth, "")
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("GET %s reveals %q", p, s)
			}
		}
	}
	// The redacted URL still names the source, so a user can tell which failed.
	_, body, _ := call(t, nil, "GET", srv.URL+"/api/status", auth, "")
	if !strings.Contains(body, "ftp://mirror:xxxxx@mirror.example.com/pm") {
		t.Errorf("status does not name the redacted source: %s", body)
	}
}

func TestEventsStream(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{}, func(h *handler) {
		h.eventsPoll = 10 * time.Millisecond
		h.eventsLifetime = 5 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	events := readEvents(bufio.NewScanner(resp.Body))

	first := <-events
	if first.Current == nil || first.Current.Version != "1.4.2" {
		t.Fatalf("first event = %+v, want the current status", first)
	}
	// A change reaches the stream without asking again.
	f.update(func(st *Status) {
		st.Current = &ReleaseInfo{Version: "1.5.0", Sequence: 8, State: "current"}
		st.Progress = nil
	})
	for st := range events {
		if st.Current != nil && st.Current.Version == "1.5.0" {
			if st.Progress != nil {
				t.Error("progress still shown after the release was applied")
			}
			return
		}
	}
	t.Fatal("the stream ended before the new release appeared")
}

func TestEventsStreamEnds(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{}, func(h *handler) { h.eventsLifetime = 100 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	for range readEvents(bufio.NewScanner(resp.Body)) {
		n++
	}
	if n == 0 || ctx.Err() != nil {
		t.Fatalf("stream sent %d events and ended by itself: %v", n, ctx.Err() == nil)
	}
}

// readEvents decodes "status" events until the stream ends.
func readEvents(sc *bufio.Scanner) <-chan Status {
	ch := make(chan Status)
	go func() {
		defer close(ch)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "status":
				var st Status
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &st) == nil {
					ch <- st
				}
			}
		}
	}()
	return ch
}

func TestDashboardFetchesNothingFromOutside(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{})
	_, _, hdr := call(t, nil, "GET", srv.URL+"/", nil, "")
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy = %q, want only 'self'", csp)
	}
	// The SVG namespace is a name, not a fetch; anything else with a scheme is.
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(webFiles, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := webFiles.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range external.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to %s", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:7780", true},
		{"127.0.0.2:7780", true},
		{"[::1]:7780", true},
		{"localhost:7780", true},
		{"::1", true},
		{"127.0.0.1", true},
		{":7780", false},
		{"0.0.0.0:7780", false},
		{"[::]:7780", false},
		{"192.168.1.10:7780", false},
		{"example.com:7780", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsLoopback(tt.addr); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestRetry(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{})
	tests := []struct {
		name string
		body string
		code int
		want string // in the body
	}{
		{name: "a bad release", body: `{"version":"1.4.2"}`, code: 200, want: `"7-1.4.2"`},
		{name: "no bad release of that version", body: `{"version":"1.5.0"}`, code: http.StatusConflict, want: codeNotBad},
		{name: "no version", body: `{}`, code: http.StatusBadRequest, want: "version"},
		{name: "not JSON", body: `1.4.2`, code: http.StatusBadRequest, want: "version"},
		{name: "too large", body: strings.Repeat("x", maxBodyBytes+10), code: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := call(t, nil, "POST", srv.URL+"/api/releases/retry", map[string]string{"Content-Type": "application/json"}, tt.body)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Fatalf("retry = %d %s, want %d with %q", code, body, tt.code, tt.want)
			}
		})
	}
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"), "")
	if _, err := c.Retry(context.Background(), "", "1.5.0"); !errors.Is(err, ErrNotBad) {
		t.Fatalf("client retry of a good release: %v, want ErrNotBad", err)
	}
	if res, err := c.Retry(context.Background(), "", "1.4.2"); err != nil || len(res.Cleared) != 1 {
		t.Fatalf("client retry: %+v, %v", res, err)
	}
}
