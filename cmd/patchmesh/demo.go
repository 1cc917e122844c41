package main

import (
	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/node/demo"
)

func newDemoCmd(a *app) *cobra.Command {
	var opts demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a seed and a site of nodes on loopback and watch a release spread",
		Long: `demo starts a seed and a site of nodes on this machine (loopback only), each with
its own folders under a temporary directory, publishes a sample release, lets it
spread, and prints where each node's bytes came from and the dashboard addresses.
Then it publishes a second version with about 1% of the bytes changed, to show that
only those cross the "WAN". It keeps running until Ctrl-C (or --exit).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f := cmd.Flag("log-level"); f != nil && !f.Changed {
				a.logLevel = "warn" // the demo's own output is the show; logs only for trouble
			}
			opts.Logger = a.logger()
			return demo.Run(cmd.Context(), opts, a.stdout)
		},
	}
	cmd.Flags().IntVar(&opts.Nodes, "nodes", 4, "nodes in the site")
	cmd.Flags().IntVar(&opts.SizeMiB, "size", 32, "size of the sample release in MiB")
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "working folder (default: a temporary folder, removed at the end)")
	cmd.Flags().BoolVar(&opts.Exit, "exit", false, "exit once both releases reached every node")
	return cmd
}
