package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

func plan() *manifest.Rollout {
	return &manifest.Rollout{Channel: "stable", Sequence: 1, Release: 7, Version: "2.0.0", Started: t0, State: manifest.RolloutRunning,
		Stages: []manifest.Stage{
			{Name: "canary", Percent: 1, Soak: manifest.Duration(time.Hour)},
			{Name: "ring", Tags: []string{"ring-early"}, Soak: manifest.Duration(time.Hour)},
			{Name: "all", Percent: 100},
		}}
}

// named returns a node name whose bucket for release 7 is not below 1, so it
// is a canary only by the site rule.
func named(t *testing.T, prefix string) string {
	for i := range 1000 {
		n := prefix + strings.Repeat("x", i)
		if Bucket(n, 7) >= 1 {
			return n
		}
	}
	t.Fatal("no name")
	return ""
}

func TestDecide(t *testing.T) {
	self := named(t, "self")
	other := func() string {
		// A peer with a lower bucket than self, so self is no canary.
		for i := range 1000 {
			n := "peer" + strings.Repeat("y", i)
			if Bucket(n, 7) < Bucket(self, 7) {
				return n
			}
		}
		t.Fatal("no peer")
		return ""
	}()
	site := []Member{{Name: other, Alive: true}}
	failed := []Member{{Name: other, Alive: true, Outcome: Outcome{Release: 7, State: Failed, Reason: "health check: exit 3"}}}
	tests := []struct {
		name     string
		r        func(*manifest.Rollout)
		self     Self
		site     []Member
		now      time.Time
		action   string
		stage    int
		reason   string
		canary   bool
		halted   bool
		opensAdd time.Duration
	}{
		{name: "alone is canary", self: Self{Name: self}, now: t0, action: Apply, stage: 0, canary: true, reason: "canary is open"},
		{name: "later stage waits", self: Self{Name: self}, site: site, now: t0.Add(time.Minute), action: Wait, stage: 2, reason: "stage all opens", opensAdd: 2 * time.Hour},
		{name: "tagged stage", self: Self{Name: self, Tags: []string{"ring-early"}}, site: site, now: t0.Add(61 * time.Minute), action: Apply, stage: 1, opensAdd: time.Hour},
		{name: "opens after soaks", self: Self{Name: self}, site: site, now: t0.Add(2 * time.Hour), action: Apply, stage: 2, opensAdd: 2 * time.Hour},
		{name: "promoted", r: func(r *manifest.Rollout) { r.Opened, r.OpenedAt = 2, t0.Add(time.Minute) }, self: Self{Name: self}, site: site, now: t0.Add(time.Minute), action: Apply, stage: 2, opensAdd: time.Minute},
		{name: "paused", r: func(r *manifest.Rollout) { r.State = manifest.RolloutPaused }, self: Self{Name: self}, site: site, now: t0.Add(3 * time.Hour), action: Wait, stage: 2, reason: "paused", opensAdd: 2 * time.Hour},
		{name: "halted", self: Self{Name: self}, site: failed, now: t0.Add(3 * time.Hour), action: Wait, stage: 2, reason: "halted", halted: true, opensAdd: 2 * time.Hour},
		{name: "halt needs min installs", r: func(r *manifest.Rollout) { r.Halt.MinInstalls = 2 }, self: Self{Name: self}, site: failed, now: t0.Add(3 * time.Hour), action: Apply, stage: 2, opensAdd: 2 * time.Hour},
		{name: "outside target", r: func(r *manifest.Rollout) { r.TargetTags = []string{"fleet"} }, self: Self{Name: self, Tags: []string{"lab"}}, now: t0, action: Ignore, stage: -1, reason: "targets tags fleet; this node carries lab"},
		{name: "aborted and running", r: func(r *manifest.Rollout) { r.State = manifest.RolloutAborted }, self: Self{Name: self, Running: true}, site: site, now: t0, action: Rollback, stage: 2, opensAdd: 2 * time.Hour},
		{name: "aborted", r: func(r *manifest.Rollout) { r.State = manifest.RolloutAborted }, self: Self{Name: self}, site: site, now: t0.Add(3 * time.Hour), action: Wait, stage: 2, reason: "aborted", opensAdd: 2 * time.Hour},
		{name: "running", self: Self{Name: self, Running: true}, site: site, now: t0, action: Done, stage: 2, opensAdd: 2 * time.Hour},
		{name: "ignored member is no canary", self: Self{Name: self}, site: []Member{{Name: other, Alive: true, Outcome: Outcome{Release: 7, State: Ignored}}}, now: t0, action: Apply, stage: 0, canary: true},
		{name: "dead member is no canary", self: Self{Name: self}, site: []Member{{Name: other}}, now: t0, action: Apply, stage: 0, canary: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := plan()
			if tt.r != nil {
				tt.r(r)
			}
			d := Decide(r, tt.self, tt.site, tt.now)
			if d.Action != tt.action || d.Stage != tt.stage || d.Canary != tt.canary || d.Halted != tt.halted || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("got %s stage %d canary %v halted %v (%s)", d.Action, d.Stage, d.Canary, d.Halted, d.Reason)
			}
			if tt.stage >= 0 && !d.OpensAt.Equal(t0.Add(tt.opensAdd)) {
				t.Errorf("opens at %s, want %s", d.OpensAt, t0.Add(tt.opensAdd))
			}
			if tt.halted && (len(d.Failing) != 1 || d.Failing[0].Name != other || !strings.Contains(d.HaltReason, other)) {
				t.Errorf("failing %+v, reason %s", d.Failing, d.HaltReason)
			}
		})
	}
}

func TestBucketDeterministicAndSpread(t *testing.T) {
	if Bucket("n1", 3) != Bucket("n1", 3) {
		t.Fatal("bucket not deterministic")
	}
	moved, low := 0, 0
	for i := range 1000 {
		n := "node-" + strings.Repeat("a", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		b := Bucket(n, 1)
		if b < 0 || b >= 100 {
			t.Fatalf("bucket %v outside [0, 100)", b)
		}
		if b < 10 {
			low++
		}
		if (b < 50) != (Bucket(n, 2) < 50) {
			moved++
		}
	}
	// About 10% below 10, and about half change sides between releases.
	if low < 50 || low > 150 || moved < 350 || moved > 650 {
		t.Errorf("%d of 1000 below 10, %d moved between releases", low, moved)
	}
}

func TestOutcomeEncoding(t *testing.T) {
	long := "health-check hook /a/very/long/path/" + strings.Repeat("x", 200) + " failed: database unreachable"
	for _, o := range []Outcome{{Release: 1, State: Applied}, {Release: 1 << 40, State: Failed, Reason: "exit 3"}, {Release: 9, State: Ignored}, {Release: 2, State: Failed, Reason: long}} {
		got, ok := DecodeOutcome(o.Encode())
		if !ok || got.Release != o.Release || got.State != o.State {
			t.Errorf("%+v decoded as %+v %v", o, got, ok)
		}
		if len(o.Reason) <= maxReason && got.Reason != o.Reason {
			t.Errorf("reason %q decoded as %q", o.Reason, got.Reason)
		}
		if len(o.Reason) > maxReason && (len(got.Reason) > maxReason || !strings.HasSuffix(got.Reason, "database unreachable")) {
			t.Errorf("long reason cut to %q", got.Reason)
		}
	}
	for _, b := range [][]byte{nil, {1}, {2, 1, 1}, {1, 1, 9}, {1, 0x80}} {
		if _, ok := DecodeOutcome(b); ok {
			t.Errorf("%v decoded", b)
		}
	}
}
