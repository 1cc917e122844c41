package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

func newSignCmd(a *app) *cobra.Command {
	var (
		repoDir, channel string
		keyFiles         []string
		asJSON           bool
	)
	cmd := &cobra.Command{
		Use:   "sign --repo DIR --key FILE [--channel NAME]",
		Short: "Co-sign a pending release; the head switches once a threshold signed",
		Long: `sign adds signatures to the release that publish --pending left waiting for a
trust root with a threshold above one. The manifest collects signatures first; once a
threshold signed it, it is written and the channel head made, signed by the same
keys; once a threshold signed the head, the head switches and nodes see the release.
With keys held by different people that is two rounds: every signer signs the
manifest, then the head. Each --key must be a key of the repository's root.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(keyFiles) == 0 {
				return withCode(exitUsage, fmt.Errorf("sign: --key is required"))
			}
			keys, err := loadKeys(keyFiles)
			if err != nil {
				return err
			}
			st, err := repo.Sign(repoDir, channel, keys, time.Now())
			if err != nil {
				if errors.Is(err, manifest.ErrUnknownKey) || errors.Is(err, repo.ErrNotNewer) || errors.Is(err, repo.ErrNoPending) {
					return withCode(exitRefused, err)
				}
				return err
			}
			if asJSON {
				return printJSON(a.stdout, st)
			}
			if st.Stage == "done" {
				fmt.Fprintf(a.stdout, "published %s %s (sequence %d): signed by %d of %d required keys\n", st.Channel, st.Version, st.Sequence, len(st.HeadSigners), st.Threshold)
				return nil
			}
			fmt.Fprintf(a.stdout, "pending %s %s (sequence %d): the head did not move\n", st.Channel, st.Version, st.Sequence)
			printSignStatus(a, repoDir, st)
			return nil
		},
	}
	cmd.Flags().StringVar(&repoDir, "repo", "", "repository folder (required)")
	cmd.Flags().StringArrayVar(&keyFiles, "key", nil, "signing key file (repeatable) (required)")
	cmd.Flags().StringVar(&channel, "channel", "stable", "channel whose pending release to sign")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the signing status as JSON")
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

// printSignStatus says what a pending release still needs.
func printSignStatus(a *app, repoDir string, st *repo.SignStatus) {
	if st == nil {
		return
	}
	fmt.Fprintf(a.stdout, "  manifest      signed by %d of %d required keys\n", len(st.ManifestSigners), st.Threshold)
	if st.Stage == "head" {
		fmt.Fprintf(a.stdout, "  head          signed by %d of %d required keys\n", len(st.HeadSigners), st.Threshold)
	}
	ids := make([]string, len(st.Unsigned))
	for i, id := range st.Unsigned {
		ids[i] = string(id)
	}
	fmt.Fprintf(a.stdout, "  next          patchmesh sign --repo %s --channel %s --key KEY, KEY one of: %s\n", repoDir, st.Channel, strings.Join(ids, ", "))
}
