package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/node/api"
)

func newApplyNowCmd(a *app) *cobra.Command {
	var (
		c       clientFlags
		noWait  bool
		channel string
	)
	cmd := &cobra.Command{
		Use:   "apply-now [--api ADDR]",
		Short: "Apply the staged release that waits for a maintenance window, now",
		Long: `A node with maintenance windows (--window, or a rollout stage's) downloads and
stages a release any time and switches to it only inside a window. apply-now
overrides the windows for the release that waits, as the dashboard's "Apply now"
button does; a staged rollout's stages and its site's halt still hold. It waits
for the outcome unless --no-wait. Exit code 3 when no release waits for a window
or the release was refused or rolled back, 1 when the apply failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := c.client().ApplyNow(cmd.Context(), channel, !noWait)
			if err != nil {
				if errors.Is(err, api.ErrNothingWaiting) {
					return withCode(exitRefused, fmt.Errorf("apply-now: %w", err))
				}
				return apiErr(err)
			}
			return c.checkOutcome(a, "apply-now", "apply requested", res, noWait)
		},
	}
	c.register(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the apply is requested")
	cmd.Flags().StringVar(&channel, "channel", "", "the channel whose release to apply, on a node that follows several (default: its first)")
	return cmd
}
