package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

// rolloutPlan is the staged rollout a publish starts, from its flags.
type rolloutPlan struct {
	stages      []string
	targetTags  []string
	minInstalls int
	maxFailures float64
}

func (p *rolloutPlan) addFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&p.stages, "stage", nil, "a stage of a staged rollout, in order (repeatable): name=N,percent=P,soak=D,tags=a+b,window=W; percent is cumulative (0-100), soak is how long it runs before the next opens, window (repeatable) a maintenance window in each node's local time like \"Mon-Fri 22:00-05:00\" (days joined by +)")
	f.StringSliceVar(&p.targetTags, "target-tag", nil, "with --stage: only nodes carrying one of these tags get the release")
	f.IntVar(&p.minInstalls, "halt-min-installs", 1, "with --stage: a site halts the rollout only after this many of its members tried it")
	f.Float64Var(&p.maxFailures, "halt-failure-ratio", 0, "with --stage: a site halts the rollout when this share (0-1) of its installs failed (0: any failure)")
}

// rollout returns the plan as a document for Publish to complete, nil without stages.
func (p *rolloutPlan) rollout() (*manifest.Rollout, error) {
	if len(p.stages) == 0 {
		if len(p.targetTags) > 0 {
			// A target is a rollout of one stage that holds every node.
			p.stages = []string{"percent=100"}
		} else {
			return nil, nil
		}
	}
	r := &manifest.Rollout{TargetTags: p.targetTags, State: manifest.RolloutRunning,
		Halt: manifest.Halt{MinInstalls: p.minInstalls, MaxFailureRatio: p.maxFailures}}
	for _, spec := range p.stages {
		s, err := parseStage(spec)
		if err != nil {
			return nil, err
		}
		r.Stages = append(r.Stages, s)
	}
	return r, nil
}

// parseStage reads name=N,percent=P,soak=D,tags=a+b,window=W (window repeatable).
func parseStage(spec string) (manifest.Stage, error) {
	var s manifest.Stage
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return s, fmt.Errorf("--stage %q: %q is not key=value", spec, kv)
		}
		switch k {
		case "name":
			s.Name = v
		case "percent":
			f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if err != nil {
				return s, fmt.Errorf("--stage %q: percent: %w", spec, err)
			}
			s.Percent = f
		case "soak":
			d, err := time.ParseDuration(v)
			if err != nil {
				return s, fmt.Errorf("--stage %q: soak: %w", spec, err)
			}
			s.Soak = manifest.Duration(d)
		case "tags":
			s.Tags = strings.Split(v, "+")
		case "window":
			s.Windows = append(s.Windows, v)
		default:
			return s, fmt.Errorf("--stage %q: unknown key %q (name, percent, soak, tags, window)", spec, k)
		}
	}
	return s, nil
}

func newRolloutCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout status|pause|resume|promote|abort --repo DIR --channel C",
		Short: "Show or steer the staged rollout of a channel's release",
		Long: `A release published with --stage rolls out stage by stage: each node draws a bucket
from its identity and the release, every site has a canary, and a stage opens when
the one before has soaked. Each site halts the rollout on its own when installs fail.
These commands read the channel's signed rollout document (channels/C/rollout.json)
and, but for status, write the next one, signed and sequenced; nodes obey the newest.

  status   print the rollout and which stage is open
  pause    no stage opens and no node applies until resume
  resume   run again; the schedule moves by the time paused
  promote  open the next stage now
  abort    nodes that applied the release roll back to their previous one; no
           other node applies it`,
	}
	for _, action := range []string{"status", "pause", "resume", "promote", "abort"} {
		cmd.AddCommand(newRolloutActionCmd(a, action))
	}
	return cmd
}

func newRolloutActionCmd(a *app, action string) *cobra.Command {
	var (
		repoDir, channel, note string
		keyFiles               []string
		ttl                    time.Duration
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   action + " --repo DIR --channel C" + map[bool]string{true: "", false: " --key FILE"}[action == "status"],
		Short: action + " the channel's staged rollout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if action == "status" {
				r, expired, err := repo.ReadRollout(repoDir, channel)
				if err != nil {
					return rolloutErr(err)
				}
				return printRollout(a.stdout, r, expired, asJSON)
			}
			if len(keyFiles) == 0 {
				return withCode(exitUsage, fmt.Errorf("rollout %s: --key is required", action))
			}
			keys, err := loadKeys(keyFiles)
			if err != nil {
				return err
			}
			r, err := repo.UpdateRollout(repoDir, channel, ttl, keys, func(r manifest.Rollout, now time.Time) (manifest.Rollout, error) {
				if r.State == manifest.RolloutAborted && action != "abort" {
					return r, fmt.Errorf("rollout %s: the rollout of %s was aborted; publish a new release", action, r.Version)
				}
				var err error
				switch action {
				case "pause":
					if r.State != manifest.RolloutPaused {
						r = r.Pause(now)
					}
				case "resume":
					r = r.Resume(now)
				case "promote":
					r, err = r.Promote(now)
				case "abort":
					r = r.Abort()
				}
				r.Note = note
				return r, err
			})
			if err != nil {
				return rolloutErr(err)
			}
			return printRollout(a.stdout, r, false, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&repoDir, "repo", "", "repository folder (required)")
	f.StringVar(&channel, "channel", "stable", "channel")
	f.BoolVar(&asJSON, "json", false, "print the rollout document as JSON")
	if action != "status" {
		f.StringArrayVar(&keyFiles, "key", nil, "signing key file (repeatable, for thresholds) (required)")
		f.DurationVar(&ttl, "ttl", repo.RolloutTTL, "how long the new rollout document stays valid")
		f.StringVar(&note, "note", "", "why, for the nodes' status and logs")
	}
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func rolloutErr(err error) error {
	if errors.Is(err, repo.ErrNoRollout) || errors.Is(err, manifest.ErrSignature) || errors.Is(err, manifest.ErrThreshold) ||
		errors.Is(err, manifest.ErrMalformed) || errors.Is(err, manifest.ErrMismatch) {
		return withCode(exitRefused, err)
	}
	return err
}

func printRollout(w io.Writer, r *manifest.Rollout, expired, asJSON bool) error {
	if asJSON {
		return printJSON(w, r)
	}
	now := time.Now()
	open := r.OpenStage(now)
	if r.State == manifest.RolloutPaused {
		open = r.OpenStage(r.PausedAt)
	}
	fmt.Fprintf(w, "rollout of %s %s (release %d), document %d: %s\n", r.Channel, r.Version, r.Release, r.Sequence, r.State)
	if r.Note != "" {
		fmt.Fprintf(w, "  note     %s\n", r.Note)
	}
	if len(r.TargetTags) > 0 {
		fmt.Fprintf(w, "  target   nodes tagged %s\n", strings.Join(r.TargetTags, ", "))
	}
	fmt.Fprintf(w, "  halt     a site halts when %.0f%% of its installs failed, after %d\n", 100*r.Halt.MaxFailureRatio, max(r.Halt.MinInstalls, 1))
	for i, s := range r.Stages {
		name := s.Name
		if name == "" {
			name = strconv.Itoa(i)
		}
		state := "opens " + r.StageOpens(i).Local().Format(time.RFC3339)
		if i <= open {
			state = "open since " + r.StageOpens(i).Local().Format(time.RFC3339)
		}
		who := fmt.Sprintf("%g%% of nodes", s.Percent)
		if len(s.Tags) > 0 {
			who += ", tagged " + strings.Join(s.Tags, "+")
		}
		if i == 0 {
			who += ", and a canary in every site"
		}
		if len(s.Windows) > 0 {
			state += "; applies in " + strings.Join(s.Windows, ", ") + " (node local time)"
		}
		fmt.Fprintf(w, "  stage %d  %-10s %-40s soak %-8s %s\n", i, name, who, time.Duration(s.Soak), state)
	}
	fmt.Fprintf(w, "  expires  %s", r.Expires.Local().Format(time.RFC3339))
	if expired {
		fmt.Fprint(w, " (EXPIRED: nodes no longer obey it; resume or pause re-signs it)")
	}
	fmt.Fprintln(w)
	return nil
}
