package api

import (
	"context"
	"net/http"
	"time"
)

// Bounds of site and fleet reports, which cross the network.
const (
	// MaxSiteNodes bounds the members a site view lists (the mesh keeps at
	// most as many summaries).
	MaxSiteNodes = 256
	// MaxReportBytes bounds a site report's JSON body.
	MaxReportBytes = 256 << 10
)

// SiteView is a node's view of its whole site, from its members' gossip
// (GET /api/status, "site"). A site's elected node reports it to the fleet
// collector (POST /api/report on the seed).
type SiteView struct {
	// Site names the site: its label (report config), else the site key's
	// fingerprint.
	Site string `json:"site"`
	// Summary is the view in one line: "12 of 14 on 1.4.2; 2 failing: …".
	Summary string `json:"summary"`
	// Members counts the members known and not gone (alive, leaving or
	// unreachable); OnLatest those running Latest, the newest release any
	// of them runs.
	Members   int    `json:"members"`
	OnLatest  int    `json:"on_latest"`
	Latest    string `json:"latest,omitempty"`
	LatestSeq uint64 `json:"latest_sequence,omitempty"`
	// Failing lists the members whose last check failed, rolled back or
	// refused, or that are unreachable.
	Failing []SiteFailure `json:"failing"`
	// Halted: a member reports the site halted a staged rollout.
	Halted bool `json:"halted"`
	// Bytes of the site's members over the last 7 and 28 days (daily
	// counters each node keeps), and the WAN saving over each window:
	// LAN / (LAN + WAN), 0 without bytes.
	WAN7d     int64   `json:"wan_7d"`
	LAN7d     int64   `json:"lan_7d"`
	WAN28d    int64   `json:"wan_28d"`
	LAN28d    int64   `json:"lan_28d"`
	Served28d int64   `json:"served_28d"`
	Saving7d  float64 `json:"saving_7d"`
	Saving28d float64 `json:"saving_28d"`
	// Reporter is the member elected to report the site to the fleet: the
	// lowest-named alive member.
	Reporter string     `json:"reporter,omitempty"`
	Nodes    []SiteNode `json:"nodes"`
	// What the view costs the gossip, as this node holds it: the largest
	// member summary and the whole push-pull state, in bytes, and their caps.
	Gossip SiteGossip `json:"gossip"`
}

// SiteGossip measures the site view's gossip on one node.
type SiteGossip struct {
	SummaryMaxBytes int `json:"summary_max_bytes"`
	StateBytes      int `json:"state_bytes"`
	Summaries       int `json:"summaries"`
	SummaryCap      int `json:"summary_cap_bytes"`
	MembersCap      int `json:"members_cap"`
}

// SiteFailure is one failing member.
type SiteFailure struct {
	Name    string `json:"name"`
	Outcome string `json:"outcome"` // failed, rolled-back, refused, aborted, skipped-bad, unreachable
	Message string `json:"message,omitempty"`
}

// SiteNode is one member as the site view shows it.
type SiteNode struct {
	Name      string    `json:"name"`
	State     string    `json:"state"` // alive, leaving, dead
	Version   string    `json:"version,omitempty"`
	Sequence  uint64    `json:"sequence,omitempty"`
	LastCheck time.Time `json:"last_check,omitzero"`
	Outcome   string    `json:"outcome,omitempty"`
	Message   string    `json:"message,omitempty"`
	// Failures counts the member's failed checks and rollbacks since it started.
	Failures  int64 `json:"failures"`
	Halted    bool  `json:"halted,omitempty"`
	WAN7d     int64 `json:"wan_7d"`
	LAN7d     int64 `json:"lan_7d"`
	WAN28d    int64 `json:"wan_28d"`
	LAN28d    int64 `json:"lan_28d"`
	Served28d int64 `json:"served_28d"`
}

// SiteReport is what a site's elected node posts to the fleet collector.
type SiteReport struct {
	Reporter string    `json:"reporter"`
	Sent     time.Time `json:"sent"`
	View     SiteView  `json:"view"`
}

// FleetSite is one site as the collector holds it.
type FleetSite struct {
	SiteReport
	Received time.Time `json:"received"`
	// Stale: no report came for three report intervals (the site, or its
	// reporter, may be down).
	Stale bool `json:"stale"`
}

// Fleet is the collector's view (GET /api/fleet on the seed).
type Fleet struct {
	Sites []FleetSite `json:"sites"`
	// Totals over the sites.
	Nodes    int `json:"nodes"`
	OnLatest int `json:"on_latest"`
	Failing  int `json:"failing"`
	Halted   int `json:"halted"`
}

// Fleet returns a seed's fleet view (GET /api/fleet on its API listener).
func (c *Client) Fleet(ctx context.Context) (*Fleet, error) {
	var f Fleet
	if err := c.do(ctx, http.MethodGet, "/api/fleet", nil, &f, true); err != nil {
		return nil, err
	}
	return &f, nil
}
