// Package rollout decides, from a verified rollout document, this node's
// identity and tags, and what its site gossips, whether the node applies a
// staged release now, later or never, and whether its site has halted it.
package rollout

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

// Outcome states a member gossips for the release it last tried.
const (
	Applied = "applied"
	Failed  = "failed" // rolled back: the health check or pre-activate hook failed
	// Ignored: outside the release's target. Such a member is no canary, so
	// the site picks its canary among the members the release is for.
	Ignored = "ignored"
)

// Outcome is a member's result with one release, as its site sees it.
type Outcome struct {
	Release uint64 `json:"release"`
	State   string `json:"state"` // Applied, Failed or Ignored
	Reason  string `json:"reason,omitempty"`
}

// Member is one node of the site and its outcome.
type Member struct {
	Name    string
	Alive   bool
	Outcome Outcome // zero: nothing tried
}

// Self is this node as the decision needs it.
type Self struct {
	Name    string
	Tags    []string
	Running bool // the release is this node's current one
}

// Actions a Decision asks for.
const (
	Apply    = "apply"    // apply the release now
	Wait     = "wait"     // download it, apply later (see Reason, OpensAt)
	Ignore   = "ignore"   // outside the target: neither download nor apply
	Rollback = "rollback" // the rollout was aborted and this node runs the release
	Done     = "done"     // runs the release
)

// Failure is a member whose apply failed.
type Failure struct {
	Name   string `json:"name"`
	Reason string `json:"reason,omitempty"`
}

// Decision is what this node does with the release now, and why.
type Decision struct {
	Action    string
	Reason    string
	Stage     int // -1: in no stage
	StageName string
	Bucket    float64
	Canary    bool      // the site's canary: stage 0 whatever its bucket
	OpensAt   time.Time // when this node's stage opens
	// Site health for the release.
	Halted     bool
	HaltReason string
	Failing    []Failure
	Applied    int
	Failed     int
}

// Bucket places a node in [0, 100) for a release: a hash of its identity and
// the release, so every run agrees and a node is early for some releases and
// late for others.
func Bucket(identity string, release uint64) float64 {
	h := sha256.New()
	h.Write([]byte("patchmesh-rollout-v1\x00"))
	h.Write([]byte(identity))
	h.Write(binary.BigEndian.AppendUint64([]byte{0}, release))
	sum := h.Sum(nil)
	return float64(binary.BigEndian.Uint64(sum[:8])%10000) / 100
}

// Decide returns what self does with r's release at now, given the site's
// members (self among them or not; a node without a site passes none).
func Decide(r *manifest.Rollout, self Self, site []Member, now time.Time) Decision {
	d := Decision{Stage: -1, Bucket: Bucket(self.Name, r.Release)}
	d.Halted, d.HaltReason, d.Failing, d.Applied, d.Failed = health(r, site)

	if len(r.TargetTags) > 0 && !overlap(self.Tags, r.TargetTags) {
		d.Action = Ignore
		d.Reason = fmt.Sprintf("release %s targets tags %s; this node carries %s", r.Version, list(r.TargetTags), list(self.Tags))
		if self.Running {
			d.Action, d.Reason = Done, "runs "+r.Version
		}
		return d
	}
	d.Canary = isCanary(self.Name, r.Release, site)
	for i, s := range r.Stages {
		if overlap(self.Tags, s.Tags) || (s.Percent > 0 && d.Bucket < s.Percent) {
			d.Stage = i
			break
		}
	}
	if d.Canary {
		d.Stage = 0
	}
	if d.Stage >= 0 {
		d.StageName = stageName(r, d.Stage)
		d.OpensAt = r.StageOpens(d.Stage)
	}
	switch {
	case r.State == manifest.RolloutAborted && self.Running:
		d.Action, d.Reason = Rollback, fmt.Sprintf("rollout of %s aborted by the publisher", r.Version)
	case r.State == manifest.RolloutAborted:
		d.Action, d.Reason = Wait, fmt.Sprintf("rollout of %s aborted by the publisher; it will not be applied", r.Version)
	case self.Running:
		d.Action, d.Reason = Done, "runs "+r.Version
	case d.Stage < 0:
		d.Action = Ignore
		d.Reason = fmt.Sprintf("release %s: in no stage (bucket %.2f, tags %s)", r.Version, d.Bucket, list(self.Tags))
	case d.Halted:
		d.Action, d.Reason = Wait, "site halted the rollout: "+d.HaltReason
	case r.State == manifest.RolloutPaused:
		d.Action, d.Reason = Wait, fmt.Sprintf("rollout of %s paused by the publisher", r.Version)
	case now.Before(d.OpensAt):
		d.Action = Wait
		d.Reason = fmt.Sprintf("stage %s opens at %s", d.StageName, d.OpensAt.UTC().Format(time.RFC3339))
	default:
		d.Action, d.Reason = Apply, fmt.Sprintf("stage %s is open", d.StageName)
	}
	return d
}

// health counts the site's outcomes for the release and applies the halt rule.
func health(r *manifest.Rollout, site []Member) (halted bool, why string, failing []Failure, applied, failed int) {
	for _, m := range site {
		if m.Outcome.Release != r.Release {
			continue
		}
		switch m.Outcome.State {
		case Applied:
			applied++
		case Failed:
			failed++
			failing = append(failing, Failure{Name: m.Name, Reason: m.Outcome.Reason})
		}
	}
	tried := applied + failed
	if failed == 0 || tried < max(r.Halt.MinInstalls, 1) || float64(failed)/float64(tried) < r.Halt.MaxFailureRatio {
		return false, "", failing, applied, failed
	}
	names := make([]string, len(failing))
	for i, f := range failing {
		names[i] = f.Name
	}
	rule := "any failure halts"
	if r.Halt.MaxFailureRatio > 0 {
		rule = fmt.Sprintf("%.0f%% halts", 100*r.Halt.MaxFailureRatio)
	}
	why = fmt.Sprintf("%d of %d installs of %s failed (%s after %d): %s",
		failed, tried, r.Version, rule, max(r.Halt.MinInstalls, 1), strings.Join(names, ", "))
	return true, why, failing, applied, failed
}

// isCanary reports whether name has the lowest bucket among the live members
// of its site the release is for (ties by name): every site has one, and all
// agree which once their gossip has settled.
func isCanary(name string, release uint64, site []Member) bool {
	mine := Bucket(name, release)
	for _, m := range site {
		if !m.Alive || m.Name == name || (m.Outcome.Release == release && m.Outcome.State == Ignored) {
			continue
		}
		b := Bucket(m.Name, release)
		if b < mine || (b == mine && m.Name < name) {
			return false
		}
	}
	return true
}

func stageName(r *manifest.Rollout, i int) string {
	if n := r.Stages[i].Name; n != "" {
		return n
	}
	return strconv.Itoa(i)
}

func overlap(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func list(tags []string) string {
	if len(tags) == 0 {
		return "none"
	}
	return strings.Join(tags, ", ")
}

// outcomeVersion is the first byte of an encoded Outcome.
const outcomeVersion = 1

// maxReason bounds a gossiped reason: member metadata is small.
const maxReason = 120

// Encode returns o as the few bytes a node gossips in its site, the reason
// cut to fit.
func (o Outcome) Encode() []byte {
	b := binary.AppendUvarint([]byte{outcomeVersion}, o.Release)
	var st byte
	switch o.State {
	case Applied:
		st = 1
	case Failed:
		st = 2
	case Ignored:
		st = 3
	}
	b = append(b, st)
	r := o.Reason
	if len(r) > maxReason {
		// Its end says why (a hook's last line of output), its start what.
		r = strings.ToValidUTF8(r[:maxReason/3], "") + "…" + strings.ToValidUTF8(r[len(r)-(maxReason-maxReason/3-len("…")):], "")
	}
	return append(b, r...)
}

// DecodeOutcome reads what Encode wrote; anything else is no outcome.
func DecodeOutcome(b []byte) (Outcome, bool) {
	if len(b) < 3 || b[0] != outcomeVersion {
		return Outcome{}, false
	}
	rel, n := binary.Uvarint(b[1:])
	if n <= 0 || len(b) < 1+n+1 {
		return Outcome{}, false
	}
	o := Outcome{Release: rel, Reason: string(b[1+n+1:])}
	switch b[1+n] {
	case 1:
		o.State = Applied
	case 2:
		o.State = Failed
	case 3:
		o.State = Ignored
	default:
		return Outcome{}, false
	}
	if len(o.Reason) > maxReason {
		o.Reason = o.Reason[:maxReason]
	}
	return o, true
}
