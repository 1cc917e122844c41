package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// ActivateOptions carries what the caller adds to the configured hooks for one apply.
type ActivateOptions struct {
	// Env is appended to every hook's environment (after the PATCHMESH_ variables, so
	// it may override them), e.g. PATCHMESH_VERSION=1.4.2.
	Env []string
	// PreActivate and HealthCheck are argv run after the configured hook of the same
	// kind, typically the release's own hooks; a relative path containing a slash is
	// resolved against the release directory. Empty: none.
	PreActivate, HealthCheck []string
	// Force activates a release even when it is marked bad, clearing the mark once its
	// health check passes.
	Force bool
}

// pending is the content of pending.json: what to switch back to if the process stops
// before the health check confirms the release.
type pending struct {
	Release          string    `json:"release"`
	Previous         string    `json:"previous"`
	PreviousPrevious string    `json:"previous_previous"`
	Started          time.Time `json:"started"`
}

// Activate makes an installed release current: pre-activate hooks in the release
// directory (failure: `current` never moves, the release is marked bad), the atomic
// switch guarded by pending.json, then health checks (failure or timeout: both links
// switch back, the release is marked bad). A hook failure is returned as a *HookError.
// A release is not marked bad when ctx ends during a hook (the switch is still undone)
// or when a configured hook cannot be started. Activating the current release does nothing.
func (in *Installer) Activate(ctx context.Context, name string, opts ActivateOptions) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("activate release: %w", err)
	}
	in.applyMu.Lock()
	defer in.applyMu.Unlock()
	if _, err := in.recoverLocked(); err != nil {
		return fmt.Errorf("activate release %s: %w", name, err)
	}
	if !in.installed(name) {
		return fmt.Errorf("activate release %s: %w", name, ErrNotInstalled)
	}
	in.mu.Lock()
	cur, prev := in.current, in.previous
	in.mu.Unlock()
	if bad, why := in.IsBad(name); bad && !opts.Force {
		return fmt.Errorf("activate release %s: %w (%s); activate with force to try it again", name, ErrBad, lastLine(why))
	}
	if name == cur {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("activate release %s: %w", name, err)
	}

	dir := in.Dir(name)
	env := in.hookEnv(name, cur, opts.Env)
	for i, argv := range [][]string{in.cfg.PreActivate, opts.PreActivate} {
		if len(argv) == 0 {
			continue
		}
		if he := in.runHook(ctx, HookPreActivate, argv, dir, env); he != nil {
			if blame(ctx, he, i == 0) {
				in.markBad(name, he.reason())
			}
			in.log.Warn("pre-activate hook failed, release not activated", "release", name, "err", he)
			return he
		}
	}

	p := pending{Release: name, Previous: cur, PreviousPrevious: prev, Started: time.Now().UTC()}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("activate release %s: %w", name, err)
	}
	if err := writeFileAtomic(in.root, pendingFile, b); err != nil {
		return fmt.Errorf("activate release %s: write marker: %w", name, err)
	}
	if err := in.switchTo(name, cur); err != nil {
		// Put back what we can; pending.json stays if this fails too, for Recover.
		if rerr := in.restore(p, ""); rerr != nil {
			in.log.Error("cannot undo a failed switch", "release", name, "err", rerr)
		}
		return fmt.Errorf("activate release %s: %w", name, err)
	}
	in.log.Info("switched release, running health check", "release", name, "previous", cur)

	for i, argv := range [][]string{in.cfg.HealthCheck, opts.HealthCheck} {
		if len(argv) == 0 {
			continue
		}
		if he := in.runHook(ctx, HookHealthCheck, argv, dir, env); he != nil {
			reason := ""
			if blame(ctx, he, i == 0) {
				reason = he.reason()
			}
			if err := in.restore(p, reason); err != nil {
				return fmt.Errorf("activate release %s: roll back after %v: %w", name, he, err)
			}
			in.log.Warn("health check failed, rolled back", "release", name, "to", cur, "err", he)
			return he
		}
	}

	// Confirm: the marker goes first; if we stop before state.json is saved, Open
	// reads the roles from the links anyway.
	if err := removeFileSynced(in.root, pendingFile); err != nil {
		return fmt.Errorf("activate release %s: remove marker: %w", name, err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	r := in.st.add(name, time.Now())
	r.Activated = time.Now().UTC()
	r.Interrupted, r.InterruptedAt = 0, time.Time{}
	if r.State == StateBad {
		r.State, r.Reason = StateKept, "" // forced and healthy
	}
	in.st.setRoles(in.current, in.previous)
	if err := in.saveLocked(); err != nil {
		return fmt.Errorf("activate release %s: %w", name, err)
	}
	in.log.Info("activated release", "release", name, "previous", cur)
	return nil
}

// blame reports whether a hook failure is the release's fault, so that it is marked bad:
// not when our own ctx ended (a shutdown), nor when a configured hook could not even
// start (a node misconfiguration would otherwise condemn every release).
func blame(ctx context.Context, he *HookError, fromConfig bool) bool {
	return ctx.Err() == nil && (he.started || !fromConfig)
}

// switchTo points `previous` at prev and then `current` at name.
func (in *Installer) switchTo(name, prev string) error {
	if err := in.pointLink(linkPrev, prev); err != nil {
		return err
	}
	if err := in.pointLink(linkCurrent, name); err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.current, in.previous = name, prev
	in.st.setRoles(in.current, in.previous)
	if err := in.saveLocked(); err != nil {
		in.log.Warn("cannot save state after switch", "release", name, "err", err)
	}
	return nil
}

// restore undoes the switch recorded in p: `current` back first (the running release
// matters most), then `previous`, then the state with p.Release marked bad when
// reason is not empty, and last the marker, so a crash anywhere repeats the restore.
func (in *Installer) restore(p pending, reason string) error {
	if err := in.pointLink(linkCurrent, p.Previous); err != nil {
		return err
	}
	pp := p.PreviousPrevious
	if pp == p.Previous || (pp != "" && !in.installed(pp)) {
		pp = ""
	}
	if err := in.pointLink(linkPrev, pp); err != nil {
		return err
	}
	in.mu.Lock()
	in.current, in.previous = p.Previous, pp
	if reason != "" {
		in.st.markBad(p.Release, reason)
	}
	in.st.setRoles(in.current, in.previous)
	err := in.saveLocked()
	in.mu.Unlock()
	if err != nil {
		return err
	}
	return removeFileSynced(in.root, pendingFile)
}

func (in *Installer) markBad(name, reason string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.st.markBad(name, reason)
	if err := in.saveLocked(); err != nil {
		in.log.Error("cannot record bad release", "release", name, "err", err)
	}
}

// Recover finishes what a crash interrupted: if pending.json exists, the process stopped
// between a switch and its confirmation, so `current` and `previous` are switched back to
// what they were. The crash may not be the release's fault, so the release stays good
// to be tried again; after more than [MaxInterrupted] such crashes in a row it is
// marked bad with [ReasonInterrupted]. It
// returns the release it rolled back, "" when there was nothing to do. Call it once after
// Open, before serving the current release; Activate and Rollback also call it.
func (in *Installer) Recover(ctx context.Context) (rolledBack string, err error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("recover %s: %w", in.root, err)
	}
	in.applyMu.Lock()
	defer in.applyMu.Unlock()
	return in.recoverLocked()
}

func (in *Installer) recoverLocked() (string, error) {
	b, err := readBounded(filepath.Join(in.root, pendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("recover %s: %w", in.root, err)
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		return "", fmt.Errorf("recover %s: read %s: %w", in.root, pendingFile, err)
	}
	if validName(p.Release) != nil {
		return "", fmt.Errorf("recover %s: %s names %w %q", in.root, pendingFile, ErrInvalidName, p.Release)
	}
	if p.Previous != "" && (validName(p.Previous) != nil || !in.installed(p.Previous)) {
		return "", fmt.Errorf("recover %s: previous release %q: %w", in.root, p.Previous, ErrNotInstalled)
	}
	in.mu.Lock()
	r := in.st.add(p.Release, time.Now())
	if !r.InterruptedAt.Equal(p.Started) {
		r.Interrupted++
		r.InterruptedAt = p.Started
	}
	times := r.Interrupted
	in.mu.Unlock()
	reason := ""
	if times > MaxInterrupted {
		reason = fmt.Sprintf("%s, %d times in a row", ReasonInterrupted, times)
	}
	if err := in.restore(p, reason); err != nil {
		return "", fmt.Errorf("recover %s: %w", in.root, err)
	}
	in.log.Warn("rolled back an activation interrupted before its health check confirmed",
		"release", p.Release, "to", p.Previous, "started", p.Started, "times", times, "marked_bad", reason != "")
	return p.Release, nil
}

// Rollback switches `current` back to the previous release by hand, without hooks, and
// marks the release it leaves bad with reason. `previous` then points at the most
// recently activated good release that remains, if any. It returns the release now
// current, or ErrNoPrevious.
func (in *Installer) Rollback(ctx context.Context, reason string) (to string, err error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("roll back: %w", err)
	}
	if reason == "" {
		reason = "rolled back by hand"
	}
	in.applyMu.Lock()
	defer in.applyMu.Unlock()
	if _, err := in.recoverLocked(); err != nil {
		return "", fmt.Errorf("roll back: %w", err)
	}
	in.mu.Lock()
	cur, prev := in.current, in.previous
	if prev == "" || cur == "" {
		in.mu.Unlock()
		return "", fmt.Errorf("roll back from %q: %w", cur, ErrNoPrevious)
	}
	// The mark goes to disk before the switch, so a crash never loses it.
	in.st.markBad(cur, reason)
	err = in.saveLocked()
	in.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("roll back from %s: %w", cur, err)
	}
	if err := in.pointLink(linkCurrent, prev); err != nil {
		return "", fmt.Errorf("roll back from %s: %w", cur, err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	newPrev := in.lastGoodLocked(prev)
	if err := in.pointLink(linkPrev, newPrev); err != nil {
		return "", fmt.Errorf("roll back from %s: %w", cur, err)
	}
	in.current, in.previous = prev, newPrev
	in.st.setRoles(in.current, in.previous)
	if err := in.saveLocked(); err != nil {
		return "", fmt.Errorf("roll back from %s: %w", cur, err)
	}
	in.log.Warn("rolled back", "release", cur, "to", prev, "reason", reason)
	return prev, nil
}

// lastGoodLocked returns the most recently activated installed release that is not bad
// and not except, "" when none.
func (in *Installer) lastGoodLocked(except string) string {
	var best *record
	for i := range in.st.Releases {
		r := &in.st.Releases[i]
		if r.Name == except || r.State == StateBad || r.Pruned || r.Activated.IsZero() || !in.installed(r.Name) {
			continue
		}
		if best == nil || r.Activated.After(best.Activated) {
			best = r
		}
	}
	if best == nil {
		return ""
	}
	return best.Name
}
