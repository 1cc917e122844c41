package seed

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector reads the seed's Status at scrape time, so the metrics are exactly
// what /api/status says.
type collector struct {
	s *Seed

	requests, bytes, chunkBytes, chunks, notFound *prometheus.Desc
	sequence, expiry, channels                    *prometheus.Desc
	fleetSites, fleetNodes, fleetFailing          *prometheus.Desc
	fleetHalted, fleetStale, fleetOnLatest        *prometheus.Desc
}

func newCollector(s *Seed) *collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("patchmesh_seed_"+name, help, labels, nil)
	}
	return &collector{
		s:          s,
		requests:   desc("requests_total", "Requests to the repository listener."),
		bytes:      desc("bytes_served_total", "Body bytes of every repository response."),
		chunkBytes: desc("chunk_bytes_served_total", "Body bytes of chunk responses."),
		chunks:     desc("chunks_served_total", "Chunk responses with a body."),
		notFound:   desc("not_found_total", "Repository requests answered 404."),
		sequence:   desc("channel_sequence", "Sequence number of the channel's head.", "channel"),
		expiry:     desc("head_expiry_timestamp_seconds", "Unix time at which the channel's head expires; nodes refuse it after.", "channel"),
		channels:   desc("channels", "Channels of the repository by head state: ok, expiring (within 24 hours), expired, unreadable.", "state"),

		fleetSites:    prometheus.NewDesc("patchmesh_fleet_sites", "Sites whose reports the collector holds.", nil, nil),
		fleetNodes:    prometheus.NewDesc("patchmesh_fleet_nodes", "Nodes of the reporting sites.", nil, nil),
		fleetOnLatest: prometheus.NewDesc("patchmesh_fleet_nodes_on_current", "Nodes running the newest release of their site.", nil, nil),
		fleetFailing:  prometheus.NewDesc("patchmesh_fleet_nodes_failing", "Nodes whose site reports them failing or unreachable.", nil, nil),
		fleetHalted:   prometheus.NewDesc("patchmesh_fleet_sites_halted", "Sites that halted a staged rollout.", nil, nil),
		fleetStale:    prometheus.NewDesc("patchmesh_fleet_sites_stale", "Sites without a report for 5 minutes.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.bytes, c.chunkBytes, c.chunks, c.notFound, c.sequence, c.expiry, c.channels,
		c.fleetSites, c.fleetNodes, c.fleetOnLatest, c.fleetFailing, c.fleetHalted, c.fleetStale} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	st := c.s.Stats()
	counter(c.requests, st.Requests)
	counter(c.bytes, st.Bytes)
	counter(c.chunkBytes, st.ChunkBytes)
	counter(c.chunks, st.Chunks)
	counter(c.notFound, st.NotFound)
	if f := c.s.fleet; f != nil {
		v := f.view(time.Now())
		stale := 0
		for _, s := range v.Sites {
			if s.Stale {
				stale++
			}
		}
		gauge := func(d *prometheus.Desc, n int) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n))
		}
		gauge(c.fleetSites, len(v.Sites))
		gauge(c.fleetNodes, v.Nodes)
		gauge(c.fleetOnLatest, v.OnLatest)
		gauge(c.fleetFailing, v.Failing)
		gauge(c.fleetHalted, v.Halted)
		gauge(c.fleetStale, stale)
	}

	states := map[string]int{StateOK: 0, StateExpiring: 0, StateExpired: 0, StateUnreadable: 0}
	for _, h := range c.s.channels(time.Now()) {
		states[h.State]++
		if h.State == StateUnreadable {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.sequence, prometheus.GaugeValue, float64(h.Sequence), h.Name)
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(h.Expires.UnixMilli())/1000, h.Name)
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(c.channels, prometheus.GaugeValue, float64(n), state)
	}
}
