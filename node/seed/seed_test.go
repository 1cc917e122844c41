package seed

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/patchmesh/patchmesh/manifest/repo"
)

func getStatus(t *testing.T, s *Seed, hdr map[string]string) Status {
	t.Helper()
	code, body, _ := call(t, nil, "GET", "http://"+s.APIAddr()+"/api/status", hdr)
	if code != http.StatusOK {
		t.Fatalf("GET /api/status = %d %s", code, body)
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status: %v\n%s", err, body)
	}
	return st
}

func TestStatusListsChannelsWithExpiry(t *testing.T) {
	repoDir := newRepo(t,
		release{channel: "stable", version: "1.0.0"},
		release{channel: "stable", version: "1.1.0"},
		release{channel: "beta", version: "2.0.0-rc1", headTTL: 6 * time.Hour},
		release{channel: "legacy", version: "0.9", headTTL: 24 * time.Hour, age: 48 * time.Hour},
	)
	// A channel folder without a head, and folders that are not channels.
	for _, d := range []string{"channels/nightly", "channels/Not A Channel", "channels/.tmp-x"} {
		if err := os.MkdirAll(filepath.Join(repoDir, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, Config{Repo: repoDir})
	st := getStatus(t, s, nil)

	if st.Repo != repoDir || st.URL != "http://"+s.Addr() {
		t.Errorf("repo, url = %q, %q; want %q, %q", st.Repo, st.URL, repoDir, "http://"+s.Addr())
	}
	if st.Started.IsZero() || st.UptimeSeconds < 0 {
		t.Errorf("started %v, uptime %v", st.Started, st.UptimeSeconds)
	}
	tests := []struct {
		name, version string
		seq           uint64
		state         string
	}{
		{"beta", "2.0.0-rc1", 1, StateExpiring},
		{"legacy", "0.9", 1, StateExpired},
		{"nightly", "", 0, StateUnreadable},
		{"stable", "1.1.0", 2, StateOK},
	}
	if len(st.Channels) != len(tests) {
		t.Fatalf("channels = %+v, want %d of them (invalid folder names skipped)", st.Channels, len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := st.Channels[i]
			if c.Name != tt.name || c.Version != tt.version || c.Sequence != tt.seq || c.State != tt.state {
				t.Errorf("channel %d = %+v, want %s %s seq %d %s", i, c, tt.name, tt.version, tt.seq, tt.state)
			}
			if tt.state == StateUnreadable {
				if !strings.Contains(c.Error, "nothing published") {
					t.Errorf("error = %q, want it to say nothing was published", c.Error)
				}
				return
			}
			h, err := repo.ReadHeadUnverified(repoDir, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Expires.Equal(h.Expires) || !c.Issued.Equal(h.Issued) {
				t.Errorf("issued %v expires %v, want the head's %v %v", c.Issued, c.Expires, h.Issued, h.Expires)
			}
		})
	}
}

func TestHeadState(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		expires time.Time
		want    string
	}{
		{"a week left", now.Add(7 * 24 * time.Hour), StateOK},
		{"just over a day left", now.Add(24*time.Hour + time.Second), StateOK},
		{"a day left", now.Add(24 * time.Hour), StateExpiring},
		{"a second left", now.Add(time.Second), StateExpiring},
		{"expires now", now, StateExpired},
		{"expired", now.Add(-time.Hour), StateExpired},
	}
	for _, tt := range tests {
		if got := headState(tt.expires, now); got != tt.want {
			t.Errorf("%s: headState = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestStatusWithoutChannels(t *testing.T) {
	s := start(t, Config{Repo: t.TempDir()})
	code, body, _ := call(t, nil, "GET", "http://"+s.APIAddr()+"/api/status", nil)
	if code != http.StatusOK || !strings.Contains(body, `"channels":[]`) {
		t.Errorf("GET /api/status = %d %s, want an empty channel list", code, body)
	}
}

// scrape fetches /metrics as Prometheus would, lints it and parses it.
func scrape(t *testing.T, s *Seed) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, hdr := call(t, nil, "GET", "http://"+s.APIAddr()+"/metrics", nil)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s %s", code, hdr.Get("Content-Type"), body)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("lint /metrics: %v", err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "patchmesh_") {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// sample returns the value of family name with the given label (or none).
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, label ...string) float64 {
	t.Helper()
	fam := fams[name]
	for _, m := range fam.GetMetric() {
		if len(label) == 2 && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != label[0] || m.GetLabel()[0].GetValue() != label[1]) {
			continue
		}
		if fam.GetType() == dto.MetricType_COUNTER {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Errorf("no sample %s%v", name, label)
	return -1
}

func TestMetricsMatchWhatWasServed(t *testing.T) {
	repoDir := newRepo(t,
		release{channel: "stable", version: "1.0.0"},
		release{channel: "stable", version: "1.1.0"},
		release{channel: "beta", version: "2.0.0", headTTL: 2 * time.Hour},
	)
	s := start(t, Config{Repo: repoDir})
	base := "http://" + s.Addr() + "/"

	// What a node does: the head, the manifest, every chunk; and one miss.
	var chunkBytes, chunks, bytes int64
	for _, p := range []string{repo.HeadPath("stable"), repo.ManifestPath("stable", 2)} {
		code, body, _ := call(t, nil, "GET", base+p, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", p, code)
		}
		bytes += int64(len(body))
	}
	for p, size := range chunkFiles(t, repoDir) {
		code, body, _ := call(t, nil, "GET", base+p, nil)
		if code != http.StatusOK || int64(len(body)) != size {
			t.Fatalf("GET %s = %d, %d bytes; want 200, %d", p, code, len(body), size)
		}
		chunkBytes += size
		chunks++
	}
	bytes += chunkBytes
	code, missBody, _ := call(t, nil, "GET", base+"chunks/zz/bafkreinotthere", nil)
	if code != http.StatusNotFound {
		t.Fatalf("GET a missing chunk = %d, want 404", code)
	}
	bytes += int64(len(missBody))
	requests := chunks + 3

	want := s.Stats()
	if want.Requests != requests || want.Chunks != chunks || want.ChunkBytes != chunkBytes || want.Bytes != bytes || want.NotFound != 1 {
		t.Fatalf("Stats = %+v, want %d requests, %d chunks, %d chunk bytes, %d bytes, 1 not found", want, requests, chunks, chunkBytes, bytes)
	}
	if got := getStatus(t, s, nil).Served; got != want {
		t.Errorf("status served = %+v, want %+v", got, want)
	}
	fams := scrape(t, s)
	counters := []struct {
		name string
		want int64
	}{
		{"patchmesh_seed_requests_total", want.Requests},
		{"patchmesh_seed_bytes_served_total", want.Bytes},
		{"patchmesh_seed_chunk_bytes_served_total", want.ChunkBytes},
		{"patchmesh_seed_chunks_served_total", want.Chunks},
		{"patchmesh_seed_not_found_total", want.NotFound},
	}
	for _, c := range counters {
		if got := sample(t, fams, c.name); got != float64(c.want) {
			t.Errorf("%s = %v, want %d", c.name, got, c.want)
		}
	}
	for _, ch := range []struct {
		name string
		seq  uint64
	}{{"stable", 2}, {"beta", 1}} {
		h, err := repo.ReadHeadUnverified(repoDir, ch.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := sample(t, fams, "patchmesh_seed_channel_sequence", "channel", ch.name); got != float64(ch.seq) {
			t.Errorf("sequence of %s = %v, want %d", ch.name, got, ch.seq)
		}
		if got := sample(t, fams, "patchmesh_seed_head_expiry_timestamp_seconds", "channel", ch.name); got != float64(h.Expires.UnixMilli())/1000 {
			t.Errorf("expiry of %s = %v, want %v", ch.name, got, h.Expires.Unix())
		}
	}
	for state, n := range map[string]float64{StateOK: 1, StateExpiring: 1, StateExpired: 0, StateUnreadable: 0} {
		if got := sample(t, fams, "patchmesh_seed_channels", "state", state); got != n {
			t.Errorf("channels in state %s = %v, want %v", state, got, n)
		}
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s: Go and process collectors missing", name)
		}
	}
}

func TestHistorySamplesServedBytes(t *testing.T) {
	repoDir := newRepo(t, release{channel: "stable", version: "1.0.0"})
	s := start(t, Config{Repo: repoDir}, func(s *Seed) { s.sampleEvery = 10 * time.Millisecond })
	var served int64
	for p := range chunkFiles(t, repoDir) {
		_, body, _ := call(t, nil, "GET", "http://"+s.Addr()+"/"+p, nil)
		served += int64(len(body))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := getStatus(t, s, nil)
		h := st.History
		for i := 1; i < len(h); i++ {
			if h[i].Time.Before(h[i-1].Time) || h[i].Bytes < h[i-1].Bytes || h[i].Requests < h[i-1].Requests {
				t.Fatalf("history goes back between samples %d and %d: %+v, %+v", i-1, i, h[i-1], h[i])
			}
		}
		if len(h) > historyLen {
			t.Fatalf("history holds %d samples, want at most %d", len(h), historyLen)
		}
		if len(h) >= 2 && h[len(h)-1].ChunkBytes == served && h[0].Bytes == 0 {
			return // from before the first request to after the last
		}
		if time.Now().After(deadline) {
			t.Fatalf("history never caught up with %d chunk bytes served: %+v", served, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHistoryKeepsTheNewest(t *testing.T) {
	h := newHistory(3)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		h.add(Sample{Time: t0.Add(time.Duration(i) * time.Second), Bytes: int64(i)})
	}
	got := h.snapshot()
	if len(got) != 3 || got[0].Bytes != 2 || got[2].Bytes != 4 {
		t.Errorf("history = %+v, want the samples 2, 3 and 4, oldest first", got)
	}
}

// Anything with a scheme and a dotted host name is a fetch; the SVG namespace
// is only a name.
var externalURL = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)

func TestDashboardFetchesNothingFromOutside(t *testing.T) {
	s := start(t, Config{Repo: newRepo(t, release{channel: "stable", version: "1.0.0"})})
	base := "http://" + s.APIAddr()
	code, page, hdr := call(t, nil, "GET", base+"/", nil)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", code, hdr.Get("Content-Type"))
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy = %q, want only 'self'", csp)
	}
	for _, id := range []string{`id="channels"`, `id="served-bytes"`, `id="history"`, `id="seed-url"`, `id="seed-uptime"`} {
		if !strings.Contains(page, id) {
			t.Errorf("dashboard has no %s", id)
		}
	}
	bodies := map[string]string{"/": page}
	refs := regexp.MustCompile(`(?:href|src)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "data:") {
			continue
		}
		if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Errorf("dashboard refers to %s, want a path on the seed", ref)
			continue
		}
		code, body, _ := call(t, nil, "GET", base+ref, nil)
		if code != http.StatusOK {
			t.Errorf("GET %s (linked from the dashboard) = %d", ref, code)
		}
		bodies[ref] = body
	}
	for _, want := range []string{"/static/app.css", "/static/seed/seed.css", "/static/seed/seed.js"} {
		if _, ok := bodies[want]; !ok {
			t.Errorf("dashboard does not load %s", want)
		}
	}
	// seed.js imports the node dashboard's helpers: modules, served here.
	for mod, export := range map[string]string{"/static/format.js": "export function fmtBytes", "/static/dom.js": "export function el"} {
		if !strings.Contains(bodies["/static/seed/seed.js"], `from "`+mod+`"`) {
			t.Errorf("seed.js does not import %s", mod)
		} else if code, body, _ := call(t, nil, "GET", base+mod, nil); code != http.StatusOK || !strings.Contains(body, export) {
			t.Errorf("GET %s = %d, want the helpers module", mod, code)
		}
	}
	for ref, body := range bodies {
		for _, m := range externalURL.FindAllString(body, -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to %s", ref, m)
			}
		}
	}
}

func TestMethodsAndUnknownPaths(t *testing.T) {
	s := start(t, Config{Repo: t.TempDir()})
	base := "http://" + s.APIAddr()
	tests := []struct {
		method, path string
		code         int
	}{
		{"GET", "/", 200},
		{"HEAD", "/api/status", 200},
		{"POST", "/api/status", 405},
		{"DELETE", "/", 405},
		{"PUT", "/metrics", 405},
		{"GET", "/api/nothing", 404},
		{"GET", "/static/seed/", 404},
		{"GET", "/static/app.js", 404}, // only the node's stylesheet is shared
	}
	for _, tt := range tests {
		code, body, hdr := call(t, nil, tt.method, base+tt.path, nil)
		if code != tt.code {
			t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, code, body, tt.code)
		}
		if code == 405 && hdr.Get("Allow") != "GET" {
			t.Errorf("%s %s: Allow = %q, want GET", tt.method, tt.path, hdr.Get("Allow"))
		}
		if code >= 400 && !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s: body %q, want a JSON error", tt.method, tt.path, body)
		}
	}
}

func TestTokenRequiredWhenSet(t *testing.T) {
	const token = "s3cret-api-token"
	s := start(t, Config{Repo: newRepo(t, release{channel: "stable", version: "1.0.0"}), APIToken: token})
	base := "http://" + s.APIAddr()
	bearer := map[string]string{"Authorization": "Bearer " + token}
	tests := []struct {
		name string
		path string
		hdr  map[string]string
		code int
	}{
		{"dashboard without token", "/", nil, 401},
		{"status without token", "/api/status", nil, 401},
		{"metrics without token", "/metrics", nil, 401},
		{"stylesheet without token", "/static/app.css", nil, 401},
		{"wrong token", "/api/status", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"token without Bearer", "/api/status", map[string]string{"Authorization": token}, 401},
		{"wrong login", "/?token=nope", nil, 401},
		{"status with token", "/api/status", bearer, 200},
		{"metrics with token", "/metrics", bearer, 200},
		{"dashboard with token", "/", bearer, 200},
		// A token replaces the Host check: the API may listen on a LAN address.
		{"foreign host with token", "/api/status", map[string]string{"Authorization": "Bearer " + token, "Host": "seed.example.com"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := call(t, nil, "GET", base+tt.path, tt.hdr)
			if code != tt.code {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, code, body, tt.code)
			}
			if code == 401 && !strings.Contains(tt.path, "token=") && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if strings.Contains(body, token) {
				t.Errorf("the answer reveals the token: %s", body)
			}
		})
	}

	t.Run("dashboard login sets a session cookie", func(t *testing.T) {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		code, page, _ := call(t, browser, "GET", base+"/?token="+token, nil)
		if code != http.StatusOK || !strings.Contains(page, `id="channels"`) {
			t.Fatalf("login = %d, want the dashboard after the redirect", code)
		}
		for _, path := range []string{"/api/status", "/static/seed/seed.js", "/metrics"} {
			if code, _, _ := call(t, browser, "GET", base+path, nil); code != http.StatusOK {
				t.Errorf("GET %s with the session cookie = %d", path, code)
			}
		}
	})
}

func TestForeignHostRefusedWithoutToken(t *testing.T) {
	s := start(t, Config{Repo: t.TempDir()})
	_, port, _ := strings.Cut(s.APIAddr(), ":")
	tests := []struct {
		host string
		code int
	}{
		{"127.0.0.1:" + port, 200},
		{"localhost:" + port, 200},
		{"[::1]:" + port, 200},
		{"seed.example.com", 403}, // DNS rebinding: a web page naming us
		{"seed.example.com:" + port, 403},
		{"10.0.0.5:" + port, 403},
	}
	for _, tt := range tests {
		for _, path := range []string{"/", "/api/status", "/metrics"} {
			code, body, _ := call(t, nil, "GET", "http://"+s.APIAddr()+path, map[string]string{"Host": tt.host})
			if code != tt.code {
				t.Errorf("GET %s with Host %s = %d %s, want %d", path, tt.host, code, body, tt.code)
			}
		}
	}
}

func TestNewNeedsTokenOffLoopback(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		api, token string
		ok         bool
	}{
		{"127.0.0.1:0", "", true},
		{"[::1]:0", "", true},
		{"localhost:0", "", true},
		{"", "", true},    // no API at all
		{"off", "", true}, // the same, spelled as for a node
		{":8781", "", false},
		{"0.0.0.0:8781", "", false},
		{"192.168.1.10:8781", "", false},
		{"0.0.0.0:8781", "t", true},
	}
	for _, tt := range tests {
		_, err := New(Config{Repo: dir, API: tt.api, APIToken: tt.token})
		if (err == nil) != tt.ok {
			t.Errorf("New(api %q, token %q) = %v, want ok %v", tt.api, tt.token, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "token") {
			t.Errorf("New(api %q): %v, want it to ask for a token", tt.api, err)
		}
	}
}
