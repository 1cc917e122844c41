package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/patchmesh/patchmesh/node/api"
)

// TestDashboardInBrowser loads a real node's dashboard in headless Chromium while
// a release spreads over a three-node loopback site: the page must show the
// peers and the progress, and after "Check for updates now" the new release.
// The screenshot lands in integration/artifacts/. Then the nodes' /metrics must
// pass the linter and add up to what the seed served.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: long")
	}
	chromium := envOr("CHROMIUM", "/usr/bin/chromium")
	script, err := filepath.Abs("browser/dashboard.mjs")
	if err != nil {
		t.Fatal(err)
	}
	for _, need := range []string{chromium, "browser/node_modules/playwright-core"} {
		if _, err := os.Stat(need); err != nil {
			// .ci/run installs both; on CI a missing one is a failure, not a skip.
			if os.Getenv("CI") != "" {
				t.Fatalf("browser test needs %s (apt-get install chromium; cd integration/browser && npm ci): %v", need, err)
			}
			t.Skipf("browser test needs %s: %v", need, err)
		}
	}
	nodeJS, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("browser test needs node: %v", err)
	}

	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 4, 11)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	// The WAN link: the seed behind a proxy that delays each chunk, so the
	// release takes a few seconds to spread and its progress can be seen.
	wan := slowChunks(t, seed.URL, 40*time.Millisecond)

	siteKey := filepath.Join(pub.Dir, "site.key")
	mustPM(t, "keygen", "--site", "--out", siteKey)
	// A LAN upload cap far above what the test moves, for the page to show.
	opts := nodeOpts{Trust: pub.Trust, Sources: []string{wan}, SiteKey: siteKey, Extra: []string{"--concurrency", "2", "--lan-upload-rate", "1000Mbit"}}
	o1 := opts
	o1.Name = "till-1"
	n1 := newNode(t, o1)
	nodes := []*nodeProc{n1}
	for _, name := range []string{"till-2", "till-3"} {
		o := opts
		o.Name, o.Join = name, []string{n1.Gossip}
		nodes = append(nodes, newNode(t, o))
	}
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 90*time.Second)
	}
	waitFor(t, 30*time.Second, func() bool {
		alive := 0
		for _, p := range n1.Status(t).Peers {
			if p.State == "alive" {
				alive++
			}
		}
		return alive == len(nodes)
	}, "the site to see all three nodes alive")

	artifacts, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifacts, "dashboard.png")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeJS, script, "--url", "http://"+n1.API+"/", "--screenshot", shot,
		"--peers", "3", "--want", "2.0.0", "--timeout", "150", "--wait-stdin", "--chromium", chromium)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var seenPeers, seenProgress, seenCaps, done, askedOthers bool
	// The other nodes check too, so the release spreads over the site; only
	// once the page has shown this node's progress: asked with the click,
	// they sometimes held every chunk before this node began, and its
	// release came over the LAN between two of the page's updates.
	askOthers := func() {
		if askedOthers {
			return
		}
		askedOthers = true
		for _, n := range nodes[1:] {
			if _, err := api.NewClient(n.API, "").Check(ctx, false); err != nil {
				t.Errorf("%s: check: %v", n.Name, err)
			}
		}
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Event   string `json:"event"`
			Phase   string `json:"phase"`
			Current string `json:"current"`
			Caps    string `json:"caps"`
			Peers   []struct {
				Name, State string
			} `json:"peers"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Errorf("script printed %q: %v", sc.Text(), err)
			continue
		}
		t.Logf("browser: %s", sc.Text())
		alive := 0
		for _, p := range ev.Peers {
			if p.State == "alive" {
				alive++
			}
		}
		seenPeers = seenPeers || alive == 3
		seenCaps = seenCaps || ev.Caps == "LAN upload 1 Gbit/s"
		switch {
		case ev.Event == "ready":
			// The page shows v1 and the site: now publish v2 and let the click find it.
			makeTree(t, src, 4, 12)
			pub.Publish("2.0.0", src)
			if _, err := io.WriteString(stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
		case ev.Event == "seen" && ev.Phase != "" && ev.Phase != "idle":
			seenProgress = true
			askOthers()
		case ev.Event == "done":
			done = true
			askOthers()
		}
	}
	if err := cmd.Wait(); err != nil || !done {
		t.Fatalf("browser test failed: %v\n%s", err, stderr.String())
	}
	if !seenPeers {
		t.Error("the dashboard never showed three alive peers")
	}
	if !seenProgress {
		t.Error("the dashboard never showed the release in progress")
	}
	if !seenCaps {
		t.Error(`the dashboard never showed the rate caps as "LAN upload 1 Gbit/s"`)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Errorf("no screenshot at %s: %v", shot, err)
	}

	// Every node gets v2; their WAN counters add up to what the seed served.
	for _, n := range nodes {
		n.WaitVersion(t, "2.0.0", 90*time.Second)
	}
	var wanSum, lanSum float64
	for _, n := range nodes {
		fams, text := scrapeMetrics(t, n)
		problems, err := promlint.New(strings.NewReader(text)).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s /metrics lint: %s: %s", n.Name, p.Metric, p.Text)
		}
		st := n.Status(t)
		wan, lan := sample(fams, "patchmesh_bytes_received_total", "wan"), sample(fams, "patchmesh_bytes_received_total", "lan")
		if wan != float64(st.Bytes.WAN) || lan != float64(st.Bytes.LAN) {
			t.Errorf("%s: metrics say WAN %v LAN %v, status says %d %d", n.Name, wan, lan, st.Bytes.WAN, st.Bytes.LAN)
		}
		if got := sample(fams, "patchmesh_current_release_sequence", ""); got != float64(st.Current.Sequence) {
			t.Errorf("%s: current_release_sequence %v, status %d", n.Name, got, st.Current.Sequence)
		}
		wanSum += wan
		lanSum += lan
	}
	if served := seed.Served(t).ChunkBytes; wanSum != float64(served) {
		t.Errorf("nodes count %v WAN chunk bytes, the seed served %d", wanSum, served)
	}
	if lanSum == 0 {
		t.Error("no byte moved over the LAN: the site did not share")
	}
	t.Logf("site: WAN %.0f bytes, LAN %.0f bytes, saving %.0f%%", wanSum, lanSum, 100*lanSum/(wanSum+lanSum))
}

// slowChunks puts a proxy in front of a repository that delays every chunk.
func slowChunks(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/chunks/") {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func scrapeMetrics(t *testing.T, n *nodeProc) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + n.API + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", n.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s /metrics: %d %v", n.Name, resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("%s /metrics does not parse: %v", n.Name, err)
	}
	return fams, string(body)
}

// sample returns the value of the metric name with origin (or no label) origin.
func sample(fams map[string]*dto.MetricFamily, name, origin string) float64 {
	fam := fams[name]
	if fam == nil {
		return -1
	}
	for _, m := range fam.GetMetric() {
		o := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "origin" {
				o = l.GetValue()
			}
		}
		if o != origin {
			continue
		}
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
