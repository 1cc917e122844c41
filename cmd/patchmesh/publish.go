package main

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/delta"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/ratecap"
)

func newPublishCmd(a *app) *cobra.Command {
	var (
		repoDir, channel, version string
		keyFiles                  []string
		seq                       uint64
		target                    manifest.Target
		hooks                     manifest.Hooks
		headTTL, manifestTTL      time.Duration
		asJSON                    bool
		deltaBases                int
		deltaLevel                string
		deltaWindow, deltaGroup   int
		compress                  string
		pending                   bool
		plan                      rolloutPlan
		caps                      channelCapFlags
	)
	cmd := &cobra.Command{
		Use:   "publish --repo DIR --key FILE --channel NAME --version V SRC_DIR",
		Short: "Chunk a directory into a signed release in a static repository",
		Long: `publish cuts every file of SRC_DIR into content-defined chunks, writes the chunks
the repository lacks, then the signed manifest, then switches the channel head: a
reader sees the old release or the new one, never half of one. A new version costs
only the chunks that changed; the summary says how many bytes were new. For the
files that changed it also writes deltas against the previous release (--deltas):
a node that holds that release fetches them instead of the new chunks.

It refuses a version or sequence not newer than the channel's head, an empty tree,
unreadable files, special files, and symlinks that point outside the tree. When the
repository holds its trust root (root.json), it refuses a --key outside that root and
fewer keys than its threshold, before writing anything. With --pending, too few keys
leave the release pending, the head unchanged, until co-signers complete it with
patchmesh sign.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keyFiles) == 0 {
				return withCode(exitUsage, fmt.Errorf("publish: --key is required"))
			}
			if err := needPath("publish", args[0]); err != nil {
				return err
			}
			keys, err := loadKeys(keyFiles)
			if err != nil {
				return err
			}
			dlevel, err := delta.ParseLevel(deltaLevel)
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("publish: --delta-level: %w", err))
			}
			clevel, err := chunk.ParseCompression(compress)
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("publish: --compress: %w", err))
			}
			ro, err := plan.rollout()
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("publish: %w", err))
			}
			chCaps, err := caps.caps(cmd.Flags(), repoDir, channel)
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("publish: %w", err))
			}
			bar := newProgressBar(a.stderr, "publishing")
			sum, err := repo.Publish(cmd.Context(), repoDir, args[0], repo.PublishOptions{
				Channel: channel, Version: version, Sequence: seq, Keys: keys,
				Target: target, Hooks: hooks, HeadTTL: headTTL, Rollout: ro, ManifestTTL: manifestTTL, Compress: clevel, Caps: chCaps,
				Pending:  pending,
				Deltas:   repo.DeltaOptions{Off: deltaBases <= 0, Bases: deltaBases, Level: dlevel, Window: deltaWindow << 20, Group: deltaGroup << 20},
				Progress: func(p repo.Progress) { bar.update(p.Bytes, p.BytesTotal) },
			})
			bar.finish()
			if err != nil {
				if errors.Is(err, repo.ErrNotNewer) || errors.Is(err, repo.ErrEmptyTree) || errors.Is(err, repo.ErrBadTree) ||
					errors.Is(err, manifest.ErrUnknownKey) || errors.Is(err, manifest.ErrThreshold) || errors.Is(err, repo.ErrPending) {
					return withCode(exitRefused, err)
				}
				return err
			}
			if asJSON {
				return printJSON(a.stdout, sum)
			}
			if sum.Pending {
				fmt.Fprintf(a.stdout, "pending %s %s (sequence %d): the head did not move\n", sum.Channel, sum.Version, sum.Sequence)
				printSignStatus(a, repoDir, sum.Signing)
				return nil
			}
			fmt.Fprintf(a.stdout, "published %s %s (sequence %d)\n", sum.Channel, sum.Version, sum.Sequence)
			if sum.PreviousVersion != "" {
				fmt.Fprintf(a.stdout, "  replaces      %s (sequence %d)\n", sum.PreviousVersion, sum.PreviousSeq)
			}
			fmt.Fprintf(a.stdout, "  files         %d (%d symlinks, %d hard links, %d directories listed)\n", sum.Files, sum.Links, sum.Hardlinks, sum.Dirs)
			fmt.Fprintf(a.stdout, "  size          %s in %d chunks (%d unique)\n", humanBytes(sum.Bytes), sum.Chunks, sum.UniqueChunks)
			pct := 0.0
			if sum.Bytes > 0 {
				pct = 100 * float64(sum.NewBytes) / float64(sum.Bytes)
			}
			fmt.Fprintf(a.stdout, "  new chunks    %d, %s (%.2f%% of the release)\n", sum.NewChunks, humanBytes(sum.NewBytes), pct)
			if sum.Deltas > 0 {
				fmt.Fprintf(a.stdout, "  deltas        %d, %s rebuilding %s of new chunks for nodes that hold the previous release\n", sum.Deltas, humanBytes(sum.DeltaBytes), humanBytes(sum.DeltaOutput))
			}
			fmt.Fprintf(a.stdout, "  deduplicated  %s already in the repository, %s repeated inside the release\n", humanBytes(sum.ReusedBytes), humanBytes(sum.DuplicateBytes))
			fmt.Fprintf(a.stdout, "  manifest      %s (%s", sum.ManifestPath, humanBytes(sum.ManifestBytes))
			if sum.ManifestZstBytes > 0 {
				fmt.Fprintf(a.stdout, "; %s compressed", humanBytes(sum.ManifestZstBytes))
			}
			if sum.ManifestDeltaBytes > 0 {
				fmt.Fprintf(a.stdout, "; %s as a delta against the previous one", humanBytes(sum.ManifestDeltaBytes))
			}
			fmt.Fprintln(a.stdout, ")")
			if ro != nil {
				fmt.Fprintf(a.stdout, "  rollout       %d stages (patchmesh rollout status --repo %s --channel %s)\n", len(ro.Stages), repoDir, channel)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&repoDir, "repo", "", "repository folder (created if missing) (required)")
	f.StringArrayVar(&keyFiles, "key", nil, "signing key file (repeatable, for thresholds) (required)")
	f.StringVar(&channel, "channel", "stable", "channel to publish to")
	f.StringVar(&version, "version", "", "version label, e.g. 1.4.2 (required)")
	f.StringVar(&compress, "compress", chunk.CompressDefault.String(), "chunk file compression where it pays: default (zstd fastest), off, fastest, better or best; nodes must be new enough to read compressed chunks")
	f.Uint64Var(&seq, "sequence", 0, "manifest sequence; 0: one more than the head's")
	f.StringSliceVar(&target.OS, "os", nil, "operating systems this release is for (GOOS names; empty: any)")
	f.StringSliceVar(&target.Arch, "arch", nil, "architectures this release is for (GOARCH names; empty: any)")
	f.StringSliceVar(&target.Replaces, "replaces", nil, "versions this release may replace, as globs (e.g. 1.4.*; empty: any)")
	f.StringVar(&hooks.PreActivate, "pre-activate", "", "file of the release that nodes run before switching to it")
	f.StringVar(&hooks.HealthCheck, "health-check", "", "file of the release that nodes run after switching; failure rolls back")
	f.DurationVar(&headTTL, "head-ttl", 7*24*time.Hour, "how long the channel head stays valid")
	f.DurationVar(&manifestTTL, "manifest-ttl", 365*24*time.Hour, "how long the manifest stays valid")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	f.BoolVar(&pending, "pending", false, "with fewer keys than the trust root's threshold, keep the release pending for patchmesh sign instead of refusing")
	f.IntVar(&deltaBases, "deltas", 1, "make deltas against this many earlier releases (0: none)")
	f.StringVar(&deltaLevel, "delta-level", "best", "delta effort: best (smallest), better (about half the publish time, a little larger), or fast (larger still, seldom quicker than better)")
	f.IntVar(&deltaGroup, "delta-group", 4, "MiB of new chunks one delta makes at most (at most 8): more is fewer deltas, each decoded with more memory on nodes")
	f.IntVar(&deltaWindow, "delta-window", 0, fmt.Sprintf("MiB of each base file a delta uses as dictionary (at most 16; 0: the level's, %d for best, %d for better, %d for fast): less is quicker, and less memory on nodes",
		repo.DefaultWindow(delta.Best)>>20, repo.DefaultWindow(delta.Better)>>20, repo.DefaultWindow(delta.Fast)>>20))
	plan.addFlags(f)
	caps.addFlags(f)
	_ = cmd.MarkFlagRequired("repo")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

// channelCapFlags are the channel's default rate caps a head carries.
type channelCapFlags struct{ wan, siteWAN, lanUpload ratecap.Rate }

func (c *channelCapFlags) addFlags(f *pflag.FlagSet) {
	f.Var(&c.wan, "channel-wan-rate", "default WAN cap of every node of the channel, e.g. 10Mbit (nodes may only tighten it; \"off\" clears it; nodes older than caps refuse a head with caps); unset: the previous head's")
	f.Var(&c.siteWAN, "channel-site-wan-rate", "default WAN cap of each whole site, shared by the members that fetch from the WAN; unset: the previous head's")
	f.Var(&c.lanUpload, "channel-lan-upload-rate", "default cap on each node's uploads to its site peers; unset: the previous head's")
}

// caps returns the caps for the new head: the previous head's with the flags
// given over them, or nil when no flag was given (publish keeps the previous).
func (c *channelCapFlags) caps(f *pflag.FlagSet, repoDir, channel string) (*manifest.ChannelCaps, error) {
	if !f.Changed("channel-wan-rate") && !f.Changed("channel-site-wan-rate") && !f.Changed("channel-lan-upload-rate") {
		return nil, nil
	}
	var out manifest.ChannelCaps
	if prev, err := repo.ReadHeadUnverified(repoDir, channel); err == nil && prev.Caps != nil {
		out = *prev.Caps
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read the channel's caps: %w", err)
	}
	if f.Changed("channel-wan-rate") {
		out.WAN = int64(c.wan)
	}
	if f.Changed("channel-site-wan-rate") {
		out.SiteWAN = int64(c.siteWAN)
	}
	if f.Changed("channel-lan-upload-rate") {
		out.LANUpload = int64(c.lanUpload)
	}
	return &out, nil
}
