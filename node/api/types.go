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
	// Rollback switches back to the previous release and marks the current one bad.
	Rollback(ctx context.Context, reason string) (RollbackResult, error)
	// Scrub checks every stored chunk now, drops the damaged ones and fetches
	// again those a kept release needs. It returns once that is done.
	Scrub(ctx context.Context) (ScrubResult, error)
	// Retry clears the bad mark of the release of version, so that the next
	// check applies it again. It wraps ErrNotBad when no such release is bad.
	Retry(ctx context.Context, version string) (RetryResult, error)
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
	// Rollout is the staged rollout of the release the channel's head names;
	// absent when it has none (it applies everywhere at once).
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// Site is the view of the node's whole site, from gossip; absent
	// without a mesh.
	Site *SiteView `json:"site,omitempty"`
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
