package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/delta"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/install"
	"github.com/patchmesh/patchmesh/node/rollout"
	"github.com/patchmesh/patchmesh/node/source"
)

// errRefused marks a check that found a release it must not use.
var errRefused = errors.New("refused")

// check runs one whole check: find the newest valid release, fetch it, apply it.
// It never disturbs the running release unless a new one passes every check.
// applied is the manifest of a release it applied, whose older releases and
// chunks the caller collects once it has reported the result.
// trigger says what made it run (schedule.TriggerStart and the others, or
// triggerSite).
func (f *follower) check(ctx context.Context, trigger string) (res api.CheckResult, applied *manifest.Manifest) {
	res = api.CheckResult{Started: time.Now(), Trigger: trigger}
	waitsForWindow := false
	defer func() {
		if !waitsForWindow && res.Outcome != "failed" {
			// The head moved on, or the release applied or waits on
			// something else; a failed check leaves the staged release as it was.
			f.clearWindowWait(0)
		}
	}()
	f.mu.Lock()
	f.st.checking = true
	f.mu.Unlock()
	defer func() {
		f.gossipRunning()
		res.Finished = time.Now()
		f.mu.Lock()
		f.st.checking = false
		f.st.progress = nil
		f.st.lastCheck = &res
		f.mu.Unlock()
		f.stat.checked(res.Finished.Sub(res.Started))
		f.log.Info("check done", "trigger", res.Trigger, "outcome", res.Outcome, "release", res.Version, "sequence", res.Sequence, "msg", res.Message)
	}()

	if err := f.storeReady(); err != nil {
		res.Outcome, res.Message = "failed", err.Error()
		f.event("store", res.Message)
		return res, nil
	}
	f.updateRoot(ctx)
	h, henv, src, err := f.fetchHead(ctx)
	if err != nil {
		res.Outcome, res.Message = outcomeOf(err), err.Error()
		return res, nil
	}
	res.Version, res.Sequence, res.Source = h.Version, h.Sequence, src
	name := releaseName(h.Version, h.Sequence)
	ro, err := f.fetchRollout(ctx, h)
	if ro != nil && ro.State != manifest.RolloutAborted {
		// While a rollout runs, its news (promote, pause, abort) and the
		// site's health reach this node within a poll, whatever it did.
		f.setRollout(ro, time.Now().Add(time.Duration(f.cfg.RolloutPoll)))
	} else {
		f.setRollout(ro, time.Time{})
	}
	if err != nil {
		res.Outcome, res.Message = "failed", err.Error()
		if errors.Is(err, errNoRollout) {
			res.Outcome = "waiting"
			f.setRollout(nil, time.Now().Add(time.Duration(f.cfg.RolloutPoll)))
		}
		return res, nil
	}
	if cur := f.currentRecord(); cur != nil && cur.Sequence == h.Sequence {
		f.noteOutcome(h.Sequence, name, ro)
		if ro != nil && f.decide(ro).Action == rollout.Rollback {
			return f.abortRollback(ctx, ro, res), nil
		}
		res.Outcome, res.Message = "up-to-date", "running "+h.Version
		return res, nil
	}
	if bad, why := f.inst.IsBad(name); bad {
		f.noteOutcome(h.Sequence, name, ro)
		res.Outcome = "skipped-bad"
		res.Message = fmt.Sprintf("release %s was rolled back (%s); waiting for a newer one", h.Version, why)
		return res, nil
	}
	m, menv, err := f.fetchManifest(ctx, h)
	if err != nil {
		res.Outcome, res.Message = outcomeOf(err), err.Error()
		return res, nil
	}
	cur := f.currentRecord()
	curVersion := ""
	if cur != nil {
		curVersion = cur.Version
	}
	if err := m.Target.Check(f.cfg.GOOS, f.cfg.GOARCH, curVersion); err != nil {
		err = f.refuse(fmt.Errorf("release %s: %w", h.Version, err))
		res.Outcome, res.Message = "refused", err.Error()
		return res, nil
	}
	// Only now, with head and manifest verified, does the highest sequence
	// move up. The three writes reach the disk with the manifest's, in order:
	// a crash may keep a prefix of them, and each prefix is a valid state.
	if err := f.setHighestSeq(h.Sequence); err != nil {
		res.Outcome, res.Message = "failed", err.Error()
		return res, nil
	}
	if err := f.store.SetMetaLazy(metaHead+f.channel, henv); err != nil {
		res.Outcome, res.Message = "failed", err.Error()
		return res, nil
	}
	f.noteHead(h)
	if f.first {
		// Members that catch up check at once: tell them now, not at
		// the summary's next period.
		f.summarySoon()
	}
	if err := f.store.SetMeta(manifestKey(f.channel, m.Sequence), menv); err != nil {
		res.Outcome, res.Message = "failed", err.Error()
		return res, nil
	}
	f.setKnownManifest(m)

	if err := f.checkSpace(ctx, m, name); err != nil {
		res.Outcome, res.Message = "failed", err.Error()
		f.event("store", res.Message)
		return res, nil
	}
	rec := releaseRecord{Name: name, Channel: m.Channel, Version: m.Version, Sequence: m.Sequence, Files: len(m.Files), Bytes: m.TotalSize()}
	if ro != nil {
		switch d := f.decide(ro); {
		case d.Action == rollout.Ignore:
			f.setOutcome(rollout.Outcome{Release: ro.Release, State: rollout.Ignored})
			f.setRollout(ro, time.Time{}) // a target does not change: the schedule will do
			res.Outcome, res.Message = "ignored", d.Reason
			return res, nil
		case ro.State == manifest.RolloutAborted:
			// Not even fetched: it will never be applied.
			res.Outcome, res.Message = "waiting", d.Reason
			f.setRollout(ro, f.waitUntil(d))
			return res, nil
		}
	}
	err = f.stage(ctx, m, name, &rec)
	var dec *rollout.Decision
	if err == nil && ro != nil {
		// Decided after the fetch, which may be long: the stage may have
		// opened, or the site halted, meanwhile.
		d := f.decide(ro)
		if d.Action != rollout.Apply {
			res.Outcome, res.Message = "waiting", fmt.Sprintf("%s fetched; applies later: %s", m.Version, d.Reason)
			f.setRollout(ro, f.waitUntil(d))
			return res, nil
		}
		dec = &d
	}
	if err == nil {
		// Staged any time; switched only inside the maintenance windows.
		if wait, opens := f.windowWait(m, ro, dec); wait {
			waitsForWindow = true
			res.Outcome, res.Message = "waiting", windowMessage(m.Version, opens)
			return res, nil
		}
		err = f.activate(ctx, m, name)
		f.noteOutcome(m.Sequence, name, ro)
		f.clearWindowWait(m.Sequence)
	}
	if err != nil {
		var fe *fetchError
		var he *install.HookError
		switch {
		case errors.As(err, &fe):
			res.Outcome, res.Message = outcomeOf(fe.err), fmt.Sprintf("fetch %s: %v", m.Version, fe.err)
			if ctx.Err() == nil {
				f.event("fetch", res.Message)
			}
		case errors.As(err, &he):
			res.Outcome, res.Message = "rolled-back", err.Error()
		default:
			res.Outcome, res.Message = outcomeOf(err), err.Error()
		}
		return res, nil
	}
	res.Outcome, res.Message = "applied", fmt.Sprintf("%s is now current", m.Version)
	return res, m
}

func outcomeOf(err error) string {
	if errors.Is(err, errRefused) {
		return "refused"
	}
	return "failed"
}

// refuse records a refusal for the status and the log, and marks err as one.
func (n *Node) refuse(err error) error {
	n.stat.refused()
	n.event("refused", err.Error())
	return refusal{err}
}

// refusal marks err as a refusal (errors.Is(err, errRefused)) without adding
// "refused" to its text: the check's outcome already says it.
type refusal struct{ err error }

func (r refusal) Error() string        { return r.err.Error() }
func (r refusal) Unwrap() error        { return r.err }
func (r refusal) Is(target error) bool { return target == errRefused }

// trustHint names what a node trusts, for a refusal of a signature: the key
// ids and threshold of its trust root and the file it was pinned from, so an
// operator can tell a wrong key from a stale trust file.
func (n *Node) trustHint(err error) string {
	if !errors.Is(err, manifest.ErrThreshold) && !errors.Is(err, manifest.ErrUnknownKey) && !errors.Is(err, manifest.ErrSignature) {
		return ""
	}
	root := n.trustRoot()
	ids := make([]string, 0, len(root.Keys))
	for id := range root.Keys {
		ids = append(ids, string(id))
	}
	slices.Sort(ids)
	return fmt.Sprintf(" (this node trusts keys %s, threshold %d: trust root version %d, pinned from %s)",
		strings.Join(ids, ", "), root.Threshold, root.Version, n.cfg.Trust)
}

// loadRoots restores the newest trust root reached by rotation in an earlier run.
func (n *Node) loadRoots() {
	all, err := n.store.ListMeta(metaRoot)
	if err != nil {
		return
	}
	for v := n.root.Version + 1; ; v++ {
		env, ok := all[metaRoot+strconv.FormatUint(v, 10)]
		if !ok {
			env, ok = all[strconv.FormatUint(v, 10)]
		}
		if !ok {
			return
		}
		next, err := n.root.VerifyNext(env)
		if err != nil {
			return
		}
		n.rootMu.Lock()
		n.root = next
		n.rootMu.Unlock()
	}
}

func (n *Node) trustRoot() *manifest.TrustRoot {
	n.rootMu.Lock()
	defer n.rootMu.Unlock()
	return n.root
}

// updateRoot follows key rotations published in the repository.
func (n *Node) updateRoot(ctx context.Context) {
	cur := n.trustRoot()
	next, env, err := repo.UpdateRoot(ctx, n.readFile, cur)
	switch {
	case err == nil:
	case errors.Is(err, manifest.ErrMalformed), errors.Is(err, manifest.ErrThreshold), errors.Is(err, manifest.ErrSignature),
		errors.Is(err, manifest.ErrRootVersion), errors.Is(err, manifest.ErrExpired), errors.Is(err, manifest.ErrTooLarge):
		n.event("refused", fmt.Sprintf("trust root rotation: %v%s", err, n.trustHint(err)))
	default:
		// A source that is down is no refusal; the sources' health shows it,
		// and the head is read from the next source anyway.
		n.log.Info("trust root rotation not checked", "err", err)
	}
	if next.Version > cur.Version && env != nil {
		if err := n.store.SetMeta(metaRoot+strconv.FormatUint(next.Version, 10), env); err != nil {
			n.event("refused", fmt.Sprintf("save trust root %d: %v", next.Version, err))
			return
		}
		n.rootMu.Lock()
		n.root = next
		n.rootMu.Unlock()
		n.log.Info("trust root rotated", "version", next.Version)
	}
}

// readFile reads a repository file from the sources in order, as repo.ReadFunc.
func (n *Node) readFile(ctx context.Context, path string, max int64) ([]byte, error) {
	data, _, err := n.list.ReadAll(ctx, path, max)
	if errors.Is(err, source.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	return data, err
}

// fetchHead returns the first valid head among the sources, in order. A source
// whose head is stale, expired or badly signed is reported and the next is tried:
// a mirror serving old metadata is not a reason to stop.
func (f *follower) fetchHead(ctx context.Context) (*manifest.Head, []byte, string, error) {
	highest, err := f.highestSeq()
	if err != nil {
		return nil, nil, "", err
	}
	root := f.trustRoot()
	var refusals []string
	path := repo.HeadPath(f.channel)
	var found *manifest.Head
	data, src, err := f.list.ReadVerified(ctx, path, manifest.MaxHeadSize, func(s source.Source, env []byte) error {
		h, err := root.VerifyHead(env, time.Now())
		if err == nil && h.Channel != f.channel {
			err = fmt.Errorf("head names channel %q: %w", h.Channel, manifest.ErrMalformed)
		}
		if err == nil {
			err = manifest.CheckNewer(highest, h.Sequence)
		}
		if err != nil {
			msg := fmt.Sprintf("head of %s from %s: %v%s", f.channel, s, err, f.trustHint(err))
			if errors.Is(err, manifest.ErrExpired) {
				msg += " (check this machine's clock, or ask the publisher to re-sign the head)"
			}
			if errors.Is(err, manifest.ErrRollback) {
				msg += " (a stale or replayed head; trying the next source)"
			}
			refusals = append(refusals, msg)
			f.refuse(errors.New(msg))
			return err
		}
		found = h
		return nil
	})
	if err != nil {
		if len(refusals) > 0 {
			return nil, nil, "", refusal{fmt.Errorf("no source has a valid head: %s", strings.Join(refusals, "; "))}
		}
		return nil, nil, "", fmt.Errorf("read head of channel %s: %w", f.channel, err)
	}
	if _, fromSite := src.(siteSource); fromSite && len(refusals) > 0 && found.Sequence <= highest {
		// The peers hand back the head this node already has: that is no
		// answer from the sources, whose heads were all refused, and no
		// reason to say "up to date".
		return nil, nil, "", fmt.Errorf("%w: no source has a valid head (the site's peers hold only sequence %d, which this node has): %s",
			errRefused, found.Sequence, strings.Join(refusals, "; "))
	}
	if f.first {
		// The node has one set of caps: the first channel's head sets them.
		var cc manifest.ChannelCaps
		if found.Caps != nil {
			cc = *found.Caps
		}
		f.caps.setChannel(cc.WAN, cc.SiteWAN, cc.LANUpload)
	}
	return found, data, src.String(), nil
}

// fetchManifest reads the manifest the head names and verifies it completely.
func (f *follower) fetchManifest(ctx context.Context, h *manifest.Head) (*manifest.Manifest, []byte, error) {
	if h.Manifest.Size > manifest.MaxManifestSize {
		return nil, nil, f.refuse(fmt.Errorf("manifest %s: %d bytes: %w", h.Manifest.Path, h.Manifest.Size, manifest.ErrTooLarge))
	}
	// A manifest already verified once (e.g. before a restart) is not fetched again.
	if env, err := f.store.GetMeta(manifestKey(f.channel, h.Sequence)); err == nil && refMatches(h.Manifest, env) {
		if m, err := f.trustRoot().VerifyManifest(env, time.Now()); err == nil {
			return m, env, nil
		}
	}
	root := f.trustRoot()
	if m, env, ok := f.compactFromSite(ctx, h, root); ok {
		return m, env, nil
	}
	if m, env, ok := f.manifestFromSite(ctx, h, root); ok {
		return m, env, nil
	}
	if env := f.compactManifest(ctx, h.Channel, h.Sequence, h.Manifest.Size, func(env []byte) bool { return refMatches(h.Manifest, env) }); env != nil {
		if m, err := f.openManifest(h, root, env, "its compact form"); err == nil {
			return m, env, nil
		}
	}
	var m *manifest.Manifest
	var last error
	env, _, err := f.list.ReadVerified(ctx, h.Manifest.Path, h.Manifest.Size, func(s source.Source, env []byte) error {
		if !refMatches(h.Manifest, env) {
			last = f.refuse(fmt.Errorf("manifest %s from %s does not match the digest in the head: %w", h.Manifest.Path, s, manifest.ErrSignature))
			return last
		}
		mm, err := f.openManifest(h, root, env, s.String())
		if err != nil {
			last = err
			return last
		}
		m = mm
		return nil
	})
	if err != nil {
		if last != nil {
			return nil, nil, last
		}
		return nil, nil, fmt.Errorf("read manifest %s: %w", h.Manifest.Path, err)
	}
	return m, env, nil
}

// compactManifest reads a smaller form of the manifest envelope of channel
// and seq, of size bytes, from the sources: its delta against the manifest of
// the release this node runs, or its compressed form. It returns nil when
// neither is to be had or neither decodes to bytes that match (by the head's
// digest): the plain manifest is read then. These forms are optional, so their
// absence or damage is no failure of a source.
func (f *follower) compactManifest(ctx context.Context, channel string, seq uint64, size int64, match func([]byte) bool) []byte {
	limit := size + size/8 + 1024 // incompressible input grows a little
	type form struct {
		path string
		dict []byte // zstd raw dictionary
	}
	var forms []form
	if cur := f.currentRecord(); cur != nil && cur.Channel == channel && cur.Sequence < seq {
		if dict, err := f.heldUnwrapped(cur); err == nil {
			forms = append(forms, form{repo.ManifestDeltaPath(channel, seq, cur.Sequence), dict})
		}
	}
	forms = append(forms, form{repo.ManifestZstPath(channel, seq), nil})
	for _, fm := range forms {
		data, _, err := f.list.ReadAll(ctx, fm.path, limit)
		if err != nil {
			f.log.Debug("compact manifest", "path", fm.path, "err", err)
			continue
		}
		env, err := openCompact(data, fm.dict, size)
		if err == nil && match(env) {
			return env
		}
		f.log.Debug("compact manifest does not decode to the manifest", "path", fm.path, "err", err)
	}
	return nil
}

// heldUnwrapped returns the envelope of the manifest of release rec, unwrapped
// (manifest.UnwrapEnvelope): the dictionary of a compact form against it.
func (n *Node) heldUnwrapped(rec *releaseRecord) ([]byte, error) {
	env, err := n.store.GetMeta(manifestKey(rec.Channel, rec.Sequence))
	if err != nil {
		return nil, err
	}
	return manifest.UnwrapEnvelope(env)
}

// openCompact decodes a compact manifest form, an unwrapped envelope
// compressed with dict, into the envelope of at most size bytes it stands for.
// The caller checks it against the head's digest.
func openCompact(data, dict []byte, size int64) ([]byte, error) {
	un, err := delta.DecodeUpTo(data, dict, int(size), nil)
	if err != nil {
		return nil, err
	}
	return manifest.WrapEnvelope(un)
}

// compactFromSite gets a compact form of the manifest the head names through
// the mesh like a chunk, by the sha256 the head gives it, so it crosses the WAN
// once per site: the form against the manifest this node runs if the head has
// one, else the compressed form. Any failure goes the other ways.
func (f *follower) compactFromSite(ctx context.Context, h *manifest.Head, root *manifest.TrustRoot) (*manifest.Manifest, []byte, bool) {
	if f.mesh == nil {
		return nil, nil, false
	}
	var pick *manifest.CompactRef
	var dict []byte
	cur := f.currentRecord()
	for i, c := range h.Compact {
		if c.From == 0 && pick == nil {
			pick = &h.Compact[i]
		}
		if c.From != 0 && cur != nil && cur.Channel == h.Channel && cur.Sequence == c.From {
			if d, err := f.heldUnwrapped(cur); err == nil {
				pick, dict = &h.Compact[i], d
				break
			}
		}
	}
	if pick == nil || pick.Size > chunk.MaxSize {
		return nil, nil, false
	}
	c, err := refCID(pick.Ref())
	if err != nil {
		return nil, nil, false
	}
	f.wan.docs.Store(c, pick.Ref())
	data, _, err := f.mesh.Fetch(ctx, c)
	if err != nil {
		f.log.Debug("compact manifest from the site", "path", pick.Path, "err", err)
		return nil, nil, false
	}
	env, err := openCompact(data, dict, h.Manifest.Size)
	if err != nil || !refMatches(h.Manifest, env) {
		f.refuse(fmt.Errorf("compact manifest %s does not decode to the manifest the head names: %v", pick.Path, err))
		return nil, nil, false
	}
	m, err := f.openManifest(h, root, env, "the site")
	return m, env, err == nil
}

// manifestFromSite gets a manifest through the mesh like a chunk: the head names
// it by its sha256, so as a CID it has one owner in the site, which alone fetches
// it from the WAN; the others take it from the owner. Manifests over a chunk's
// size cap, and any failure, go the ordinary way.
func (n *Node) manifestFromSite(ctx context.Context, h *manifest.Head, root *manifest.TrustRoot) (*manifest.Manifest, []byte, bool) {
	if n.mesh == nil || h.Manifest.Size > chunk.MaxSize {
		return nil, nil, false
	}
	c, err := refCID(h.Manifest)
	if err != nil {
		return nil, nil, false
	}
	n.wan.docs.Store(c, h.Manifest)
	env, _, err := n.mesh.Fetch(ctx, c)
	if err != nil || !refMatches(h.Manifest, env) {
		n.log.Debug("manifest from the site", "path", h.Manifest.Path, "err", err)
		return nil, nil, false
	}
	m, err := n.openManifest(h, root, env, "the site")
	return m, env, err == nil
}

// openManifest verifies a manifest envelope read from where, whose bytes
// match the head's digest, and checks it is the one the head names; a refusal
// is reported and returned.
func (n *Node) openManifest(h *manifest.Head, root *manifest.TrustRoot, env []byte, where string) (*manifest.Manifest, error) {
	m, err := root.VerifyManifest(env, time.Now())
	if err == nil {
		err = manifest.CheckHead(h, m)
	}
	if err != nil {
		return nil, n.refuse(fmt.Errorf("manifest %s from %s: %w%s", h.Manifest.Path, where, err, n.trustHint(err)))
	}
	return m, nil
}

// refCID names a document by the sha256 in its Ref, as a CIDv1 raw.
func refCID(r manifest.Ref) (cid.Cid, error) {
	d, err := hex.DecodeString(r.SHA256)
	if err != nil {
		return cid.Undef, err
	}
	mh, err := multihash.Encode(d, multihash.SHA2_256)
	if err != nil {
		return cid.Undef, err
	}
	return cid.NewCidV1(cid.Raw, mh), nil
}

func refMatches(r manifest.Ref, env []byte) bool {
	d := sha256.Sum256(env)
	return int64(len(env)) == r.Size && hex.EncodeToString(d[:]) == r.SHA256
}
