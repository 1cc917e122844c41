package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/ratecap"
)

// clientFlags are how client commands reach a running node.
type clientFlags struct {
	addr, token string
	asJSON      bool
}

func (c *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.addr, "api", "127.0.0.1:7780", "address of the node's local API")
	cmd.Flags().StringVar(&c.token, "api-token", "", "API token, when the node requires one (or PATCHMESH_API_TOKEN)")
	cmd.Flags().BoolVar(&c.asJSON, "json", false, "print JSON")
}

func (c *clientFlags) client() *api.Client {
	return api.NewClient(c.addr, firstNonEmpty(c.token, envOr("PATCHMESH_API_TOKEN")))
}

// apiErr maps an unreachable node to its exit code.
func apiErr(err error) error {
	if errors.Is(err, api.ErrUnreachable) {
		return withCode(exitNoNode, err)
	}
	return err
}

func newStatusCmd(a *app) *cobra.Command {
	var c clientFlags
	var site bool
	cmd := &cobra.Command{
		Use:   "status [--api ADDR] [--site]",
		Short: "Show a running node's state: release, progress, peers, bytes, errors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := c.client().Status(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if site {
				if st.Site == nil {
					return errors.New("status --site: the node has no site (no site key)")
				}
				if c.asJSON {
					return printJSON(a.stdout, st.Site)
				}
				printSite(a, st.Site)
				return nil
			}
			if c.asJSON {
				return printJSON(a.stdout, st)
			}
			printStatus(a, st)
			return nil
		},
	}
	c.register(cmd)
	cmd.Flags().BoolVar(&site, "site", false, "show the node's whole site, from its members' gossip")
	return cmd
}

// printSite prints a site view: its summary line, savings, then a member a line.
func printSite(a *app, v *api.SiteView) {
	fmt.Fprintf(a.stdout, "site %s: %s\n", v.Site, v.Summary)
	fmt.Fprintf(a.stdout, "WAN saving: %.1f%% over 7 days (%s WAN, %s LAN), %.1f%% over 28 days\n",
		100*v.Saving7d, humanBytes(v.WAN7d), humanBytes(v.LAN7d), 100*v.Saving28d)
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "member\tstate\trelease\tlast check\toutcome\tfailures\tWAN 7d\tLAN 7d\tserved 28d")
	for _, n := range v.Nodes {
		checked := "-"
		if !n.LastCheck.IsZero() {
			checked = n.LastCheck.Local().Format(time.DateTime)
		}
		rel, out := memberCells(n)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.Name, n.State, rel, checked, out, n.Failures,
			humanBytes(n.WAN7d), humanBytes(n.LAN7d), humanBytes(n.Served28d))
	}
	_ = w.Flush()
}

// memberCells are a site member's release ("-" for none) and last outcome,
// with its message where the outcome is a failure, as the site and fleet
// tables show them.
func memberCells(n api.SiteNode) (release, outcome string) {
	release, outcome = n.Version, n.Outcome
	if release == "" {
		release = "-"
	}
	if n.Message != "" && failingOutcomeText(outcome) {
		outcome += ": " + n.Message
	}
	return release, outcome
}

// failingOutcomeText reports whether a check outcome is worth its message.
func failingOutcomeText(o string) bool {
	switch o {
	case "failed", "rolled-back", "refused", "aborted", "skipped-bad":
		return true
	}
	return false
}

// capsLine says the rate caps in force, or "" when none is set.
func capsLine(c *api.Caps) string {
	if c == nil || c.WAN == 0 && c.SiteWAN == 0 && c.LANUpload == 0 {
		return ""
	}
	var parts []string
	if c.WAN > 0 {
		p := "WAN " + ratecap.Rate(c.WAN).String()
		if c.UpdateNow {
			p += " (update now)"
		}
		parts = append(parts, p)
	}
	if c.SiteWAN > 0 {
		parts = append(parts, "site WAN "+ratecap.Rate(c.SiteWAN).String())
	}
	if c.LANUpload > 0 {
		parts = append(parts, "LAN upload "+ratecap.Rate(c.LANUpload).String())
	}
	line := strings.Join(parts, ", ")
	if waited := c.WANThrottledSeconds + c.LANThrottledSeconds; waited >= 1 {
		line += "; waited " + time.Duration(waited*float64(time.Second)).Round(time.Second).String()
	}
	return line
}

// triggerText says what made a check run, from its trigger: " (asked)" and
// the like, or nothing for a trigger it does not know.
func triggerText(t string) string {
	s := map[string]string{"start": "at start", "schedule": "on schedule", "retry": "retry after a failure", "asked": "asked",
		"site": "a site member had a newer release"}[t]
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func printStatus(a *app, st *api.Status) {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "node\t%s (up %s)\n", st.Node.Name, time.Duration(st.Node.UptimeSeconds*float64(time.Second)).Round(time.Second))
	if st.Node.Site != "" {
		fmt.Fprintf(w, "site\t%s, %d of %d peer(s) alive%s, up to %d WAN fetches at once\n", st.Node.Site, st.Node.PeersAlive, st.Node.PeersKnown, map[bool]string{true: ", distribution point"}[st.Node.Role == "dp"], st.Node.WANFetches)
	}
	if c := capsLine(st.Caps); c != "" {
		fmt.Fprintf(w, "caps\t%s\n", c)
	}
	fmt.Fprintf(w, "channel\t%s\n", st.Channel)
	if st.Current != nil {
		fmt.Fprintf(w, "current\t%s (sequence %d)\n", st.Current.Version, st.Current.Sequence)
	} else {
		fmt.Fprintf(w, "current\tnone yet\n")
	}
	if st.Previous != nil {
		fmt.Fprintf(w, "previous\t%s (sequence %d)\n", st.Previous.Version, st.Previous.Sequence)
	}
	if p := st.Progress; p != nil {
		fmt.Fprintf(w, "progress\t%s %s: %d/%d chunks, %s/%s\n", p.Phase, p.Version, p.ChunksDone, p.ChunksTotal, humanBytes(p.BytesDone), humanBytes(p.BytesTotal))
	}
	if lc := st.LastCheck; lc != nil {
		fmt.Fprintf(w, "last check\t%s %s: %s%s\n", lc.Finished.Local().Format(time.DateTime), lc.Outcome, lc.Message, triggerText(lc.Trigger))
	}
	if !st.NextCheck.IsZero() {
		fmt.Fprintf(w, "next check\t%s\n", st.NextCheck.Local().Format(time.DateTime))
	}
	if r := st.Rollout; r != nil {
		stage := "none"
		if r.Stage >= 0 {
			stage = fmt.Sprintf("%d of %d (%s)", r.Stage, r.Stages, r.StageName)
		}
		fmt.Fprintf(w, "rollout\t%s %s: %s; stage %s, bucket %.2f%s\n", r.Version, r.State, r.Action, stage, r.Bucket, map[bool]string{true: ", site canary"}[r.Canary])
		fmt.Fprintf(w, "\t%s\n", r.Reason)
		fmt.Fprintf(w, "site health\t%d applied, %d failed\n", r.SiteApplied, r.SiteFailed)
		if r.Halted {
			fmt.Fprintf(w, "HALTED\t%s\n", r.HaltReason)
			for _, f := range r.Failing {
				fmt.Fprintf(w, "\t%s: %s\n", f.Name, f.Reason)
			}
		}
	}
	if wd := st.Window; wd != nil {
		windows := strings.Join(wd.Windows, ", ")
		if windows == "" {
			windows = "any time"
		}
		if len(wd.StageWindows) > 0 {
			windows += "; rollout stage: " + strings.Join(wd.StageWindows, ", ")
		}
		state := "closed"
		if wd.Open {
			state = "open"
		}
		fmt.Fprintf(w, "window\t%s (local time): %s\n", windows, state)
		if wd.Waiting {
			fmt.Fprintf(w, "\t%s; patchmesh apply-now applies it now\n", wd.Reason)
		}
	}
	fmt.Fprintf(w, "bytes\tWAN %s, LAN %s (%.1f%% saved), served %s\n", humanBytes(st.Bytes.WAN), humanBytes(st.Bytes.LAN), st.Bytes.SavingPercent, humanBytes(st.Bytes.Served))
	for _, s := range st.Sources {
		state := "ok"
		if !s.Healthy {
			state = "FAILING: " + s.LastError
		}
		fmt.Fprintf(w, "source\t%s %s\n", s.URL, state)
	}
	w.Flush()
	if len(st.Channels) > 1 {
		// The lines above are the first channel's; here is every channel.
		fmt.Fprintln(a.stdout, "\nchannels:")
		cw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(cw, "  NAME\tINSTALL DIR\tCURRENT\tLAST CHECK\tWAITS")
		for _, c := range st.Channels {
			cur, last, waits := "none yet", "-", "-"
			if c.Current != nil {
				cur = fmt.Sprintf("%s (sequence %d)", c.Current.Version, c.Current.Sequence)
			}
			if lc := c.LastCheck; lc != nil {
				last = fmt.Sprintf("%s %s", lc.Finished.Local().Format(time.DateTime), lc.Outcome)
			}
			switch {
			case c.Window != nil && c.Window.Waiting:
				waits = c.Window.Reason
			case c.Rollout != nil && c.Rollout.Action != "apply":
				waits = c.Rollout.Reason
			}
			fmt.Fprintf(cw, "  %s\t%s\t%s\t%s\t%s\n", c.Name, c.InstallDir, cur, last, waits)
		}
		cw.Flush()
	}
	if len(st.Peers) > 0 {
		fmt.Fprintln(a.stdout, "\npeers:")
		pw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(pw, "  NAME\tSTATE\tRUNS\tHOLDS\tFROM IT\tTO IT")
		for _, p := range st.Peers {
			name := p.Name
			if p.Self {
				name += " (self)"
			}
			fmt.Fprintf(pw, "  %s\t%s\t%s\t%s\t%s\t%s\n", name, p.State, versionOf(st, p.Running), versionOf(st, p.Holding), humanBytes(p.BytesFrom), humanBytes(p.BytesTo))
		}
		pw.Flush()
	}
	if len(st.Errors) > 0 {
		fmt.Fprintln(a.stdout, "\nrecent errors and refusals:")
		for i, e := range st.Errors {
			if i == 5 {
				break
			}
			fmt.Fprintf(a.stdout, "  %s %-8s %s\n", e.Time.Local().Format(time.TimeOnly), e.Kind, oneLine(e.Message))
		}
	}
}

// versionOf names release sequence seq by its version when this node knows
// it, as the dashboard does.
func versionOf(st *api.Status, seq uint64) string {
	if seq == 0 {
		return "-"
	}
	for _, r := range st.Releases {
		if r.Sequence == seq {
			return r.Version
		}
	}
	return fmt.Sprintf("#%d", seq)
}

func newReleasesCmd(a *app) *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use:   "releases [--api ADDR]",
		Short: "List the releases a node holds, with their state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rels, err := c.client().Releases(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if c.asJSON {
				return printJSON(a.stdout, rels)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tSEQ\tSTATE\tSIZE\tWAN\tLAN\tREASON")
			for _, r := range rels {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Version, r.Sequence, r.State, humanBytes(r.Bytes), humanBytes(r.FromWAN), humanBytes(r.FromLAN), oneLine(r.Reason))
			}
			return w.Flush()
		},
	}
	c.register(cmd)
	return cmd
}

func newUpdateCmd(a *app) *cobra.Command {
	var (
		c      clientFlags
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "update [--api ADDR]",
		Short: "Make a running node check its sources now (and apply what it finds)",
		Long: `update asks a running node to check its sources now, as the schedule would, and
waits for the outcome (fetch and apply included) unless --no-wait. Exit code 3 when the
node refused the release or rolled it back, 1 when the check failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := c.client().Check(cmd.Context(), !noWait)
			if err != nil {
				return apiErr(err)
			}
			return c.checkOutcome(a, "update", "check requested", res, noWait)
		},
	}
	c.register(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the check is requested")
	return cmd
}

func newRollbackCmd(a *app) *cobra.Command {
	var (
		c       clientFlags
		reason  string
		channel string
	)
	cmd := &cobra.Command{
		Use:   "rollback [--api ADDR] [--reason TEXT] [--channel NAME]",
		Short: "Switch a running node back to its previous release",
		Long: `rollback switches the node's current link back to the previous release and marks
the one it leaves bad, so the node does not apply it again; a newer release is applied
as usual.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := c.client().Rollback(cmd.Context(), channel, reason)
			if err != nil {
				return apiErr(err)
			}
			if c.asJSON {
				return printJSON(a.stdout, res)
			}
			fmt.Fprintf(a.stdout, "rolled back from %s to %s\n", res.From, res.To)
			return nil
		},
	}
	c.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the release")
	cmd.Flags().StringVar(&channel, "channel", "", "the channel to roll back, on a node that follows several (default: its first)")
	return cmd
}

// checkOutcome prints the result of a check the node ran for verb (update,
// apply-now), or asked shows that it was queued, and turns its outcome into
// the exit code: 3 when the node refused the release or rolled it back, 1
// when the check failed.
func (c *clientFlags) checkOutcome(a *app, verb, asked string, res *api.CheckResult, noWait bool) error {
	switch {
	case c.asJSON:
		if err := printJSON(a.stdout, res); err != nil {
			return err
		}
	case noWait:
		fmt.Fprintln(a.stdout, asked)
	default:
		fmt.Fprintf(a.stdout, "%s: %s\n", res.Outcome, res.Message)
	}
	switch res.Outcome {
	case "refused", "rolled-back", "skipped-bad":
		return withCode(exitRefused, fmt.Errorf("%s: %s", verb, res.Outcome))
	case "failed":
		return fmt.Errorf("%s: %s", verb, strings.TrimSpace(res.Message))
	}
	return nil
}
