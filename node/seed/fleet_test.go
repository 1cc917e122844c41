package seed

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/node/api"
)

const (
	anyToken   = "any-site-token-0123456789"
	boundToken = "paris-only-token-0123456789"
)

func tokenFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte("# issued tokens\n"+anyToken+"\nparis "+boundToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func postReport(t *testing.T, s *Seed, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.APIAddr()+"/api/report", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

func report(site string, failing ...api.SiteFailure) []byte {
	nodes := []api.SiteNode{{Name: site + "-a", State: "alive", Version: "1.0.0", Sequence: 1}}
	for _, f := range failing {
		nodes = append(nodes, api.SiteNode{Name: f.Name, State: "alive", Outcome: f.Outcome, Message: f.Message})
	}
	if failing == nil {
		failing = []api.SiteFailure{}
	}
	b, _ := json.Marshal(api.SiteReport{Reporter: site + "-a", Sent: time.Now(), View: api.SiteView{
		Site: site, Summary: "summary of " + site, Members: len(nodes), OnLatest: 1, Latest: "1.0.0", LatestSeq: 1,
		Failing: failing, Nodes: nodes}})
	return b
}

func getFleet(t *testing.T, s *Seed) api.Fleet {
	t.Helper()
	code, body, _ := call(t, nil, "GET", "http://"+s.APIAddr()+"/api/fleet", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /api/fleet = %d %s", code, body)
	}
	var f api.Fleet
	if err := json.Unmarshal([]byte(body), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// The collector takes reports only with an issued token, for the site it
// is bound to, within bounds; reports survive a restart; the webhook hears
// of new failures.
func TestFleetCollector(t *testing.T) {
	hooked := make(chan Event, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e Event
		if json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&e) == nil {
			hooked <- e
		}
	}))
	defer hook.Close()
	repoDir := newRepo(t, release{channel: "stable", version: "1.0.0"})
	data := filepath.Join(t.TempDir(), "fleet")
	cfg := Config{Repo: repoDir, ReportTokens: tokenFile(t), FleetData: data, Webhook: hook.URL}
	s := start(t, cfg)

	tests := []struct {
		name  string
		token string
		body  []byte
		code  int
	}{
		{"no token", "", report("lyon"), http.StatusUnauthorized},
		{"forged token", "forged-token-0123456789", report("lyon"), http.StatusForbidden},
		{"bound to another site", boundToken, report("lyon"), http.StatusForbidden},
		{"not JSON", anyToken, []byte(`{"view":`), http.StatusBadRequest},
		{"no site", anyToken, report(""), http.StatusBadRequest},
		{"too large", anyToken, bytes.Repeat([]byte(" "), api.MaxReportBytes+1), http.StatusBadRequest},
		{"bound site", boundToken, report("paris"), http.StatusOK},
		{"any site", anyToken, report("lyon", api.SiteFailure{Name: "lyon-b", Outcome: "rolled-back", Message: "health check failed"}), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := postReport(t, s, tt.token, tt.body); code != tt.code {
				t.Fatalf("POST /api/report = %d %s, want %d", code, body, tt.code)
			}
		})
	}
	f := getFleet(t, s)
	if len(f.Sites) != 2 || f.Sites[0].View.Site != "lyon" || f.Sites[1].View.Site != "paris" || f.Failing != 1 {
		t.Fatalf("fleet %+v, want lyon (1 failing) and paris", f)
	}
	select {
	case e := <-hooked:
		if e.Kind != "rollback" || e.Site != "lyon" || e.Node != "lyon-b" {
			t.Fatalf("webhook event %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook event for the rolled-back node")
	}
	fams := scrape(t, s)
	if v := sample(t, fams, "patchmesh_fleet_sites"); v != 2 {
		t.Fatalf("patchmesh_fleet_sites = %v", v)
	}
	code, body, _ := call(t, nil, "GET", "http://"+s.APIAddr()+"/api/status", nil)
	if code != http.StatusOK || !strings.Contains(body, `"lyon-b"`) {
		t.Fatalf("status does not show the fleet: %d %s", code, body)
	}
}

// Reports survive a restart of the seed: they are in badger.
func TestFleetSurvivesRestart(t *testing.T) {
	repoDir := newRepo(t, release{channel: "stable", version: "1.0.0"})
	cfg := Config{Repo: repoDir, ReportTokens: tokenFile(t), FleetData: filepath.Join(t.TempDir(), "fleet"), API: "127.0.0.1:0", Listen: "127.0.0.1:0"}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	if code, body := postReport(t, s, anyToken, report("lyon")); code != http.StatusOK {
		t.Fatalf("report: %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s2 := start(t, cfg)
	if f := getFleet(t, s2); len(f.Sites) != 1 || f.Sites[0].View.Site != "lyon" || f.Sites[0].View.Nodes[0].Version != "1.0.0" {
		t.Fatalf("after restart: %+v", f)
	}
}

func TestReportTokensFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "# nothing\n", "short": "abc\n", "three fields": "a b c\n"} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadReportTokens(p); err == nil {
			t.Errorf("%s token file accepted", name)
		}
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
