// Package schedule decides when a node checks its channels: every channel at
// start, then each when its time comes, all of them when someone asks, a
// failed one sooner with backoff; and it collects the store a while after an
// apply. One loop runs the checks, so they never overlap.
//
// The node hands it what to do as funcs in Config (check channel i, the next
// time, collect, the update-now cap) and a Clock; the package knows nothing
// else of the node, so its tests run on a fake clock with fake checks.
package schedule

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/api"
)

// What made a check run, as Check receives it.
const (
	TriggerStart    = "start"    // the first round
	TriggerSchedule = "schedule" // its time came
	TriggerRetry    = "retry"    // its time came sooner, after a failure
	TriggerAsked    = "asked"    // someone asked (Ask)
)

// RetryFirst is how soon a failed check is retried; each failure in a row
// doubles it, until the channel's own next time comes sooner.
const RetryFirst = 15 * time.Second

// CollectDelay is how long after an apply the store is collected, plus up to
// as much again at random: the nodes of a site apply a release together, and
// compacting their stores at that same moment slowed the last of them.
const CollectDelay = 30 * time.Second

// Stopping is the message of the answer a check request gets when the
// scheduler stops before its check ran.
const Stopping = "node is stopping"

// queue is how many asked checks may wait while a round runs; more asks
// without wait are answered "queued" at once (a round is coming anyway).
const queue = 8

// Clock is the time the scheduler reads and waits on.
type Clock interface {
	Now() time.Time
	// At returns a channel that receives once the time is t or later, and a
	// func that stops it.
	At(t time.Time) (c <-chan time.Time, stop func())
}

// Config is what the scheduler does; Check, Next and Collect are required.
// Every func is called from Run's goroutine, one at a time.
type Config struct {
	// Channels is how many channels there are, numbered from 0.
	Channels int
	// Check checks channel i, for trigger (TriggerStart and the others);
	// applied is the manifest of a release it applied, nil if none, which
	// Collect later receives.
	Check func(ctx context.Context, i int, trigger string) (res api.CheckResult, applied *manifest.Manifest)
	// Next is when channel i, checked at now without failing, checks again.
	Next func(i int, now time.Time) time.Time
	// Collect collects the store; applied are the releases applied since
	// the last collection.
	Collect func(ctx context.Context, applied []*manifest.Manifest)
	// UpdateNow, if set, is called before a round someone asked for, and
	// the func it returns after the round (the update-now cap).
	UpdateNow func() (done func())
	// Published, if set, is told each channel's next check time whenever the
	// scheduler is about to wait; it must not keep next.
	Published func(next []time.Time)
	// Clock is nil for the real clock.
	Clock Clock
}

// Scheduler runs the checks of Config. Create it with New, run it with Run;
// Ask may be called before Run, from any goroutine.
type Scheduler struct {
	cfg   Config
	clock Clock
	reqs  chan request
	// dueMu guards due, the trigger of each channel made due by Due (empty:
	// none); dueCh wakes Run to read them.
	dueMu sync.Mutex
	due   []string
	dueCh chan struct{}
}

// request is a check someone asked for: every channel is checked, and done
// (if not nil) receives channel ch's result.
type request struct {
	done chan api.CheckResult // buffered: the scheduler never blocks on it
	ch   int
}

// New returns a scheduler of cfg; it checks nothing before Run.
func New(cfg Config) *Scheduler {
	s := &Scheduler{cfg: cfg, clock: cfg.Clock, reqs: make(chan request, queue),
		due: make([]string, cfg.Channels), dueCh: make(chan struct{}, 1)}
	if s.clock == nil {
		s.clock = realClock{}
	}
	return s
}

// Run checks every channel at once, then each when Next says, and every
// channel whenever asked, until ctx ends. Requests still waiting then are
// answered with Outcome "failed" and Message Stopping.
func (s *Scheduler) Run(ctx context.Context) {
	n := s.cfg.Channels
	now := s.clock.Now()
	next := make([]time.Time, n)
	retry := make([]time.Duration, n)
	trigger := make([]string, n) // what made each channel due, when not its time
	for i := range next {
		next[i], retry[i], trigger[i] = now, RetryFirst, TriggerStart
	}
	var collect []*manifest.Manifest // applied, not yet collected
	var collectAt <-chan time.Time
	stopCollect := func() {}
	defer func() { stopCollect() }()
	var pending []request // asked while a round ran that skipped their channel
	for {
		if s.cfg.Published != nil {
			s.cfg.Published(next)
		}
		if ctx.Err() != nil {
			s.stop(pending)
			return
		}
		var reqs []request
		if len(pending) > 0 {
			reqs, pending = pending, nil
		} else {
			wake, stop := s.clock.At(slices.MinFunc(next, time.Time.Compare))
			select {
			case <-ctx.Done():
				stop()
				s.stop(nil)
				return
			case <-collectAt:
				stop()
				s.cfg.Collect(ctx, collect)
				collect, collectAt = nil, nil
				continue
			case <-wake:
			case <-s.dueCh:
				stop()
				now := s.clock.Now()
				s.dueMu.Lock()
				for i, why := range s.due {
					if why != "" && next[i].After(now) {
						next[i], trigger[i] = now, why
					}
					s.due[i] = ""
				}
				s.dueMu.Unlock()
				continue
			case r := <-s.reqs:
				stop()
				reqs = append(reqs, r)
			}
		}

		done := func() {}
		if len(reqs) > 0 && s.cfg.UpdateNow != nil {
			done = s.cfg.UpdateNow()
		}
		results := make([]*api.CheckResult, n)
		now := s.clock.Now()
		for i := range n {
			if len(reqs) == 0 && next[i].After(now) {
				continue // not due, and nobody asked
			}
			why := trigger[i]
			switch {
			case len(reqs) > 0:
				why = TriggerAsked
			case why == "" && retry[i] > RetryFirst:
				why = TriggerRetry
			case why == "":
				why = TriggerSchedule
			}
			trigger[i] = ""
			res, applied := s.cfg.Check(ctx, i, why)
			results[i] = &res
			if applied != nil {
				collect = append(collect, applied)
				stopCollect()
				delay := CollectDelay + rand.N(CollectDelay)
				collectAt, stopCollect = s.clock.At(s.clock.Now().Add(delay))
			}
			next[i] = s.next(i, res, &retry[i])
		}
		done()

		// Everyone who asked while this round ran gets its result too; who
		// asked for a channel it skipped waits for the next round.
		for drained := false; !drained; {
			select {
			case r := <-s.reqs:
				reqs = append(reqs, r)
			default:
				drained = true
			}
		}
		for _, r := range reqs {
			switch {
			case results[r.ch] == nil:
				pending = append(pending, r)
			case r.done != nil:
				r.done <- *results[r.ch]
			}
		}
	}
}

// next is when channel i checks again after a check with result res: when
// Next says, sooner with backoff (retry) when it failed.
func (s *Scheduler) next(i int, res api.CheckResult, retry *time.Duration) time.Time {
	now := s.clock.Now()
	next := s.cfg.Next(i, now)
	if res.Outcome == "failed" {
		if *retry < next.Sub(now) {
			next = now.Add(*retry)
		}
		*retry *= 2
	} else {
		*retry = RetryFirst
	}
	return next
}

// stop answers pending and every request still queued: no check runs for
// them any more.
func (s *Scheduler) stop(pending []request) {
	answer := func(r request) {
		if r.done != nil {
			r.done <- api.CheckResult{Outcome: "failed", Message: Stopping}
		}
	}
	for _, r := range pending {
		answer(r)
	}
	for {
		select {
		case r := <-s.reqs:
			answer(r)
		default:
			return
		}
	}
}

// Ask asks for a check of every channel. With wait it returns channel ch's
// result once the round ran; without, it returns at once with Outcome
// "queued".
func (s *Scheduler) Ask(ctx context.Context, ch int, wait bool) (api.CheckResult, error) {
	r, sent, err := s.send(ctx, ch, wait)
	switch {
	case err != nil:
		return api.CheckResult{}, err
	case !sent:
		return api.CheckResult{Outcome: "queued"}, nil
	case !wait:
		return api.CheckResult{Outcome: "queued", Started: s.clock.Now()}, nil
	}
	select {
	case res := <-r.done:
		return res, nil
	case <-ctx.Done():
		return api.CheckResult{}, ctx.Err()
	}
}

// Due makes channel ch's check due now, as if its time had come, for
// trigger (not empty), which Check receives: unlike Ask, the round checks
// only the channels due, without the update-now cap, and nobody waits for
// it. Called while ch checks, it checks once more after. It does not block.
func (s *Scheduler) Due(ch int, trigger string) error {
	if ch < 0 || ch >= s.cfg.Channels || trigger == "" {
		return fmt.Errorf("due check: channel %d of %d, trigger %q", ch, s.cfg.Channels, trigger)
	}
	s.dueMu.Lock()
	s.due[ch] = trigger
	s.dueMu.Unlock()
	select {
	case s.dueCh <- struct{}{}:
	default: // Run is already woken
	}
	return nil
}

// send queues a request for channel ch. With wait it waits for room in the
// queue; without, a full queue already holds a round for everyone, and sent
// is false.
func (s *Scheduler) send(ctx context.Context, ch int, wait bool) (r request, sent bool, err error) {
	if ch < 0 || ch >= s.cfg.Channels {
		return r, false, fmt.Errorf("ask check: channel %d of %d", ch, s.cfg.Channels)
	}
	r = request{ch: ch}
	if wait {
		r.done = make(chan api.CheckResult, 1)
	}
	select {
	case s.reqs <- r:
		return r, true, nil
	case <-ctx.Done():
		return r, false, ctx.Err()
	default:
		if !wait {
			return r, false, nil
		}
	}
	select {
	case s.reqs <- r:
		return r, true, nil
	case <-ctx.Done():
		return r, false, ctx.Err()
	}
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) At(t time.Time) (<-chan time.Time, func()) {
	tm := time.NewTimer(time.Until(t))
	return tm.C, func() { tm.Stop() }
}
