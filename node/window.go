package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/window"
	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/rollout"
)

// windowState is a staged release waiting for a maintenance window, guarded
// by Node.mu.
type windowState struct {
	release uint64 // manifest sequence of the staged release that waits; 0: none
	version string
	stage   window.Set // the rollout stage's windows, besides the node's
	opensAt time.Time  // zero: no opening within a week
	// override is the release the operator said to apply now, whatever
	// the windows (apply-now); kept until that release is applied.
	override uint64
}

// windowWait reports whether release m, staged and cleared by its rollout
// (decision d, nil without one), must wait for a maintenance window: the
// node's and its rollout stage's must both be open. It records the wait for
// the status and the schedule.
func (f *follower) windowWait(m *manifest.Manifest, ro *manifest.Rollout, d *rollout.Decision) (bool, time.Time) {
	var stage window.Set
	if ro != nil && d != nil && d.Stage >= 0 && d.Stage < len(ro.Stages) {
		// Validated with the signed document: it parses.
		stage, _ = window.ParseSet(ro.Stages[d.Stage].Windows)
	}
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if window.Both(now, f.windows, stage) || f.st.window.override == m.Sequence {
		f.st.window = windowState{override: f.st.window.override, stage: stage}
		return false, time.Time{}
	}
	opens, _ := window.NextOpen(now, f.windows, stage)
	f.st.window = windowState{release: m.Sequence, version: m.Version, stage: stage, opensAt: opens, override: f.st.window.override}
	return true, opens
}

// clearWindowWait forgets a wait, e.g. once the head moved on or the
// release was applied; an override for an applied release is spent.
func (f *follower) clearWindowWait(applied uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ov := f.st.window.override
	if ov == applied {
		ov = 0
	}
	f.st.window = windowState{override: ov}
}

// windowWake returns when a release waiting for a window checks again (zero: none waits).
func (f *follower) windowWake() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.window.release == 0 {
		return time.Time{}
	}
	return f.st.window.opensAt
}

// windowMessage says why a staged release waits, for people.
func windowMessage(version string, opens time.Time) string {
	if opens.IsZero() {
		return fmt.Sprintf("%s staged; waiting for window (none opens within a week: the node's and the rollout stage's windows never overlap)", version)
	}
	return fmt.Sprintf("%s staged; waiting for window (opens at %s)", version, opens.Format("Mon 2006-01-02 15:04:05 MST"))
}

// windowStatus is the maintenance window part of the status; nil when
// neither the node nor the release's stage has windows. Called with n.mu held.
func (f *follower) windowStatusLocked(now time.Time) *api.WindowStatus {
	w := f.st.window
	if len(f.windows) == 0 && len(w.stage) == 0 {
		return nil
	}
	st := &api.WindowStatus{
		Windows: specs(f.windows), StageWindows: specs(w.stage),
		Open: window.Both(now, f.windows, w.stage), Waiting: w.release != 0,
		Release: w.release, Version: w.version, OpensAt: w.opensAt,
	}
	if !st.Open || st.Waiting {
		if opens, ok := window.NextOpen(now, f.windows, w.stage); ok && st.OpensAt.IsZero() {
			st.OpensAt = opens
		}
	}
	if st.Waiting {
		st.Reason = windowMessage(w.version, w.opensAt)
	}
	return st
}

func specs(s window.Set) []string {
	var out []string
	for _, w := range s {
		out = append(out, w.String())
	}
	return out
}

// ApplyNow implements api.Backend: the staged release that waits for a
// maintenance window is applied now, by a check (the rollout's stages and
// its site's halt still hold: an operator overrides the clock, not the
// site's health).
func (n *Node) ApplyNow(ctx context.Context, channel string, wait bool) (api.CheckResult, error) {
	f, err := n.follower(channel)
	if err != nil {
		return api.CheckResult{}, fmt.Errorf("apply now: %w", err)
	}
	n.mu.Lock()
	rel := f.st.window.release
	if rel != 0 {
		f.st.window.override = rel
	}
	n.mu.Unlock()
	if rel == 0 {
		return api.CheckResult{}, fmt.Errorf("apply now: %w", api.ErrNothingWaiting)
	}
	f.log.Info("apply now: the operator overrides the maintenance window", "sequence", rel)
	return n.sched.Ask(ctx, slices.Index(n.followers, f), wait)
}
