package api

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// The site gauges follow the node's site view and pass the linter.
func TestSiteMetrics(t *testing.T) {
	f := newFakeNode()
	f.update(func(st *Status) {
		st.Site = &SiteView{Site: "paris", Members: 14, OnLatest: 12, Failing: []SiteFailure{{Name: "a"}, {Name: "b"}},
			Saving7d: 0.9, Saving28d: 0.8}
	})
	srv, _ := serve(t, f, Options{Version: "1.2.3"})
	fams, body := scrape(t, srv.URL)
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"patchmesh_site_members", nil, 14},
		{"patchmesh_site_members_on_current", nil, 12},
		{"patchmesh_site_members_failing", nil, 2},
		{"patchmesh_site_wan_saving_ratio", map[string]string{"window": "7d"}, 0.9},
		{"patchmesh_site_wan_saving_ratio", map[string]string{"window": "28d"}, 0.8},
	} {
		if got := value(t, fams, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint /metrics: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCollector(f, "1.2.3"))
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
