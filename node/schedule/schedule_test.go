package schedule

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/api"
)

// fakeClock moves only when a test advances it; timers fire inside advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(t time.Time) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch, func() {}
	}
	c.timers = append(c.timers, fakeTimer{t, ch})
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.timers = slices.DeleteFunc(c.timers, func(ft fakeTimer) bool { return ft.c == ch })
	}
}

// advance moves the clock by d and fires the timers due; it returns how many
// fired.
func (c *fakeClock) advance(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	fired := 0
	c.timers = slices.DeleteFunc(c.timers, func(ft fakeTimer) bool {
		if ft.at.After(c.now) {
			return false
		}
		ft.c <- c.now
		fired++
		return true
	})
	return fired
}

// event is something the scheduler did, in the order it did it.
type event struct {
	kind      string // "check", "idle" (about to wait) or "collect"
	ch        int    // check: the channel
	updateNow bool   // check: the update-now cap was on
	trigger   string // check: what made it run
	at        time.Time
	next      []time.Time          // idle: each channel's next check
	applied   []*manifest.Manifest // collect
	reply     chan outcome         // check: the test answers the check here
}

// outcome is how the test ends a fake check.
type outcome struct {
	res     api.CheckResult
	applied *manifest.Manifest
}

// harness runs a scheduler whose every action is an event the test reads and,
// for checks, answers.
type harness struct {
	t      *testing.T
	clock  *fakeClock
	s      *Scheduler
	events chan event
	runCtx context.Context // Run's, set by run
	done   chan struct{}   // closed when Run returned
}

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// newHarness schedules len(intervals) channels, channel i every intervals[i];
// the test starts it with run or start.
func newHarness(t *testing.T, intervals []time.Duration) *harness {
	t.Helper()
	h := &harness{t: t, clock: &fakeClock{now: epoch}, events: make(chan event), done: make(chan struct{})}
	var checking, onDemand atomic.Int32
	send := func(ctx context.Context, ev event) bool {
		select {
		case h.events <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	h.s = New(Config{
		Channels: len(intervals),
		Check: func(ctx context.Context, i int, trigger string) (api.CheckResult, *manifest.Manifest) {
			if checking.Add(1) != 1 {
				t.Errorf("checks overlap: channel %d started while another ran", i)
			}
			defer checking.Add(-1)
			ev := event{kind: "check", ch: i, updateNow: onDemand.Load() > 0, trigger: trigger, at: h.clock.Now(), reply: make(chan outcome)}
			if send(ctx, ev) {
				select {
				case o := <-ev.reply:
					return o.res, o.applied
				case <-ctx.Done():
				}
			}
			return api.CheckResult{Outcome: "failed", Message: "check cut short"}, nil
		},
		Next: func(i int, now time.Time) time.Time { return now.Add(intervals[i]) },
		Collect: func(ctx context.Context, applied []*manifest.Manifest) {
			send(ctx, event{kind: "collect", at: h.clock.Now(), applied: applied})
		},
		UpdateNow: func() func() {
			onDemand.Add(1)
			return func() { onDemand.Add(-1) }
		},
		Published: func(next []time.Time) {
			send(h.runCtx, event{kind: "idle", at: h.clock.Now(), next: slices.Clone(next)})
		},
		Clock: h.clock,
	})
	// t.Context, whence every run's ctx, ends before the cleanup.
	t.Cleanup(func() {
		if h.runCtx != nil {
			<-h.done
		}
	})
	return h
}

// run starts Run in its own goroutine.
func (h *harness) run(ctx context.Context) {
	h.runCtx = ctx
	go func() {
		defer close(h.done)
		h.s.Run(ctx)
	}()
}

// start runs the scheduler and answers its first round: every channel,
// "up-to-date".
func (h *harness) start(ctx context.Context) {
	h.t.Helper()
	h.run(ctx)
	for i := range h.s.cfg.Channels {
		h.idleOrCheck(i)
	}
	h.idle()
}

// idleOrCheck skips the idle event before the first round and answers the
// check of channel i.
func (h *harness) idleOrCheck(i int) {
	h.t.Helper()
	ev := <-h.events
	if ev.kind == "idle" {
		ev = <-h.events
	}
	h.answer(ev, i, outcome{res: api.CheckResult{Outcome: "up-to-date"}})
}

// expect reads the next event and fails unless it is of kind.
func (h *harness) expect(kind string) event {
	h.t.Helper()
	ev := <-h.events
	if ev.kind != kind {
		h.t.Fatalf("scheduler did %s (channel %d), want %s", ev.kind, ev.ch, kind)
	}
	return ev
}

// check expects the check of channel ch and answers it with o.
func (h *harness) check(ch int, o outcome) event {
	h.t.Helper()
	ev := h.expect("check")
	h.answer(ev, ch, o)
	return ev
}

func (h *harness) answer(ev event, ch int, o outcome) {
	h.t.Helper()
	if ev.kind != "check" || ev.ch != ch {
		h.t.Fatalf("scheduler did %s of channel %d, want check of channel %d", ev.kind, ev.ch, ch)
	}
	ev.reply <- o
}

// idle expects the scheduler to be about to wait, and returns each
// channel's next check as an offset from now.
func (h *harness) idle() []time.Duration {
	h.t.Helper()
	ev := h.expect("idle")
	var d []time.Duration
	for _, n := range ev.next {
		d = append(d, n.Sub(ev.at))
	}
	return d
}

func ok(msg string) outcome {
	return outcome{res: api.CheckResult{Outcome: "up-to-date", Message: msg}}
}

func failed() outcome {
	return outcome{res: api.CheckResult{Outcome: "failed", Message: "sources down"}}
}

func TestDueChannelsOnly(t *testing.T) {
	h := newHarness(t, []time.Duration{10 * time.Minute, time.Hour, 25 * time.Minute})
	h.start(t.Context())
	// At 10 min only channel 0 is due, at 20 min again, at 25 min channel 2,
	// at 30 min channel 0, at 60 min channels 0, 1 and 2 (2 rescheduled at 50).
	for _, step := range []struct {
		advance time.Duration
		due     []int
	}{
		{10 * time.Minute, []int{0}},
		{10 * time.Minute, []int{0}},
		{5 * time.Minute, []int{2}},
		{5 * time.Minute, []int{0}},
		{10 * time.Minute, []int{0}},
		{10 * time.Minute, []int{0, 2}},
		{10 * time.Minute, []int{0, 1}},
	} {
		h.clock.advance(step.advance)
		for _, ch := range step.due {
			if ev := h.check(ch, ok("")); ev.updateNow || ev.trigger != TriggerSchedule {
				t.Errorf("scheduled check of channel %d: update-now cap %v, trigger %q; want no cap, %q", ch, ev.updateNow, ev.trigger, TriggerSchedule)
			}
		}
		h.idle()
	}
}

func TestNextTimesPublished(t *testing.T) {
	h := newHarness(t, []time.Duration{10 * time.Minute, time.Hour})
	h.run(t.Context())
	if got := h.idle(); !slices.Equal(got, []time.Duration{0, 0}) {
		t.Errorf("before the first round: next in %v, want every channel now", got)
	}
	h.check(0, ok(""))
	h.check(1, ok(""))
	if got := h.idle(); !slices.Equal(got, []time.Duration{10 * time.Minute, time.Hour}) {
		t.Errorf("after the first round: next in %v, want [10m 1h]", got)
	}
}

func TestAskChecksEveryChannel(t *testing.T) {
	for _, tc := range []struct {
		name string
		ch   int
		wait bool
	}{
		{"first channel, wait", 0, true},
		{"last channel, wait", 2, true},
		{"no wait", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []time.Duration{time.Hour, time.Hour, time.Hour})
			h.start(t.Context())
			h.clock.advance(time.Minute) // nothing due
			answered := make(chan api.CheckResult, 1)
			go func() {
				res, err := h.s.Ask(t.Context(), tc.ch, tc.wait)
				if err != nil {
					t.Errorf("ask: %v", err)
				}
				answered <- res
			}()
			for i := range 3 {
				if ev := h.check(i, ok(fmt.Sprint("channel ", i))); !ev.updateNow || ev.trigger != TriggerAsked {
					t.Errorf("asked check of channel %d: update-now cap %v, trigger %q; want the cap, %q", i, ev.updateNow, ev.trigger, TriggerAsked)
				}
			}
			if got := h.idle(); !slices.Equal(got, []time.Duration{time.Hour, time.Hour, time.Hour}) {
				t.Errorf("after the asked round: next in %v, want an hour each", got)
			}
			res := <-answered
			want := fmt.Sprint("channel ", tc.ch)
			if !tc.wait {
				want = ""
			}
			if res.Message != want {
				t.Errorf("asker got %q (%s), want %q", res.Message, res.Outcome, want)
			}
			if !tc.wait && res.Outcome != "queued" {
				t.Errorf("ask without wait: outcome %q, want queued", res.Outcome)
			}
		})
	}
}

func TestDueChecksThatChannel(t *testing.T) {
	h := newHarness(t, []time.Duration{time.Hour, time.Hour, time.Hour})
	h.start(t.Context())
	h.clock.advance(time.Minute) // nothing due
	for _, ch := range []int{1, 2, 1} {
		if err := h.s.Due(ch, "site"); err != nil {
			t.Fatal(err)
		}
		// Woken, the scheduler publishes the channel due now, then checks it
		// alone, without the update-now cap.
		if got := h.idle(); got[ch] != 0 {
			t.Errorf("after Due(%d): next in %v, want channel %d now", ch, got, ch)
		}
		if ev := h.check(ch, ok("")); ev.updateNow || ev.trigger != "site" {
			t.Errorf("due check of channel %d: update-now cap %v, trigger %q; want no cap, the trigger given", ch, ev.updateNow, ev.trigger)
		}
		if got := h.idle(); got[ch] != time.Hour || got[0] != 59*time.Minute {
			t.Errorf("after the due check of channel %d: next in %v, want it in 1h and channel 0 still in 59m", ch, got)
		}
	}
	if err := h.s.Due(3, "site"); err == nil {
		t.Error("Due of channel 3 of 3 was accepted")
	}
	if err := h.s.Due(0, ""); err == nil {
		t.Error("Due without a trigger was accepted")
	}
}

func TestAskUnknownChannel(t *testing.T) {
	h := newHarness(t, []time.Duration{time.Hour})
	h.run(t.Context())
	for _, ch := range []int{-1, 1} {
		if _, err := h.s.Ask(t.Context(), ch, false); err == nil {
			t.Errorf("ask channel %d of 1: no error", ch)
		}
	}
}

func TestAskDuringRound(t *testing.T) {
	h := newHarness(t, []time.Duration{10 * time.Minute, time.Hour})
	h.start(t.Context())
	h.clock.advance(10 * time.Minute)
	ev := h.expect("check") // channel 0, due; channel 1 is not
	r0, _, err := h.s.send(t.Context(), 0, true)
	if err != nil {
		t.Fatal(err)
	}
	r1, _, err := h.s.send(t.Context(), 1, true)
	if err != nil {
		t.Fatal(err)
	}
	h.answer(ev, 0, ok("round A"))
	h.idle()
	if res := answer(t, r0); res.Message != "round A" {
		t.Errorf("channel 0's asker got %q, want the running round's result", res.Message)
	}
	select {
	case res := <-r1.done:
		t.Errorf("channel 1's asker answered %+v by a round that skipped it", res)
	default:
	}
	// The next round starts at once, checks every channel, and answers it.
	h.check(0, ok("round B0"))
	h.check(1, ok("round B1"))
	h.idle()
	if res := answer(t, r1); res.Message != "round B1" {
		t.Errorf("channel 1's asker got %q, want the next round's result", res.Message)
	}
}

func TestFailedCheckBacksOff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		outcomes []outcome
		gaps     []time.Duration // after each outcome, the wait until the next check
	}{
		{"doubles then resets", time.Hour,
			[]outcome{failed(), failed(), failed(), failed(), ok(""), failed(), ok("")},
			[]time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, time.Hour, 15 * time.Second, time.Hour}},
		{"never past the interval", 40 * time.Second,
			[]outcome{failed(), failed(), failed(), failed()},
			[]time.Duration{15 * time.Second, 30 * time.Second, 40 * time.Second, 40 * time.Second}},
		{"only failures back off", time.Hour,
			[]outcome{{res: api.CheckResult{Outcome: "refused"}}, {res: api.CheckResult{Outcome: "waiting"}}},
			[]time.Duration{time.Hour, time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []time.Duration{tc.interval})
			h.run(t.Context())
			h.idle()
			for k, o := range tc.outcomes {
				want := TriggerSchedule
				switch {
				case k == 0:
					want = TriggerStart
				case tc.outcomes[k-1].res.Outcome == "failed":
					want = TriggerRetry
				}
				if ev := h.check(0, o); ev.trigger != want {
					t.Errorf("check %d: trigger %q, want %q", k+1, ev.trigger, want)
				}
				gap := h.idle()[0]
				if gap != tc.gaps[k] {
					t.Fatalf("after check %d (%s): next in %v, want %v", k+1, o.res.Outcome, gap, tc.gaps[k])
				}
				h.clock.advance(gap)
			}
		})
	}
}

func TestCollectAfterApply(t *testing.T) {
	m1, m2, m3 := &manifest.Manifest{Version: "1"}, &manifest.Manifest{Version: "2"}, &manifest.Manifest{Version: "3"}
	for _, tc := range []struct {
		name    string
		round   []outcome // the first round's outcomes, per channel
		collect []*manifest.Manifest
	}{
		{"nothing applied", []outcome{ok(""), ok("")}, nil},
		{"one channel applied", []outcome{{applied: m1}, ok("")}, []*manifest.Manifest{m1}},
		{"both applied", []outcome{{applied: m2}, {applied: m3}}, []*manifest.Manifest{m2, m3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []time.Duration{time.Hour, time.Hour})
			h.run(t.Context())
			h.idle()
			for i, o := range tc.round {
				h.check(i, o)
			}
			h.idle()
			// Nothing is due before the delay, and with nothing applied,
			// nothing is due until the next check.
			if fired := h.clock.advance(CollectDelay - time.Nanosecond); fired != 0 {
				t.Fatalf("%d timers fired before the collect delay", fired)
			}
			fired := h.clock.advance(CollectDelay) // the delay has up to as much again at random
			if tc.collect == nil {
				if fired != 0 {
					t.Fatalf("%d timers fired with nothing applied", fired)
				}
				return
			}
			if fired != 1 {
				t.Fatalf("%d timers fired by twice the collect delay, want the collection's", fired)
			}
			ev := h.expect("collect")
			if !slices.Equal(ev.applied, tc.collect) {
				t.Errorf("collected %v, want %v", ev.applied, tc.collect)
			}
			h.idle()
			// Collected once: the next apply-free round collects nothing.
			h.clock.advance(time.Hour)
			h.check(0, ok(""))
			h.check(1, ok(""))
			h.idle()
			if fired := h.clock.advance(2 * CollectDelay); fired != 0 {
				t.Errorf("%d timers fired after a round that applied nothing", fired)
			}
		})
	}
}

func TestStopAnswersWaiting(t *testing.T) {
	t.Run("stopped before the first round", func(t *testing.T) {
		h := newHarness(t, []time.Duration{time.Hour, time.Hour})
		var reqs []request
		for _, ch := range []int{0, 1, 1} {
			r, sent, err := h.s.send(t.Context(), ch, true)
			if err != nil || !sent {
				t.Fatalf("send: %v, sent %v", err, sent)
			}
			reqs = append(reqs, r)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		h.run(ctx)
		<-h.done
		for i, r := range reqs {
			if res := answer(t, r); res.Outcome != "failed" || res.Message != Stopping {
				t.Errorf("request %d answered %+v, want failed: %s", i, res, Stopping)
			}
		}
	})
	t.Run("stopped during a round", func(t *testing.T) {
		h := newHarness(t, []time.Duration{10 * time.Minute, time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		h.start(ctx)
		h.clock.advance(10 * time.Minute)
		h.expect("check") // channel 0; the fake ends it when ctx does
		r0, _, err := h.s.send(t.Context(), 0, true)
		if err != nil {
			t.Fatal(err)
		}
		r1, _, err := h.s.send(t.Context(), 1, true) // skipped by this round
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		<-h.done
		if res := answer(t, r0); res.Message != "check cut short" {
			t.Errorf("channel 0's asker got %+v, want the round's result", res)
		}
		if res := answer(t, r1); res.Outcome != "failed" || res.Message != Stopping {
			t.Errorf("channel 1's asker got %+v, want failed: %s", res, Stopping)
		}
	})
}

// answer is r's answer, which the scheduler gave before it returned or
// published its next times.
func answer(t *testing.T, r request) api.CheckResult {
	t.Helper()
	select {
	case res := <-r.done:
		return res
	default:
		t.Fatal("request not answered")
		return api.CheckResult{}
	}
}
