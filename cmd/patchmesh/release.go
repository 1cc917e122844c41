package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/node/api"
)

func newReleaseCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Act on one release of a running node",
	}
	cmd.AddCommand(newReleaseRetryCmd(a))
	return cmd
}

func newReleaseRetryCmd(a *app) *cobra.Command {
	var (
		c       clientFlags
		channel string
	)
	cmd := &cobra.Command{
		Use:   "retry VERSION [--api ADDR] [--channel NAME]",
		Short: "Clear a release's bad mark, so the node applies it again",
		Long: `A release whose hook or health check failed, that was rolled back by hand, or
whose activation a crash cut short twice, is marked bad and never applied again.
retry clears the mark once the cause is fixed; the node's next check (patchmesh
update, or the schedule) applies the release again. Exit code 3 when the node holds
no release of VERSION marked bad.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := c.client().Retry(cmd.Context(), channel, args[0])
			if err != nil {
				if errors.Is(err, api.ErrNotBad) {
					return withCode(exitRefused, fmt.Errorf("release retry %s: %w", args[0], err))
				}
				return apiErr(err)
			}
			if c.asJSON {
				return printJSON(a.stdout, res)
			}
			fmt.Fprintf(a.stdout, "cleared the bad mark of %s; run patchmesh update to apply it now\n", strings.Join(res.Cleared, ", "))
			return nil
		},
	}
	c.register(cmd)
	cmd.Flags().StringVar(&channel, "channel", "", "the channel of the release, on a node that follows several (default: its first)")
	return cmd
}
