package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/manifest/repo"
)

func newRenewCmd(a *app) *cobra.Command {
	var (
		repoDir, channel string
		keyFiles         []string
		ttl              time.Duration
		asJSON           bool
	)
	cmd := &cobra.Command{
		Use:   "renew --repo DIR --key FILE --channel NAME",
		Short: "Re-sign a channel's head with a new expiry, without a new release",
		Long: `Heads expire soon (7 days by default) so that nodes notice a frozen mirror. renew
re-signs the current head of a channel with a fresh issue time and expiry; the release,
sequence and manifest stay the same. Run it from a schedule well before the expiry.
renew refuses when the manifest the head names is missing or does not match the
digest in the head.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(keyFiles) == 0 {
				return withCode(exitUsage, fmt.Errorf("renew: --key is required"))
			}
			keys, err := loadKeys(keyFiles)
			if err != nil {
				return err
			}
			// A head signed by keys the root does not hold is one every node refuses.
			root, err := repo.ReadRoot(repoDir)
			if err == nil && root != nil {
				err = root.CheckSigners(keys...)
			}
			if err != nil {
				return withCode(exitRefused, fmt.Errorf("renew %s: %w", channel, err))
			}
			h, err := repo.ReadHeadUnverified(repoDir, channel)
			if err != nil {
				return withCode(exitRefused, fmt.Errorf("renew %s: %w", channel, err))
			}
			menv, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(h.Manifest.Path)))
			if err == nil {
				err = h.Manifest.Check(menv)
			}
			if err != nil {
				return withCode(exitRefused, fmt.Errorf("renew %s: manifest %s: %w", channel, h.Manifest.Path, err))
			}
			now := time.Now().UTC().Truncate(time.Second)
			h.Issued, h.Expires = now, now.Add(ttl)
			if err := repo.WriteHead(repoDir, h, keys...); err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, h)
			}
			fmt.Fprintf(a.stdout, "renewed %s %s (sequence %d): valid until %s\n", h.Channel, h.Version, h.Sequence, h.Expires.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&repoDir, "repo", "", "repository folder (required)")
	cmd.Flags().StringArrayVar(&keyFiles, "key", nil, "signing key file (repeatable) (required)")
	cmd.Flags().StringVar(&channel, "channel", "stable", "channel whose head to renew")
	cmd.Flags().DurationVar(&ttl, "head-ttl", 7*24*time.Hour, "how long the renewed head stays valid")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the new head as JSON")
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}
