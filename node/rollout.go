package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/patchmesh/patchmesh/chunk/store"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/rollout"
	"github.com/patchmesh/patchmesh/node/source"
)

// Keys of the rollout state in the store's meta area.
const (
	metaRollout    = "rollout/"     // + channel: the newest verified rollout envelope
	metaRolloutSeq = "rollout-seq/" // + channel: highest rollout sequence verified (rollback protection)
)

// errNoRollout marks a head that requires a rollout no source could give.
var errNoRollout = errors.New("rollout required")

// rolloutState is what the node knows of the rollout of the release its head
// names, guarded by Node.mu.
type rolloutState struct {
	doc  *manifest.Rollout // nil: the release has none
	wake time.Time         // when a waiting node checks again
}

// fetchRollout returns the rollout of the release h names: nil when it has
// none (repositories without rollouts behave as before). A head that requires
// one and no valid one for its release is an error: the node then waits.
func (f *follower) fetchRollout(ctx context.Context, h *manifest.Head) (*manifest.Rollout, error) {
	highest, err := f.rolloutSeq()
	if err != nil {
		return nil, err
	}
	root := f.trustRoot()
	var found *manifest.Rollout
	var refusals []string
	env, _, err := f.list.ReadVerified(ctx, repo.RolloutPath(f.channel), manifest.MaxRolloutSize, func(s source.Source, env []byte) error {
		r, err := root.VerifyRollout(env, time.Now())
		if err == nil && r.Channel != f.channel {
			err = fmt.Errorf("rollout names channel %q: %w", r.Channel, manifest.ErrMalformed)
		}
		if err == nil {
			err = manifest.CheckNewer(highest, r.Sequence)
		}
		if err != nil {
			msg := fmt.Sprintf("rollout of %s from %s: %v", f.channel, s, err)
			refusals = append(refusals, msg)
			f.refuse(errors.New(msg))
			return err
		}
		found = r
		return nil
	})
	if err == nil && found.Sequence > highest {
		// Saved before it is obeyed, so no older document is obeyed after a restart.
		if err := f.store.SetMeta(metaRollout+f.channel, env); err != nil {
			return nil, fmt.Errorf("save rollout: %w", err)
		}
		if err := f.store.SetMeta(metaRolloutSeq+f.channel, []byte(strconv.FormatUint(found.Sequence, 10))); err != nil {
			return nil, fmt.Errorf("save rollout sequence: %w", err)
		}
	}
	if err != nil || found == nil {
		// The newest we verified before still holds while the sources cannot
		// give one (down, or every one stale).
		found = f.storedRollout()
	}
	if found != nil && found.Release == h.Sequence {
		return found, nil
	}
	if h.Rollout {
		why := "no source has it"
		if len(refusals) > 0 {
			why = refusals[len(refusals)-1]
		} else if found != nil {
			why = fmt.Sprintf("the newest one names release %d", found.Release)
		}
		return nil, fmt.Errorf("%w: release %s (sequence %d) is staged, but its rollout document is missing (%s); waiting for it", errNoRollout, h.Version, h.Sequence, why)
	}
	return nil, nil
}

// storedRollout returns the newest rollout verified before, if still valid.
func (f *follower) storedRollout() *manifest.Rollout {
	env, err := f.store.GetMeta(metaRollout + f.channel)
	if err != nil {
		return nil
	}
	r, err := f.trustRoot().VerifyRollout(env, time.Now())
	if err != nil {
		return nil
	}
	return r
}

func (f *follower) rolloutSeq() (uint64, error) {
	b, err := f.store.GetMeta(metaRolloutSeq + f.channel)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read rollout sequence: %w", err)
	}
	return strconv.ParseUint(string(b), 10, 64)
}

// decide is the rollout's verdict for this node now, from its site's gossip.
func (f *follower) decide(r *manifest.Rollout) rollout.Decision {
	cur := f.currentRecord()
	self := rollout.Self{Name: f.identity(), Tags: f.cfg.Tags, Running: cur != nil && cur.Sequence == r.Release}
	return rollout.Decide(r, self, f.siteOutcomes(), time.Now())
}

// identity names this node in bucket hashes: its member name, which is unique
// in its site.
func (n *Node) identity() string {
	if n.mesh != nil {
		return n.mesh.Name()
	}
	return n.cfg.Name
}

// siteOutcomes lists the site's members with what they gossip, and this
// node's own outcome, which its own gossip may not have echoed yet. Members
// gossip their first channel's outcome only, so another channel's rollout
// sees the members (for buckets and canaries) but no outcome of theirs: its
// site halts only on this node's own failure.
func (f *follower) siteOutcomes() []rollout.Member {
	self := rollout.Member{Name: f.identity(), Alive: true}
	f.mu.Lock()
	self.Outcome = f.st.outcome
	f.mu.Unlock()
	out := []rollout.Member{self}
	if f.mesh == nil {
		return out
	}
	for _, m := range f.mesh.Members() {
		if m.Self {
			continue
		}
		var o rollout.Outcome
		if f.first {
			o, _ = rollout.DecodeOutcome(m.Status)
		}
		out = append(out, rollout.Member{Name: m.Name, Alive: m.State == "alive", Outcome: o})
	}
	return out
}

// setOutcome gossips this node's result with a release in its site.
func (f *follower) setOutcome(o rollout.Outcome) {
	f.mu.Lock()
	same := f.st.outcome == o
	f.st.outcome = o
	f.mu.Unlock()
	if same || f.mesh == nil || !f.first {
		return // members gossip their first channel's outcome only
	}
	var b []byte
	if o.State != "" {
		b = o.Encode()
	}
	if err := f.mesh.SetStatus(b); err != nil {
		f.log.Warn("gossip outcome", "err", err)
	}
}

// noteOutcome gossips what the installer says of release name (sequence seq):
// running it, or rolled back from it and why; nothing for an aborted rollout.
func (f *follower) noteOutcome(seq uint64, name string, r *manifest.Rollout) {
	if r != nil && r.State == manifest.RolloutAborted {
		f.setOutcome(rollout.Outcome{}) // rolled back on the publisher's word, not failed
		return
	}
	if bad, why := f.inst.IsBad(name); bad {
		f.setOutcome(rollout.Outcome{Release: seq, State: rollout.Failed, Reason: why})
		return
	}
	if f.inst.Current() == name {
		f.setOutcome(rollout.Outcome{Release: seq, State: rollout.Applied})
	}
}

// setRollout records the rollout the last check found, and when to check
// again if the node waits on it.
func (f *follower) setRollout(r *manifest.Rollout, wake time.Time) {
	f.mu.Lock()
	f.st.rollout = rolloutState{doc: r, wake: wake}
	f.mu.Unlock()
}

// rolloutWake returns when a node waiting on a rollout checks again (zero: not waiting).
func (f *follower) rolloutWake() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.rollout.wake
}

// waitUntil is when a node told to wait by d checks again: at its stage's
// opening, and at least every RolloutPoll for the publisher's and the site's news.
func (f *follower) waitUntil(d rollout.Decision) time.Time {
	poll := time.Now().Add(time.Duration(f.cfg.RolloutPoll))
	if !d.OpensAt.IsZero() && d.OpensAt.After(time.Now()) && d.OpensAt.Before(poll) {
		return d.OpensAt
	}
	return poll
}

// rolloutStatus is the rollout part of the status, decided afresh so that a
// halt shows as soon as the site's gossip carries it.
func (f *follower) rolloutStatus() *api.RolloutStatus {
	f.mu.Lock()
	r := f.st.rollout.doc
	f.mu.Unlock()
	if r == nil {
		return nil
	}
	d := f.decide(r)
	st := &api.RolloutStatus{
		Channel: r.Channel, Version: r.Version, Release: r.Release, Sequence: r.Sequence, State: r.State,
		Stages: len(r.Stages), Stage: d.Stage, StageName: d.StageName, Bucket: d.Bucket, Canary: d.Canary,
		OpensAt: d.OpensAt, Action: d.Action, Reason: d.Reason, Tags: f.cfg.Tags, TargetTags: r.TargetTags,
		Halted: d.Halted, HaltReason: d.HaltReason, SiteApplied: d.Applied, SiteFailed: d.Failed,
	}
	for _, f := range d.Failing {
		st.Failing = append(st.Failing, api.RolloutFailure{Name: f.Name, Reason: f.Reason})
	}
	return st
}

// abortRollback rolls this node back from the release of an aborted rollout
// to the release it ran before; the aborted one is marked bad, so it is not
// applied again.
func (f *follower) abortRollback(ctx context.Context, r *manifest.Rollout, res api.CheckResult) api.CheckResult {
	reason := fmt.Sprintf("rollout of %s aborted by the publisher (rollout sequence %d)", r.Version, r.Sequence)
	if r.Note != "" {
		reason += ": " + r.Note
	}
	out, err := f.rollback(ctx, reason)
	if err != nil {
		res.Outcome, res.Message = "failed", fmt.Sprintf("abort %s: roll back: %v", r.Version, err)
		f.event("rollback", res.Message)
		return res
	}
	// An abort is the publisher's call, not a failure of this node's install:
	// it does not count toward halting the site.
	f.setOutcome(rollout.Outcome{})
	res.Outcome, res.Message = "aborted", fmt.Sprintf("rolled back from %s to %s: %s", out.From, out.To, reason)
	return res
}
