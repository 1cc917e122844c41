package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

func newVerifyCmd(a *app) *cobra.Command {
	var (
		repoDir, trust string
		channels       []string
		asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "verify --repo DIR --trust FILE [--channel NAME]",
		Short: "Check a repository: trust roots, heads, manifests and every chunk",
		Long: `verify checks a repository folder as a node would: the trust root chain from the
pinned --trust root, the repository's own root.json against that chain (a different
root is a problem), each channel head (signatures, threshold, expiry), the manifest it
names (digest, signatures, paths), every older manifest the repository keeps
(signatures by the keys of their day; expiry is not held against them) and every chunk
and delta object any of them names (bytes against CID and size). It names each
problem and exits 3 when there is any. Chunk files no manifest names are listed as
orphans (space, not a problem) when every channel is checked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(trust)
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("verify: %w", err))
			}
			if err := needPath("verify", repoDir); err != nil {
				return err
			}
			root, err := manifest.ParseTrustRoot(data)
			if err != nil {
				return withCode(exitRefused, fmt.Errorf("verify: trust root %s: %w", trust, err))
			}
			bar := newProgressBar(a.stderr, "verifying")
			rep, err := repo.Verify(cmd.Context(), repoDir, root, repo.VerifyOptions{Channels: channels, Progress: bar.update})
			bar.finish()
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "trust root version %d\n", rep.RootVersion)
				for _, c := range rep.Channels {
					state := "OK"
					if !c.OK {
						state = "FAILED"
					}
					fmt.Fprintf(a.stdout, "channel %-12s %-10s seq %-5d %5d files %10s %6d chunks  %s\n",
						c.Channel, c.Version, c.Sequence, c.Files, humanBytes(c.Bytes), c.Chunks, state)
				}
				for _, o := range rep.Orphans {
					fmt.Fprintf(a.stdout, "ORPHAN %s: no kept manifest names it\n", o)
				}
				for _, p := range rep.Problems {
					fmt.Fprintf(a.stdout, "PROBLEM %s: %s\n", p.Object, p.Error)
				}
			}
			if len(rep.Problems) > 0 {
				return withCode(exitRefused, fmt.Errorf("verify: %d problem(s) found", len(rep.Problems)))
			}
			if !asJSON {
				fmt.Fprintf(a.stdout, "all good: %d manifests, %d chunks, %s checked; %d orphaned chunk files\n", rep.Manifests, rep.Chunks, humanBytes(rep.ChunkBytes), len(rep.Orphans))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repoDir, "repo", "", "repository folder (required)")
	cmd.Flags().StringVar(&trust, "trust", "", "pinned trust root file (required)")
	cmd.Flags().StringArrayVar(&channels, "channel", nil, "channel to check (repeatable; default: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	_ = cmd.MarkFlagRequired("repo")
	_ = cmd.MarkFlagRequired("trust")
	return cmd
}
