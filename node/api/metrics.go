package api

import (
	"github.com/prometheus/client_golang/prometheus"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("patchmesh_"+name, help, labels, nil)
}

// collector reads Backend.Status at scrape time, so the metrics are exactly
// what /api/status says, with no second set of counters to drift.
type collector struct {
	b       Backend
	version string

	up, buildInfo, uptime                                *prometheus.Desc
	bytesReceived, bytesServed                           *prometheus.Desc
	chunksFetched, chunksServed, verifyFailures          *prometheus.Desc
	peers, applies, rollbacks, refusals                  *prometheus.Desc
	sourceFailures, sourceHealthy, checks, checkSeconds  *prometheus.Desc
	checking, progressRatio, progressChunks, progressBy  *prometheus.Desc
	storeBytes, storeChunks, storeQuota, currentSequence *prometheus.Desc
	errors                                               *prometheus.Desc
	peerVerifyFailures, storeDamaged                     *prometheus.Desc
	scrubPasses, scrubChunks, scrubBytes                 *prometheus.Desc
	rolloutHalted, rolloutStage, rolloutWaiting          *prometheus.Desc
	rolloutSite                                          *prometheus.Desc
	rateCap, throttled                                   *prometheus.Desc
	windowOpen, windowWaiting                            *prometheus.Desc
	siteMembers, siteOnLatest, siteFailing, siteSaving   *prometheus.Desc
	wanFetches                                           *prometheus.Desc
}

func newCollector(b Backend, version string) *collector {
	return &collector{
		b: b, version: version,
		up:              desc("up", "1 while the node answers."),
		buildInfo:       desc("build_info", "Build version of patchmesh, as a label; always 1.", "version"),
		uptime:          desc("uptime_seconds", "Seconds since the node started."),
		bytesReceived:   desc("bytes_received_total", "Chunk bytes received, by origin: wan (update sources) or lan (site peers).", "origin"),
		bytesServed:     desc("bytes_served_total", "Chunk bytes sent to site peers and repository clients."),
		chunksFetched:   desc("chunks_fetched_total", "Chunks fetched and verified, by origin: wan or lan.", "origin"),
		chunksServed:    desc("chunks_served_total", "Chunks sent to site peers and repository clients."),
		verifyFailures:  desc("verify_failures_total", "Chunks or files whose bytes did not match their digest."),
		peers:           desc("peers", "Other members of the site, by membership state.", "state"),
		applies:         desc("applies_total", "Releases switched in."),
		rollbacks:       desc("rollbacks_total", "Rollbacks to a previous release, automatic or asked for."),
		refusals:        desc("refusals_total", "Heads or manifests refused (signature, expiry, rollback, platform)."),
		sourceFailures:  desc("source_failures_total", "Failed requests to an update source.", "source"),
		sourceHealthy:   desc("source_healthy", "1 when the update source answered its last request.", "source"),
		checks:          desc("checks_total", "Checks of the update sources."),
		checkSeconds:    desc("check_duration_seconds_total", "Time spent in checks, including the fetch and apply they start."),
		checking:        desc("checking", "1 while a check runs."),
		progressRatio:   desc("release_progress_ratio", "Share of the bytes of the release in progress that the node holds; 0 when idle."),
		progressChunks:  desc("release_progress_chunks", "Chunks of the release in progress, done and in total.", "kind"),
		progressBy:      desc("release_progress_bytes", "Bytes of the release in progress, done and in total.", "kind"),
		storeBytes:      desc("store_bytes", "Bytes held in the chunk store."),
		storeChunks:     desc("store_chunks", "Chunks held in the chunk store."),
		storeQuota:      desc("store_quota_bytes", "Disk quota of the chunk store; 0 means none."),
		currentSequence: desc("current_release_sequence", "Sequence number of the current release; 0 before the first."),
		errors:          desc("recent_errors", "Errors and refusals in the recent list, by kind.", "kind"),
		peerVerifyFailures: desc("peer_verify_failures_total",
			"Chunks a site peer sent that did not match their CID, by peer name; counted in verify_failures_total too.", "peer"),
		storeDamaged:   desc("store_damaged_chunks_total", "Stored chunks found damaged, by a read or a scrub, and dropped to be fetched again."),
		scrubPasses:    desc("scrub_passes_total", "Scrubs of the chunk store finished."),
		scrubChunks:    desc("scrub_chunks_total", "Stored chunks read and checked by scrubs."),
		scrubBytes:     desc("scrub_bytes_total", "Stored chunk bytes read and checked by scrubs."),
		rolloutHalted:  desc("rollout_halted", "1 while this node's site has halted the staged rollout of the head's release (see /api/status for why).", "version"),
		rolloutStage:   desc("rollout_stage", "This node's stage in the staged rollout of the head's release; -1 in none.", "version"),
		rolloutWaiting: desc("rollout_waiting", "1 while this node holds off applying a staged release (stage not open, paused, halted, aborted).", "version"),
		windowOpen:     desc("maintenance_window_open", "1 while now is inside this node's maintenance windows (and its rollout stage's); only when it has any."),
		windowWaiting:  desc("maintenance_window_waiting", "1 while a staged release waits for a maintenance window to open.", "version"),
		rolloutSite:    desc("rollout_site_installs", "Installs of the staged release in this node's site, by outcome: applied or failed.", "version", "outcome"),
		rateCap: desc("rate_cap_bytes_per_second",
			"Byte-rate cap in force, by cap: wan (this node's WAN reads, after its site share), site_wan (the whole site's), lan_upload; 0 means none.", "cap"),
		throttled: desc("throttled_seconds_total",
			"Seconds transfers waited on a rate cap, by cap: wan or lan_upload; summed over transfers that waited at once.", "cap"),
		siteMembers:  desc("site_members", "Members of this node's site in its site view (not gone)."),
		siteOnLatest: desc("site_members_on_current", "Members of the site running the newest release any member runs."),
		siteFailing:  desc("site_members_failing", "Members of the site whose last check failed, rolled back or was refused, or that are unreachable."),
		siteSaving:   desc("site_wan_saving_ratio", "Share of the site's chunk bytes that came over the LAN, LAN / (LAN + WAN), over a window of days.", "window"),
		wanFetches:   desc("site_wan_fetches", "WAN fetches this node makes at once now as an owner in its site: its share of the site's, widened while they stay quick; only with a mesh."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.up, c.buildInfo, c.uptime, c.bytesReceived, c.bytesServed, c.chunksFetched, c.chunksServed,
		c.verifyFailures, c.peers, c.applies, c.rollbacks, c.refusals, c.sourceFailures, c.sourceHealthy,
		c.checks, c.checkSeconds, c.checking, c.progressRatio, c.progressChunks, c.progressBy,
		c.storeBytes, c.storeChunks, c.storeQuota, c.currentSequence, c.errors,
		c.peerVerifyFailures, c.storeDamaged, c.scrubPasses, c.scrubChunks, c.scrubBytes,
		c.rolloutHalted, c.rolloutStage, c.rolloutWaiting, c.rolloutSite, c.rateCap, c.throttled,
		c.windowOpen, c.windowWaiting,
		c.siteMembers, c.siteOnLatest, c.siteFailing, c.siteSaving, c.wanFetches,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := sanitize(c.b.Status())
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	n := &st.Counters

	gauge(c.up, 1)
	gauge(c.buildInfo, 1, c.version)
	gauge(c.uptime, st.Node.UptimeSeconds)
	counter(c.bytesReceived, float64(st.Bytes.WAN), "wan")
	counter(c.bytesReceived, float64(st.Bytes.LAN), "lan")
	counter(c.bytesServed, float64(st.Bytes.Served))
	counter(c.chunksFetched, float64(n.ChunksFetchedWAN), "wan")
	counter(c.chunksFetched, float64(n.ChunksFetchedLAN), "lan")
	counter(c.chunksServed, float64(n.ChunksServed))
	counter(c.verifyFailures, float64(n.VerifyFailures))
	for p, k := range n.VerifyFailuresByPeer {
		counter(c.peerVerifyFailures, float64(k), p)
	}
	if w := st.Window; w != nil {
		gauge(c.windowOpen, boolFloat(w.Open))
		if w.Waiting {
			gauge(c.windowWaiting, 1, w.Version)
		}
	}
	if r := st.Rollout; r != nil {
		gauge(c.rolloutHalted, boolFloat(r.Halted), r.Version)
		gauge(c.rolloutStage, float64(r.Stage), r.Version)
		gauge(c.rolloutWaiting, boolFloat(r.Action == "wait"), r.Version)
		gauge(c.rolloutSite, float64(r.SiteApplied), r.Version, "applied")
		gauge(c.rolloutSite, float64(r.SiteFailed), r.Version, "failed")
	}
	if cp := st.Caps; cp != nil {
		gauge(c.rateCap, float64(cp.WAN), "wan")
		gauge(c.rateCap, float64(cp.SiteWAN), "site_wan")
		gauge(c.rateCap, float64(cp.LANUpload), "lan_upload")
		counter(c.throttled, cp.WANThrottledSeconds, "wan")
		counter(c.throttled, cp.LANThrottledSeconds, "lan_upload")
	}
	if st.Node.WANFetches > 0 {
		gauge(c.wanFetches, float64(st.Node.WANFetches))
	}
	if v := st.Site; v != nil {
		gauge(c.siteMembers, float64(v.Members))
		gauge(c.siteOnLatest, float64(v.OnLatest))
		gauge(c.siteFailing, float64(len(v.Failing)))
		gauge(c.siteSaving, v.Saving7d, "7d")
		gauge(c.siteSaving, v.Saving28d, "28d")
	}
	counter(c.applies, float64(n.Applies))
	counter(c.rollbacks, float64(n.Rollbacks))
	counter(c.refusals, float64(n.Refusals))
	counter(c.checks, float64(n.Checks))
	counter(c.checkSeconds, n.CheckSecondsTotal)

	// Every state has a series, so a state with no peer reads 0, not absent.
	states := make(map[string]int, 4)
	for _, s := range []string{"alive", "suspect", "dead", "left"} {
		states[s] = 0
	}
	for _, p := range st.Peers {
		if !p.Self {
			states[p.State]++
		}
	}
	for s, k := range states {
		gauge(c.peers, float64(k), s)
	}

	// Every configured source has a series, failing or not.
	failures := make(map[string]int64, len(st.Sources))
	for _, s := range st.Sources {
		failures[s.URL] = 0
		gauge(c.sourceHealthy, boolFloat(s.Healthy), s.URL)
	}
	for u, k := range n.SourceFailuresByURL {
		failures[u] = k
	}
	for u, k := range failures {
		counter(c.sourceFailures, float64(k), u)
	}

	gauge(c.checking, boolFloat(st.Checking))
	var ratio float64
	var p Progress
	if st.Progress != nil {
		p = *st.Progress
		switch {
		case p.BytesTotal > 0:
			ratio = float64(p.BytesDone) / float64(p.BytesTotal)
		case p.ChunksTotal > 0:
			ratio = float64(p.ChunksDone) / float64(p.ChunksTotal)
		}
	}
	gauge(c.progressRatio, ratio)
	gauge(c.progressChunks, float64(p.ChunksDone), "done")
	gauge(c.progressChunks, float64(p.ChunksTotal), "total")
	gauge(c.progressBy, float64(p.BytesDone), "done")
	gauge(c.progressBy, float64(p.BytesTotal), "total")

	gauge(c.storeBytes, float64(st.Store.Bytes))
	gauge(c.storeChunks, float64(st.Store.Chunks))
	gauge(c.storeQuota, float64(st.Store.QuotaBytes))
	counter(c.storeDamaged, float64(st.Store.DamagedChunks))
	counter(c.scrubPasses, float64(st.Store.ScrubPasses))
	counter(c.scrubChunks, float64(st.Store.ScrubChunks))
	counter(c.scrubBytes, float64(st.Store.ScrubBytes))
	var seq float64
	if st.Current != nil {
		seq = float64(st.Current.Sequence)
	}
	gauge(c.currentSequence, seq)

	kinds := make(map[string]int)
	for _, e := range st.Errors {
		kinds[e.Kind]++
	}
	for k, v := range kinds {
		gauge(c.errors, float64(v), k)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
