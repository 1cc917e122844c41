package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics as Prometheus would and parses it.
func scrape(t *testing.T, url string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	code, body, hdr := call(t, nil, "GET", url+"/metrics", nil, "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type = %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams, body
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		t.Errorf("no metric %s", name)
		return -1
	}
next:
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		default:
			return m.GetGauge().GetValue()
		}
	}
	t.Errorf("no sample of %s with labels %v", name, want)
	return -1
}

func TestMetricsMatchTheNode(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{Version: "1.2.3"})
	fams, _ := scrape(t, srv.URL)
	st := f.Status()

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
		typ    dto.MetricType
	}{
		{"patchmesh_up", nil, 1, dto.MetricType_GAUGE},
		{"patchmesh_site_wan_fetches", nil, 48, dto.MetricType_GAUGE},
		{"patchmesh_build_info", map[string]string{"version": "1.2.3"}, 1, dto.MetricType_GAUGE},
		{"patchmesh_bytes_received_total", map[string]string{"origin": "wan"}, float64(st.Bytes.WAN), dto.MetricType_COUNTER},
		{"patchmesh_bytes_received_total", map[string]string{"origin": "lan"}, float64(st.Bytes.LAN), dto.MetricType_COUNTER},
		{"patchmesh_bytes_served_total", nil, float64(st.Bytes.Served), dto.MetricType_COUNTER},
		{"patchmesh_chunks_fetched_total", map[string]string{"origin": "wan"}, 11, dto.MetricType_COUNTER},
		{"patchmesh_chunks_fetched_total", map[string]string{"origin": "lan"}, 33, dto.MetricType_COUNTER},
		{"patchmesh_chunks_served_total", nil, 44, dto.MetricType_COUNTER},
		{"patchmesh_verify_failures_total", nil, 1, dto.MetricType_COUNTER},
		{"patchmesh_applies_total", nil, 3, dto.MetricType_COUNTER},
		{"patchmesh_rollbacks_total", nil, 1, dto.MetricType_COUNTER},
		{"patchmesh_refusals_total", nil, 2, dto.MetricType_COUNTER},
		{"patchmesh_checks_total", nil, 9, dto.MetricType_COUNTER},
		{"patchmesh_check_duration_seconds_total", nil, 4.5, dto.MetricType_COUNTER},
		// Peers count the other members: till-3 is this node.
		{"patchmesh_peers", map[string]string{"state": "alive"}, 1, dto.MetricType_GAUGE},
		{"patchmesh_peers", map[string]string{"state": "suspect"}, 1, dto.MetricType_GAUGE},
		{"patchmesh_peers", map[string]string{"state": "dead"}, 1, dto.MetricType_GAUGE},
		{"patchmesh_peers", map[string]string{"state": "left"}, 0, dto.MetricType_GAUGE},
		{"patchmesh_source_failures_total", map[string]string{"source": "https://updates.example.com/repo"}, 0, dto.MetricType_COUNTER},
		{"patchmesh_source_failures_total", map[string]string{"source": "ftp://mirror:xxxxx@mirror.example.com/pm"}, 2, dto.MetricType_COUNTER},
		{"patchmesh_source_healthy", map[string]string{"source": "https://updates.example.com/repo"}, 1, dto.MetricType_GAUGE},
		{"patchmesh_release_progress_ratio", nil, 0.25, dto.MetricType_GAUGE},
		{"patchmesh_release_progress_chunks", map[string]string{"kind": "done"}, 10, dto.MetricType_GAUGE},
		{"patchmesh_release_progress_bytes", map[string]string{"kind": "total"}, 4000, dto.MetricType_GAUGE},
		{"patchmesh_store_bytes", nil, float64(st.Store.Bytes), dto.MetricType_GAUGE},
		{"patchmesh_store_chunks", nil, 120, dto.MetricType_GAUGE},
		{"patchmesh_current_release_sequence", nil, 7, dto.MetricType_GAUGE},
		{"patchmesh_recent_errors", map[string]string{"kind": "refused"}, 1, dto.MetricType_GAUGE},
		{"patchmesh_rate_cap_bytes_per_second", map[string]string{"cap": "wan"}, 250_000, dto.MetricType_GAUGE},
		{"patchmesh_rate_cap_bytes_per_second", map[string]string{"cap": "site_wan"}, 1_250_000, dto.MetricType_GAUGE},
		{"patchmesh_rate_cap_bytes_per_second", map[string]string{"cap": "lan_upload"}, 0, dto.MetricType_GAUGE},
		{"patchmesh_throttled_seconds_total", map[string]string{"cap": "wan"}, 12.5, dto.MetricType_COUNTER},
	}
	for _, tt := range tests {
		if got := value(t, fams, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
		if fam := fams[tt.name]; fam != nil && fam.GetType() != tt.typ {
			t.Errorf("%s is a %v, want %v", tt.name, fam.GetType(), tt.typ)
		}
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}

	// A scrape reads the node again: counters follow it.
	f.update(func(st *Status) {
		st.Counters.Applies = 4
		st.Bytes.LAN = 9000
		st.Progress = nil
	})
	fams, _ = scrape(t, srv.URL)
	if got := value(t, fams, "patchmesh_applies_total", nil); got != 4 {
		t.Errorf("applies after the node applied again = %v, want 4", got)
	}
	if got := value(t, fams, "patchmesh_bytes_received_total", map[string]string{"origin": "lan"}); got != 9000 {
		t.Errorf("LAN bytes = %v, want 9000", got)
	}
	if got := value(t, fams, "patchmesh_release_progress_ratio", nil); got != 0 {
		t.Errorf("progress with nothing in progress = %v, want 0", got)
	}
}

func TestMetricsLint(t *testing.T) {
	f := newFakeNode()
	srv, _ := serve(t, f, Options{Version: "1.2.3"})

	// The collector as registered.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCollector(f, "1.2.3"))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// And what a scraper reads, Go and process metrics included.
	_, body := scrape(t, srv.URL)
	problems, err = promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint /metrics: %s: %s", p.Metric, p.Text)
	}
}
