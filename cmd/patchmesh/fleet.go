package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newFleetCmd(a *app) *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use:   "fleet --api ADDR [--json]",
		Short: "Show the fleet a seed collects: sites, their nodes' releases, failures, halts, bytes saved",
		Long: `fleet reads the site reports a seed collects (patchmesh serve --report-tokens) from
the seed's API listener (--api, its dashboard address) and prints every site and its nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := c.client().Fleet(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if c.asJSON {
				return printJSON(a.stdout, f)
			}
			fmt.Fprintf(a.stdout, "%d site(s), %d node(s): %d on their site's newest release, %d failing, %d site(s) halted\n",
				len(f.Sites), f.Nodes, f.OnLatest, f.Failing, f.Halted)
			for _, s := range f.Sites {
				v := s.View
				stale := ""
				if s.Stale {
					stale = " (STALE)"
				}
				fmt.Fprintf(a.stdout, "\nsite %s: %s%s\n", v.Site, v.Summary, stale)
				fmt.Fprintf(a.stdout, "  reported by %s at %s; WAN saving %.1f%% over 7 days, %.1f%% over 28 days\n",
					s.Reporter, s.Received.Local().Format(time.DateTime), 100*v.Saving7d, 100*v.Saving28d)
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "  node\tstate\trelease\toutcome\tfailures\tWAN 7d\tLAN 7d")
				for _, n := range v.Nodes {
					rel, out := memberCells(n)
					fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.Name, n.State, rel, out, n.Failures, humanBytes(n.WAN7d), humanBytes(n.LAN7d))
				}
				_ = w.Flush()
			}
			return nil
		},
	}
	c.register(cmd)
	cmd.Flags().Lookup("api").Usage = "address of the seed's API listener (serve --api)"
	cmd.Flags().Lookup("api").DefValue = "127.0.0.1:8781"
	_ = cmd.Flags().Set("api", "127.0.0.1:8781")
	return cmd
}
