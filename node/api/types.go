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
	// Outcome: "up-to-date", "applied", "refused", "rolled-back", "failed", "skipped-bad".
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
	Running   uint64 `json:"running"` // sequence of the release it runs: below Holding after a rollback
	Self      bool   `json:"self"`
	BytesFrom int64  `json:"bytes_from"` // chunk bytes we received from it
	BytesTo   int64  `json:"bytes_to"`   // chunk bytes we sent to it
}

// Event is one error or refusal.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // refused, source, verify, apply, rollback, fetch
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
}

// StoreInfo describes the chunk store.
type StoreInfo struct {
	Chunks     int64 `json:"chunks"`
	Bytes      int64 `json:"bytes"`
	QuotaBytes int64 `json:"quota_bytes,omitempty"`
}

// RollbackResult is the answer of POST /api/rollback.
type RollbackResult struct {
	From string `json:"from"`
	To   string `json:"to"`
}
