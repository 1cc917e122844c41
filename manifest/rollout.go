package manifest

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/patchmesh/patchmesh/manifest/window"
)

// TypeRollout is the envelope type of a rollout document.
const TypeRollout = "patchmesh/rollout/v1"

// MaxRolloutSize caps a rollout envelope file, checked before parsing.
const MaxRolloutSize = 64 << 10

// Rollout bounds.
const (
	MaxStages    = 16
	MaxTags      = 32
	MaxWindows   = 16
	maxTagLen    = 64
	maxStageName = 64
	maxNoteLen   = 256
)

// Rollout states a publisher sets.
const (
	RolloutRunning = "running"
	RolloutPaused  = "paused"
	RolloutAborted = "aborted"
)

// Rollout is a channel's signed, sequenced staged rollout of one release
// (channels/<channel>/rollout.json). Nodes obey the one with the highest
// Sequence they have verified; the publisher's commands (pause, resume,
// promote, abort) each write a new one. It governs only the release whose
// manifest sequence is Release: a release without one applies everywhere at
// once, unless its head says a rollout is required (Head.Rollout).
type Rollout struct {
	Channel  string `json:"channel"`
	Sequence uint64 `json:"sequence"` // of this document; newest wins
	Release  uint64 `json:"release"`  // manifest sequence it governs
	Version  string `json:"version"`
	// Started is when stage 0 opened (the release was published).
	Started time.Time `json:"started"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
	Stages  []Stage   `json:"stages"`
	// TargetTags, when set, limits the release to nodes that carry at least
	// one of them; the others ignore it.
	TargetTags []string `json:"target_tags,omitempty"`
	Halt       Halt     `json:"halt"`
	// State is running, paused (no stage opens and no node applies) or
	// aborted (nodes that applied the release roll back, others never apply).
	State string `json:"state"`
	// Opened and OpenedAt move the schedule: stages up to Opened are open
	// since OpenedAt, later ones follow by their soaks (promote, resume).
	// Zero: stage 0 opened at Started.
	Opened   int       `json:"opened,omitempty"`
	OpenedAt time.Time `json:"opened_at,omitzero"`
	// PausedAt is when a pause began, so resume can shift the schedule by it.
	PausedAt time.Time `json:"paused_at,omitzero"`
	Note     string    `json:"note,omitempty"` // why the last change, for people
}

// Stage is one step of a rollout: the nodes whose bucket is below Percent
// (cumulative, 0-100), or that carry one of Tags, apply once it opens and
// once the stage before it has soaked for Soak.
type Stage struct {
	Name    string   `json:"name,omitempty"`
	Percent float64  `json:"percent"`
	Tags    []string `json:"tags,omitempty"`
	Soak    Duration `json:"soak"`
	// Windows, when set, are the maintenance windows in which the stage's
	// nodes apply, each in its own local time ("Mon-Fri 22:00-05:00",
	// package manifest/window); a node's own windows hold too.
	Windows []string `json:"windows,omitempty"`
}

// Halt is when a site stops a rollout on its own: once at least MinInstalls
// of its members tried the release and the share that failed reaches
// MaxFailureRatio (0: any failure).
type Halt struct {
	MinInstalls     int     `json:"min_installs"`
	MaxFailureRatio float64 `json:"max_failure_ratio"`
}

// Duration is a time.Duration written as Go duration text ("90s", "2h").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want text like \"90s\": %w", ErrMalformed)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want a non-negative Go duration: %w", s, ErrMalformed)
	}
	*d = Duration(v)
	return nil
}

// Validate checks the rollout's names, numbers and times.
func (r *Rollout) Validate() error {
	if err := CheckChannel(r.Channel); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	if err := CheckVersion(r.Version); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	if r.Sequence == 0 || r.Release == 0 {
		return fmt.Errorf("rollout of %s: sequence and release must be above 0: %w", r.Channel, ErrMalformed)
	}
	if r.Started.IsZero() || r.Issued.IsZero() || !r.Expires.After(r.Issued) {
		return fmt.Errorf("rollout of %s: started, issued and expires are required, expires after issued: %w", r.Channel, ErrMalformed)
	}
	if len(r.Stages) == 0 || len(r.Stages) > MaxStages {
		return fmt.Errorf("rollout of %s: %d stages, want 1 to %d: %w", r.Channel, len(r.Stages), MaxStages, ErrMalformed)
	}
	prev := 0.0
	for i, s := range r.Stages {
		if len(s.Name) > maxStageName {
			return fmt.Errorf("rollout of %s: stage %d: name longer than %d bytes: %w", r.Channel, i, maxStageName, ErrMalformed)
		}
		if math.IsNaN(s.Percent) || s.Percent < 0 || s.Percent > 100 || (s.Percent > 0 && s.Percent < prev) {
			return fmt.Errorf("rollout of %s: stage %d: percent %v must be 0 (tags only) or 0-100 and not below an earlier stage's: %w", r.Channel, i, s.Percent, ErrMalformed)
		}
		if s.Percent > 0 {
			prev = s.Percent
		}
		if s.Percent == 0 && len(s.Tags) == 0 {
			return fmt.Errorf("rollout of %s: stage %d has neither percent nor tags: %w", r.Channel, i, ErrMalformed)
		}
		if err := checkTags(s.Tags); err != nil {
			return fmt.Errorf("rollout of %s: stage %d: %w", r.Channel, i, err)
		}
		if len(s.Windows) > MaxWindows {
			return fmt.Errorf("rollout of %s: stage %d: %d windows, at most %d: %w", r.Channel, i, len(s.Windows), MaxWindows, ErrMalformed)
		}
		if _, err := window.ParseSet(s.Windows); err != nil {
			return fmt.Errorf("rollout of %s: stage %d: %w: %w", r.Channel, i, err, ErrMalformed)
		}
		if s.Soak < 0 {
			return fmt.Errorf("rollout of %s: stage %d: negative soak: %w", r.Channel, i, ErrMalformed)
		}
	}
	if err := checkTags(r.TargetTags); err != nil {
		return fmt.Errorf("rollout of %s: target: %w", r.Channel, err)
	}
	if r.Halt.MinInstalls < 0 || math.IsNaN(r.Halt.MaxFailureRatio) || r.Halt.MaxFailureRatio < 0 || r.Halt.MaxFailureRatio > 1 {
		return fmt.Errorf("rollout of %s: halt: min_installs must be 0 or more and max_failure_ratio 0-1: %w", r.Channel, ErrMalformed)
	}
	switch r.State {
	case RolloutRunning, RolloutPaused, RolloutAborted:
	default:
		return fmt.Errorf("rollout of %s: state %q: want running, paused or aborted: %w", r.Channel, r.State, ErrMalformed)
	}
	if r.Opened < 0 || r.Opened >= len(r.Stages) {
		return fmt.Errorf("rollout of %s: opened stage %d outside 0-%d: %w", r.Channel, r.Opened, len(r.Stages)-1, ErrMalformed)
	}
	if r.Opened > 0 && r.OpenedAt.IsZero() {
		return fmt.Errorf("rollout of %s: opened stage %d without opened_at: %w", r.Channel, r.Opened, ErrMalformed)
	}
	if len(r.Note) > maxNoteLen {
		return fmt.Errorf("rollout of %s: note longer than %d bytes: %w", r.Channel, maxNoteLen, ErrMalformed)
	}
	return nil
}

// CheckTag checks a node or target tag: 1-64 of letters, digits, '.', '_', '-'.
func CheckTag(t string) error {
	if t == "" || len(t) > maxTagLen || !allowed(t, "._-") {
		return fmt.Errorf("tag %q: want 1 to %d of letters, digits, '.', '_', '-': %w", t, maxTagLen, ErrMalformed)
	}
	return nil
}

func checkTags(tags []string) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%d tags, at most %d: %w", len(tags), MaxTags, ErrMalformed)
	}
	for _, t := range tags {
		if err := CheckTag(t); err != nil {
			return err
		}
	}
	return nil
}

// Marshal validates r and returns its compact JSON: the payload to sign.
func (r *Rollout) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("marshal rollout: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("marshal rollout of %s: %w", r.Channel, err)
	}
	return b, nil
}

// StageOpens returns when stage i opens: stages up to the anchor (Opened,
// else 0) opened at the anchor's time (OpenedAt, else Started); each later
// one opens when the one before has soaked.
func (r *Rollout) StageOpens(i int) time.Time {
	at := r.Started
	if !r.OpenedAt.IsZero() {
		at = r.OpenedAt
	}
	for j := r.Opened; j < i && j < len(r.Stages); j++ {
		at = at.Add(time.Duration(r.Stages[j].Soak))
	}
	return at
}

// OpenStage returns the last stage open at t (-1 if none: t is before Started).
func (r *Rollout) OpenStage(t time.Time) int {
	open := -1
	for i := range r.Stages {
		if !t.Before(r.StageOpens(i)) {
			open = i
		}
	}
	return open
}

// Pause returns the next document with the rollout paused at now.
func (r Rollout) Pause(now time.Time) Rollout {
	r.State, r.PausedAt = RolloutPaused, now
	return r
}

// Resume returns the next document with the rollout running again; the
// schedule moves by the time it was paused, so no stage soaks less.
func (r Rollout) Resume(now time.Time) Rollout {
	if r.State == RolloutPaused && !r.PausedAt.IsZero() {
		k := max(r.OpenStage(r.PausedAt), 0)
		r.OpenedAt = now.Add(-r.PausedAt.Sub(r.StageOpens(k)))
		r.Opened = k
	}
	r.State, r.PausedAt = RolloutRunning, time.Time{}
	return r
}

// Promote returns the next document with the stage after the one open at now
// opened now. It fails when the last stage is already open.
func (r Rollout) Promote(now time.Time) (Rollout, error) {
	k := r.OpenStage(now)
	if r.State == RolloutPaused && !r.PausedAt.IsZero() {
		k = r.OpenStage(r.PausedAt)
	}
	if k+1 >= len(r.Stages) {
		return r, fmt.Errorf("promote rollout of %s %s: the last stage is already open", r.Channel, r.Version)
	}
	r.Opened, r.OpenedAt = k+1, now
	if r.State == RolloutPaused {
		r.PausedAt = now
	}
	return r, nil
}

// Abort returns the next document with the rollout aborted.
func (r Rollout) Abort() Rollout {
	r.State = RolloutAborted
	return r
}

// VerifyRollout verifies a rollout envelope against r at time now: type, size
// cap, signatures and threshold, strict decoding, validity and expiry.
func (r *TrustRoot) VerifyRollout(envelope []byte, now time.Time) (*Rollout, error) {
	payload, err := r.open(envelope, TypeRollout, MaxRolloutSize, now)
	if err != nil {
		return nil, fmt.Errorf("verify rollout: %w", err)
	}
	var ro Rollout
	if err := decodeStrict(payload, &ro); err != nil {
		return nil, fmt.Errorf("verify rollout: %w", err)
	}
	if err := ro.Validate(); err != nil {
		return nil, fmt.Errorf("verify rollout: %w", err)
	}
	if !now.Before(ro.Expires) {
		return nil, fmt.Errorf("verify rollout: rollout of %s %s (sequence %d) expired at %s, it is now %s: check this machine's clock, or ask the publisher to re-sign it (patchmesh rollout resume): %w",
			ro.Channel, ro.Version, ro.Sequence, ro.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), ErrExpired)
	}
	return &ro, nil
}
