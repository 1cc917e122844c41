package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/node/api"
)

// TestFleetTwoSites: two sites (two nodes and one) report through their
// elected node to one seed. `patchmesh fleet` and the seed's dashboard (in
// Chromium) list both sites' nodes and releases, `status --site` sums a site
// up, and reports without a token or with a forged one are refused.
func TestFleetTwoSites(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 21)
	pub.Publish("1.0.0", src)

	const alphaToken, betaToken = "alpha-report-token-0123456789", "beta-report-token-0123456789"
	tokens := filepath.Join(pub.Dir, "report-tokens")
	if err := os.WriteFile(tokens, []byte("alpha "+alphaToken+"\nbeta "+betaToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seedAddr, seedAPI := freeAddr(t), freeAddr(t)
	startProc(t, "seed", "serve", "--repo", pub.Repo, "--listen", seedAddr, "--api", seedAPI,
		"--report-tokens", tokens, "--fleet-data", filepath.Join(pub.Dir, "fleet"))
	seed := &seedProc{URL: "http://" + seedAddr, APIURL: "http://" + seedAPI}
	waitFor(t, 20*time.Second, func() bool { _, err := seed.served(); return err == nil }, "seed to listen")

	site := func(name, token string, members ...string) []*nodeProc {
		key := filepath.Join(pub.Dir, name+".key")
		mustPM(t, "keygen", "--site", "--out", key)
		tokFile := filepath.Join(pub.Dir, name+".token")
		if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var nodes []*nodeProc
		for i, m := range members {
			o := nodeOpts{Name: m, Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: key,
				Extra: []string{"--site-name", name, "--report-to", seed.APIURL + "/api/report", "--report-token-file", tokFile, "--report-interval", "1s"}}
			if i > 0 {
				o.Join = []string{nodes[0].Gossip}
			}
			nodes = append(nodes, newNode(t, o))
		}
		return nodes
	}
	alpha := site("alpha", alphaToken, "alpha-1", "alpha-2")
	beta := site("beta", betaToken, "beta-1")
	for _, n := range append(alpha, beta...) {
		n.WaitVersion(t, "1.0.0", 90*time.Second)
	}

	// The fleet, as `patchmesh fleet --json` prints it, holds both sites
	// with every node on 1.0.0.
	var fleet api.Fleet
	waitFor(t, 60*time.Second, func() bool {
		r := pm(t, "fleet", "--api", seedAPI, "--json")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &fleet) != nil || len(fleet.Sites) != 2 {
			return false
		}
		want := map[string][]string{"alpha": {"alpha-1", "alpha-2"}, "beta": {"beta-1"}}
		for _, s := range fleet.Sites {
			var on []string
			for _, n := range s.View.Nodes {
				if n.Version == "1.0.0" {
					on = append(on, n.Name)
				}
			}
			if strings.Join(on, ",") != strings.Join(want[s.View.Site], ",") {
				return false
			}
		}
		return true
	}, "patchmesh fleet to list both sites' nodes on 1.0.0")
	if fleet.Sites[0].Reporter != "alpha-1" || fleet.Nodes != 3 || fleet.OnLatest != 3 || fleet.Failing != 0 {
		t.Errorf("fleet %+v: want alpha reported by alpha-1, 3 nodes on the newest release, none failing", fleet)
	}
	text := mustPM(t, "fleet", "--api", seedAPI).stdout
	for _, want := range []string{"2 site(s), 3 node(s)", "site alpha: 2 of 2 on 1.0.0", "site beta: 1 of 1 on 1.0.0", "alpha-2", "beta-1"} {
		if !strings.Contains(text, want) {
			t.Errorf("patchmesh fleet does not say %q:\n%s", want, text)
		}
	}
	// A node's own site view says the same.
	if out := mustPM(t, "status", "--api", alpha[1].API, "--site").stdout; !strings.Contains(out, "site alpha: 2 of 2 on 1.0.0") {
		t.Errorf("status --site:\n%s", out)
	}

	// Forged and unauthenticated reports are refused, and change nothing.
	forged, _ := json.Marshal(api.SiteReport{Reporter: "evil-1", Sent: time.Now(), View: api.SiteView{Site: "alpha",
		Summary: "0 of 1", Nodes: []api.SiteNode{{Name: "evil-1", State: "alive", Version: "6.6.6"}}, Failing: []api.SiteFailure{}}})
	for _, tc := range []struct {
		name, token string
		code        int
	}{{"no token", "", http.StatusUnauthorized}, {"forged token", "alpha-report-token-forged00", http.StatusForbidden},
		{"beta's token for alpha", betaToken, http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodPost, seed.APIURL+"/api/report", bytes.NewReader(forged))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: POST /api/report = %d, want %d", tc.name, resp.StatusCode, tc.code)
		}
	}
	if out := mustPM(t, "fleet", "--api", seedAPI).stdout; strings.Contains(out, "evil-1") || strings.Contains(out, "6.6.6") {
		t.Errorf("a refused report reached the fleet:\n%s", out)
	}

	fleetInBrowser(t, seedAPI, alpha[1].API, []string{"alpha/alpha-1", "alpha/alpha-2", "beta/beta-1"}, "1.0.0", "2 of 2 on 1.0.0")
}

// fleetInBrowser checks the seed dashboard's fleet card in headless Chromium,
// and a node dashboard's site card.
func fleetInBrowser(t *testing.T, seedAPI, nodeAPI string, nodes []string, want, wantSite string) {
	t.Helper()
	chromium := envOr("CHROMIUM", "/usr/bin/chromium")
	for _, need := range []string{chromium, "browser/node_modules/playwright-core"} {
		if _, err := os.Stat(need); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("browser check needs %s (apt-get install chromium; cd integration/browser && npm ci): %v", need, err)
			}
			t.Skipf("browser check needs %s: %v", need, err)
		}
	}
	nodeJS, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("browser check needs node: %v", err)
	}
	script, err := filepath.Abs("browser/fleet.mjs")
	if err != nil {
		t.Fatal(err)
	}
	shot, err := filepath.Abs(filepath.Join("artifacts", "fleet.png"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, nodeJS, script, "--url", "http://"+seedAPI+"/", "--screenshot", shot,
		"--nodes", strings.Join(nodes, ","), "--want", want, "--node-url", "http://"+nodeAPI+"/", "--timeout", "60", "--chromium", chromium).CombinedOutput()
	t.Logf("browser: %s", out)
	if err != nil {
		t.Fatalf("seed dashboard fleet card: %v", err)
	}
	var ev struct {
		Sites []string `json:"sites"`
		Site  string   `json:"site"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &ev); err != nil || strings.Join(ev.Sites, ",") != "alpha,beta" {
		t.Errorf("dashboard lists sites %v (%v), want alpha,beta", ev.Sites, err)
	}
	if ev.Site != wantSite {
		t.Errorf("node dashboard's site card says %q, want %q", ev.Site, wantSite)
	}
}
