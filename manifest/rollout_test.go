package manifest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

var r0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sampleRollout() *manifest.Rollout {
	return &manifest.Rollout{Channel: "stable", Sequence: 3, Release: 9, Version: "2.0.0", Started: r0, Issued: r0, Expires: r0.Add(24 * time.Hour),
		State: manifest.RolloutRunning, Halt: manifest.Halt{MinInstalls: 2, MaxFailureRatio: 0.2},
		Stages: []manifest.Stage{
			{Name: "canary", Percent: 1, Soak: manifest.Duration(time.Hour)},
			{Name: "half", Percent: 50, Soak: manifest.Duration(2 * time.Hour)},
			{Name: "all", Percent: 100},
		}}
}

func TestRolloutSignVerify(t *testing.T) {
	root := rootV1(t)
	payload, err := sampleRollout().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	env, err := manifest.Sign(manifest.TypeRollout, payload, privs(t, 0, 1)...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := root.VerifyRollout(env, r0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.Release != 9 || len(got.Stages) != 3 || time.Duration(got.Stages[1].Soak) != 2*time.Hour {
		t.Errorf("round trip: %+v", got)
	}
	if _, err := root.VerifyRollout(env, r0.Add(25*time.Hour)); !errors.Is(err, manifest.ErrExpired) {
		t.Errorf("expired rollout: %v", err)
	}
	bad, _ := manifest.Sign(manifest.TypeRollout, payload, key(t, 9))
	if _, err := root.VerifyRollout(bad, r0); !errors.Is(err, manifest.ErrThreshold) {
		t.Errorf("rollout signed by an unknown key: %v", err)
	}
	head, _ := manifest.Sign(manifest.TypeHead, payload, privs(t, 0, 1)...)
	if _, err := root.VerifyRollout(head, r0); !errors.Is(err, manifest.ErrMalformed) {
		t.Errorf("a head envelope taken for a rollout: %v", err)
	}
}

func TestRolloutValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*manifest.Rollout)
		want   string
	}{
		{"no stages", func(r *manifest.Rollout) { r.Stages = nil }, "stages"},
		{"percent down", func(r *manifest.Rollout) { r.Stages[2].Percent = 10 }, "percent"},
		{"percent over 100", func(r *manifest.Rollout) { r.Stages[2].Percent = 101 }, "percent"},
		{"empty stage", func(r *manifest.Rollout) { r.Stages[1].Percent = 0 }, "neither percent nor tags"},
		{"bad tag", func(r *manifest.Rollout) { r.TargetTags = []string{"a b"} }, "tag"},
		{"bad state", func(r *manifest.Rollout) { r.State = "stopped" }, "state"},
		{"ratio", func(r *manifest.Rollout) { r.Halt.MaxFailureRatio = 2 }, "halt"},
		{"opened out of range", func(r *manifest.Rollout) { r.Opened, r.OpenedAt = 3, r0 }, "opened"},
		{"no release", func(r *manifest.Rollout) { r.Release = 0 }, "release"},
		{"bad window", func(r *manifest.Rollout) { r.Stages[1].Windows = []string{"Mon 25:00-26:00"} }, "window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleRollout()
			tt.change(r)
			err := r.Validate()
			if !errors.Is(err, manifest.ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error about %s", err, tt.want)
			}
		})
	}
}

func TestRolloutSchedule(t *testing.T) {
	r := *sampleRollout()
	if got := r.StageOpens(2); !got.Equal(r0.Add(3 * time.Hour)) {
		t.Errorf("stage 2 opens %s", got)
	}
	if k := r.OpenStage(r0.Add(90 * time.Minute)); k != 1 {
		t.Errorf("open stage at 1h30: %d", k)
	}
	// Paused 30 minutes into stage 1 for 5 hours: resumed, stage 1 still has
	// 90 minutes to soak.
	p := r.Pause(r0.Add(90 * time.Minute))
	res := p.Resume(r0.Add(390 * time.Minute))
	if res.State != manifest.RolloutRunning || res.Opened != 1 || !res.StageOpens(2).Equal(r0.Add(480*time.Minute)) {
		t.Errorf("after resume: %+v, stage 2 opens %s", res, res.StageOpens(2))
	}
	pr, err := r.Promote(r0.Add(10 * time.Minute))
	if err != nil || pr.Opened != 1 || !pr.StageOpens(1).Equal(r0.Add(10*time.Minute)) || !pr.StageOpens(2).Equal(r0.Add(130*time.Minute)) {
		t.Errorf("promote: %+v %v", pr, err)
	}
	if _, err := r.Promote(r0.Add(10 * time.Hour)); err == nil {
		t.Error("promote past the last stage succeeded")
	}
	if a := r.Abort(); a.State != manifest.RolloutAborted {
		t.Errorf("abort: %s", a.State)
	}
}
