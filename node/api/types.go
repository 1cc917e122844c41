package api

import (
	"context"
	"time"
)

// Backend is what the API serves: the running node. The node implements it.
type Backend interface {
	Status() Status
	// Check asks the node to check its sources now. With wait it returns once the
	// check (and any fetch and apply it starts) has finished.
	Check(ctx context.Context, wait bool) (CheckResult, error)
	// Rollback switches channel back to its previous release and marks the
	// current one bad. Channel "" is the node's first channel; an unknown
	// one wraps ErrNoChannel (as for Retry and ApplyNow).
	Rollback(ctx context.Context, channel, reason string) (RollbackResult, error)
	// Scrub checks every stored chunk now, drops the damaged ones and fetches
	// again those a kept release needs. It returns once that is done.
	Scrub(ctx context.Context) (ScrubResult, error)
	// Retry clears the bad mark of the release of version, so that the next
	// check applies it again. It wraps ErrNotBad when no such release is bad.
	Retry(ctx context.Context, channel, version string) (RetryResult, error)
	// ApplyNow applies the staged release that waits for a maintenance
	// window now, by a check (wait as for Check). It wraps ErrNothingWaiting
	// when no release waits for a window.
	ApplyNow(ctx context.Context, channel string, wait bool) (CheckResult, error)
}

// Status is the whole state of a node, as GET /api/status returns it.
type Status struct {
	Node      NodeInfo      `json:"node"`
	Channel   string        `json:"channel"`
	Sources   []SourceState `json:"sources"`
	LastCheck *CheckResult  `json:"last_check,omitempty"`
	NextCheck time.Time     `json:"next_check"`
	Checking  bool          `json:"checking"`
	Current   *ReleaseInfo  `json:"current,omitempty"`
	Previous  *ReleaseInfo  `json:"previous,omitempty"`
	Progress  *Progress     `json:"progress,omitempty"` // a release being fetched or applied
	Releases  []ReleaseInfo `json:"releases"`           // newest first: installed, bad, refused
	Bytes     Bytes         `json:"bytes"`
	Peers     []Peer        `json:"peers"`
	Errors    []Event       `json:"errors"` // the last errors and refusals, newest first (at most 50)
	Counters  Counters      `json:"counters"`
	Store     StoreInfo     `json:"store"`
	// Window is where the node stands with its maintenance windows; absent
	// when neither the node nor the release's rollout stage has any.
	Window *WindowStatus `json:"window,omitempty"`
	// Rollout is the staged rollout of the release the channel's head names;
	// absent when it has none (it applies everywhere at once).
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// Proxy is the caching proxy's counters; absent when it is off. Its
	// bytes are also in Bytes: upstream in WAN, from owners in LAN.
	Proxy *ProxyStatus `json:"proxy,omitempty"`
	// Caps are the byte-rate caps in force now; absent from nodes without them.
	Caps *Caps `json:"caps,omitempty"`
	// Channels are every channel the node follows, its first channel (the
	// one Channel, Current, LastCheck, Rollout and Window above describe)
	// first.
	Channels []ChannelStatus `json:"channels"`
	// Site is the view of the node's whole site, from gossip; absent
	// without a mesh.
	Site *SiteView `json:"site,omitempty"`
}

// ChannelStatus is where a node stands with one channel it follows.
type ChannelStatus struct {
	Name       string         `json:"name"`
	InstallDir string         `json:"install_dir"`
	Current    *ReleaseInfo   `json:"current,omitempty"`
	Previous   *ReleaseInfo   `json:"previous,omitempty"`
	LastCheck  *CheckResult   `json:"last_check,omitempty"`
	NextCheck  time.Time      `json:"next_check"`
	Checking   bool           `json:"checking"`
	Progress   *Progress      `json:"progress,omitempty"`
	Rollout    *RolloutStatus `json:"rollout,omitempty"`
	Window     *WindowStatus  `json:"window,omitempty"`
}

// ProxyStatus counts the caching proxy's work since the node started.
type ProxyStatus struct {
	UpstreamBytes   int64 `json:"upstream_bytes"`    // from upstream hosts (fills, passes, tunnels)
	PeerBytes       int64 `json:"peer_bytes"`        // from the owners of objects in the site
	ServedPeerBytes int64 `json:"served_peer_bytes"` // to members, as owner
	Hits            int64 `json:"hits"`
	Misses          int64 `json:"misses"`
	Revalidated     int64 `json:"revalidated"` // confirmed by a 304 from upstream
	Passed          int64 `json:"passed"`      // not storable: passed through
	Refused         int64 `json:"refused"`
	Tunnels         int64 `json:"tunnels"`
	Objects         int64 `json:"objects"`
	Bytes           int64 `json:"bytes"`
}

// Caps are a node's byte-rate caps now, in bytes a second (0: none), and the
// time its transfers waited on them.
type Caps struct {
	WAN       int64 `json:"wan"`        // this node's WAN reads: its own, its site share, the channel's, whichever is tightest
	SiteWAN   int64 `json:"site_wan"`   // the whole site's WAN cap, shared by the members that fetch from the WAN
	LANUpload int64 `json:"lan_upload"` // chunk bytes served to site peers
	// Seconds transfers waited on a cap, summed over transfers that waited at once.
	WANThrottledSeconds float64 `json:"wan_throttled_seconds"`
	LANThrottledSeconds float64 `json:"lan_throttled_seconds"`
	UpdateNow           bool    `json:"update_now"` // an update asked for runs, under the update-now cap
}

// RolloutStatus is where this node and its site stand in a staged rollout.
type RolloutStatus struct {
	Channel  string `json:"channel"`
	Version  string `json:"version"`
	Release  uint64 `json:"release"`  // manifest sequence of the staged release
	Sequence uint64 `json:"sequence"` // of the rollout document obeyed
	State    string `json:"state"`    // running, paused, aborted (by the publisher)
	Stages   int    `json:"stages"`
	// This node's stage (-1: none), its name, its bucket in [0, 100), whether
	// it is its site's canary, and when its stage opens.
	Stage     int       `json:"stage"`
	StageName string    `json:"stage_name,omitempty"`
	Bucket    float64   `json:"bucket"`
	Canary    bool      `json:"canary"`
	OpensAt   time.Time `json:"opens_at,omitzero"`
	// Action is what the node does: apply, wait, ignore, rollback, done;
	// Reason says why (why it waits, why it ignores the release).
	Action     string   `json:"action"`
	Reason     string   `json:"reason"`
	Tags       []string `json:"tags,omitempty"`        // this node's
	TargetTags []string `json:"target_tags,omitempty"` // the release's
	// The site's health for the release, from its members' gossip.
	Halted      bool             `json:"halted"`
	HaltReason  string           `json:"halt_reason,omitempty"`
	Failing     []RolloutFailure `json:"failing,omitempty"`
	SiteApplied int              `json:"site_applied"`
	SiteFailed  int              `json:"site_failed"`
}

// RolloutFailure is a site member whose apply of the staged release failed.
type RolloutFailure struct {
	Name   string `json:"name"`
	Reason string `json:"reason,omitempty"`
}

// WindowStatus: a node downloads and stages any time, and applies only
// inside its maintenance windows and its rollout stage's, both.
type WindowStatus struct {
	Windows      []string `json:"windows,omitempty"`       // the node's, in its local time
	StageWindows []string `json:"stage_windows,omitempty"` // the rollout stage's, if any
	Open         bool     `json:"open"`                    // now is inside both
	// Waiting: the staged release (Release, Version) waits for OpensAt
	// (zero: none opens within a week); Reason says so for people.
	Waiting bool      `json:"waiting"`
	Release uint64    `json:"release,omitempty"`
	Version string    `json:"version,omitempty"`
	OpensAt time.Time `json:"opens_at,omitzero"`
	Reason  string    `json:"reason,omitempty"`
}

// NodeInfo identifies the node.
type NodeInfo struct {
	Name          string    `json:"name"`
	PeerID        string    `json:"peer_id,omitempty"`
	Site          string    `json:"site,omitempty"` // short fingerprint of the site key; empty without a mesh
	Role          string    `json:"role,omitempty"` // "dp" for a distribution point
	Version       string    `json:"version"`        // patchmesh build version
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	API           string    `json:"api"`
	ServeRepo     string    `json:"serve_repo,omitempty"` // address of the repository served to other sites, if any
	Gossip        string    `json:"gossip,omitempty"`
	OS            string    `json:"os"`
	Arch          string    `json:"arch"`
	// PeersAlive of PeersKnown other members of the site are alive: counted
	// here once, so the CLI and the dashboard say the same.
	PeersAlive int `json:"peers_alive"`
	PeersKnown int `json:"peers_known"`
	// WANFetches is how many WAN fetches this node makes at once now as
	// an owner in its site: its share of the site's, widened while they
	// stay quick. Zero without a mesh.
	WANFetches int `json:"wan_fetches,omitempty"`
}

// SourceState is the health of one update source.
type SourceState struct {
	URL           string    `json:"url"`
	Healthy       bool      `json:"healthy"`
	Failures      int       `json:"failures"` // consecutive, reset on success
	FailuresTotal int64     `json:"failures_total"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitempty"`
	LastOK        time.Time `json:"last_ok,omitempty"`
	RetryAt       time.Time `json:"retry_at,omitempty"`
	BytesRead     int64     `json:"bytes_read"`
}

// CheckResult is the outcome of one check of the sources.
type CheckResult struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitempty"`
	// Outcome: "up-to-date", "applied", "refused", "rolled-back", "failed", "skipped-bad",
	// and for staged rollouts "waiting" (fetched, applies later; Message says
	// why), "ignored" (outside the release's target) and "aborted" (rolled
	// back because the publisher aborted the rollout).
	Outcome  string `json:"outcome"`
	Version  string `json:"version,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
	Source   string `json:"source,omitempty"`
	Message  string `json:"message,omitempty"`
	// Trigger says what made the check run: "start", "schedule", "retry"
	// (sooner, after a failure), "asked" (patchmesh update, the dashboard's
	// button, the API) or "site" (a site member had verified a newer
	// release). Empty in an answer that only says "queued".
	Trigger string `json:"trigger,omitempty"`
}

// ReleaseInfo is one release the node knows.
type ReleaseInfo struct {
	Name      string    `json:"name"` // install folder name
	Version   string    `json:"version"`
	Sequence  uint64    `json:"sequence"`
	State     string    `json:"state"` // current, previous, kept, bad, refused
	Reason    string    `json:"reason,omitempty"`
	Installed time.Time `json:"installed,omitempty"`
	Activated time.Time `json:"activated,omitempty"`
	Files     int       `json:"files,omitempty"`
	Bytes     int64     `json:"bytes,omitempty"`
	// Bytes of this release's chunks by origin, when this node fetched it.
	FromWAN   int64 `json:"from_wan,omitempty"`
	FromLAN   int64 `json:"from_lan,omitempty"`
	FromLocal int64 `json:"from_local,omitempty"` // already in the store (earlier releases)
	// Rebuilt counts chunk bytes made from deltas against a release the node
	// held; the deltas' own bytes count in FromWAN, FromLAN or FromLocal.
	Rebuilt int64 `json:"rebuilt,omitempty"`
}

// Progress of the release being fetched or applied.
type Progress struct {
	Version     string    `json:"version"`
	Sequence    uint64    `json:"sequence"`
	Phase       string    `json:"phase"` // fetching, assembling, activating
	ChunksTotal int       `json:"chunks_total"`
	ChunksDone  int       `json:"chunks_done"`
	BytesTotal  int64     `json:"bytes_total"`
	BytesDone   int64     `json:"bytes_done"`
	Started     time.Time `json:"started"`
}

// Bytes counts chunk bytes this node received, by origin, since it started and per peer.
type Bytes struct {
	WAN    int64            `json:"wan"`     // from update sources (HTTP, FTP, folders)
	LAN    int64            `json:"lan"`     // from peers of the site
	Served int64            `json:"served"`  // sent to peers and repository clients
	ByPeer map[string]int64 `json:"by_peer"` // LAN bytes per peer name
	// SavingPercent is LAN / (WAN + LAN) * 100: the share of bytes that did not cross the WAN.
	SavingPercent float64       `json:"saving_percent"`
	History       []BytesSample `json:"history"` // cumulative WAN/LAN over time, one sample per 10s, at most 360
}

// BytesSample is one point of the bytes-over-time chart.
type BytesSample struct {
	Time time.Time `json:"t"`
	WAN  int64     `json:"wan"`
	LAN  int64     `json:"lan"`
}

// Peer is one member of the node's site.
type Peer struct {
	Name      string `json:"name"`
	PeerID    string `json:"peer_id"`
	Addr      string `json:"addr"`
	State     string `json:"state"` // alive, suspect, dead, left
	Role      string `json:"role,omitempty"`
	Holding   uint64 `json:"holding"` // sequence of the newest release it holds whole
	Running   uint64 `json:"running"` // sequence of the release it runs: below Holding after a rollback
	Self      bool   `json:"self"`
	BytesFrom int64  `json:"bytes_from"` // chunk bytes we received from it
	BytesTo   int64  `json:"bytes_to"`   // chunk bytes we sent to it
}

// Event is one error or refusal.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // refused, source, verify, store, apply, rollback, fetch
	Message string    `json:"message"`
}

// Counters are monotonic totals since the node started, for metrics.
type Counters struct {
	ChunksFetchedWAN    int64            `json:"chunks_fetched_wan"`
	ChunksFetchedLAN    int64            `json:"chunks_fetched_lan"`
	ChunksServed        int64            `json:"chunks_served"`
	VerifyFailures      int64            `json:"verify_failures"`
	Applies             int64            `json:"applies"`
	Rollbacks           int64            `json:"rollbacks"`
	Refusals            int64            `json:"refusals"`
	SourceFailures      int64            `json:"source_failures"`
	Checks              int64            `json:"checks"`
	CheckSecondsTotal   float64          `json:"check_seconds_total"`
	SourceFailuresByURL map[string]int64 `json:"source_failures_by_url,omitempty"`
	// VerifyFailuresByPeer counts, by member name, the chunks site peers sent
	// that did not match their CID; they count in VerifyFailures too.
	VerifyFailuresByPeer map[string]int64 `json:"verify_failures_by_peer,omitempty"`
}

// StoreInfo describes the chunk store.
type StoreInfo struct {
	Chunks     int64 `json:"chunks"`
	Bytes      int64 `json:"bytes"`
	QuotaBytes int64 `json:"quota_bytes,omitempty"`
	// DamagedChunks counts the stored chunks found damaged since the node
	// started, by a read or a scrub: each was dropped, never used or served,
	// and is fetched again when needed.
	DamagedChunks int64 `json:"damaged_chunks"`
	// What scrubs read since the node started: passes done, chunks and bytes.
	ScrubPasses int64        `json:"scrub_passes"`
	ScrubChunks int64        `json:"scrub_chunks"`
	ScrubBytes  int64        `json:"scrub_bytes"`
	LastScrub   *ScrubResult `json:"last_scrub,omitempty"` // the last pass finished
}

// ScrubResult is one check of every stored chunk (POST /api/scrub, or the
// background scrub).
type ScrubResult struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Chunks   int64     `json:"chunks"`  // read and checked
	Bytes    int64     `json:"bytes"`   // their size
	Damaged  int64     `json:"damaged"` // found damaged and dropped
	// DamagedCIDs lists the first 1000 damaged chunks.
	DamagedCIDs []string `json:"damaged_cids,omitempty"`
	// Refetched counts the damaged chunks a kept release needs that were
	// fetched again; Message says why any were not.
	Refetched int64  `json:"refetched"`
	Message   string `json:"message,omitempty"`
}

// RollbackResult is the answer of POST /api/rollback.
type RollbackResult struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// RetryResult is the answer to POST /api/releases/retry: the releases whose bad
// mark was cleared.
type RetryResult struct {
	Cleared []string `json:"cleared"`
}
