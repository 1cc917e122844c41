package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchmesh/patchmesh/manifest/mirror"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

// mirrorOptions are the flags of `patchmesh mirror`.
type mirrorOptions struct {
	repoDir, work, channel, version string
	keyFiles                        []string
	index, urlList, validate, proxy string
	every, timeout, idle            time.Duration
	validateTimeout, headTTL        time.Duration
	deltas                          int
	asJSON                          bool
}

func (o *mirrorOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.repoDir, "repo", "", "repository folder to publish into (required)")
	f.StringArrayVar(&o.keyFiles, "key", nil, "signing key file (repeatable, for thresholds) (required)")
	f.StringVar(&o.work, "work", "", "work folder kept between runs: the last tree and partial downloads (required)")
	f.StringVar(&o.channel, "channel", "stable", "channel to publish to")
	f.StringVar(&o.version, "version", "", "version label of the release; empty: <UTC date>.<time>.<sequence>")
	f.StringVar(&o.index, "index", "", "the vendor's index, relative to UPSTREAM: a sha256sums file or JSON list; every file is checked against it")
	f.StringVar(&o.urlList, "url-list", "", "file listing the URLs to fetch, one a line, instead of crawling UPSTREAM")
	f.StringVar(&o.validate, "validate", "", "shell command run in the collected tree before publishing; a nonzero exit publishes nothing")
	f.DurationVar(&o.validateTimeout, "validate-timeout", 10*time.Minute, "time the validator may take")
	f.StringVar(&o.proxy, "proxy", "", "HTTP proxy for the upstream (default: HTTP_PROXY/HTTPS_PROXY/NO_PROXY)")
	f.DurationVar(&o.every, "every", 0, "run again at this interval until stopped (0: once)")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "time to connect and get response headers")
	f.DurationVar(&o.idle, "idle-timeout", 30*time.Second, "a download with no byte for this long fails (and is resumed)")
	f.DurationVar(&o.headTTL, "head-ttl", 7*24*time.Hour, "how long the channel head stays valid; an unchanged run renews a head past half its life")
	f.IntVar(&o.deltas, "deltas", 1, "make deltas against this many earlier releases (0: none)")
	f.BoolVar(&o.asJSON, "json", false, "print each run's result as JSON")
}

func newMirrorCmd(a *app) *cobra.Command {
	var o mirrorOptions
	cmd := &cobra.Command{
		Use:   "mirror --repo DIR --key FILE --work DIR [--index FILE] UPSTREAM",
		Short: "Collect a vendor's update tree and publish it as a signed release when it changed",
		Long: `mirror collects a vendor's update tree from UPSTREAM — an http(s):// URL, an ftp://
URL, file:///dir or a folder — checks it, and publishes it into the repository as a
signed release when it differs from the channel's head; nodes then spread it, and
their --serve-files view gives it to the vendor's own agents.

The files are those the vendor's index lists (--index: a sha256sums file or a JSON
list of {"path", "size", "sha256"}; each file is checked against it), those of
--url-list, or, for http(s), every link below UPSTREAM's index page, folders
included; a folder is walked. FTP needs --index.

Files the index (or a conditional GET) says are unchanged are taken from the work
folder; a cut download resumes where it stopped. A file that does not match the
index, or a --validate command that exits nonzero, publishes nothing and leaves the
repository as it was (exit 3).

Exit codes: 0 published or unchanged, 1 failure (network, disk), 2 usage, 3 refused.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(o.keyFiles) == 0 || o.repoDir == "" || o.work == "" {
				return withCode(exitUsage, errors.New("mirror: --repo, --key and --work are required"))
			}
			cfg := mirror.Config{Index: o.index, Work: o.work, Repo: o.repoDir, Validate: o.validate, ValidateTimeout: o.validateTimeout,
				Proxy: o.proxy, Timeout: o.timeout, IdleTimeout: o.idle, Logger: a.logger()}
			if len(args) == 1 {
				cfg.Upstream = args[0]
			}
			if o.urlList != "" {
				urls, err := readLines(o.urlList)
				if err != nil {
					return withCode(exitUsage, fmt.Errorf("mirror: --url-list: %w", err))
				}
				cfg.URLs = urls
			}
			if cfg.Upstream == "" && len(cfg.URLs) == 0 {
				return withCode(exitUsage, errors.New("mirror: give UPSTREAM or --url-list"))
			}
			keys, err := loadKeys(o.keyFiles)
			if err != nil {
				return err
			}
			cfg.Publish = repo.PublishOptions{Channel: o.channel, Version: o.version, Keys: keys, HeadTTL: o.headTTL,
				Deltas: repo.DeltaOptions{Off: o.deltas <= 0, Bases: o.deltas}}
			if o.every > 0 && o.version != "" {
				return withCode(exitUsage, errors.New("mirror: --version names one release; leave it out with --every"))
			}
			m, err := mirror.New(cfg)
			if err != nil {
				return withCode(exitUsage, err)
			}
			defer m.Close()
			if o.every > 0 {
				return m.Every(cmd.Context(), o.every, func(res *mirror.Result, err error) {
					if err != nil {
						fmt.Fprintf(a.stderr, "patchmesh: %v\n", err)
						return
					}
					_ = printMirrorResult(a, res, o.asJSON)
				})
			}
			res, err := m.Run(cmd.Context())
			if err != nil {
				if errors.Is(err, mirror.ErrRefused) || errors.Is(err, repo.ErrNotNewer) {
					return withCode(exitRefused, err)
				}
				return err
			}
			return printMirrorResult(a, res, o.asJSON)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func printMirrorResult(a *app, res *mirror.Result, asJSON bool) error {
	if asJSON {
		return printJSON(a.stdout, res)
	}
	if res.Published {
		fmt.Fprintf(a.stdout, "published %s %s (sequence %d): %d files, %s; %d added, %d changed, %d removed\n",
			res.Summary.Channel, res.Version, res.Summary.Sequence, res.Files, humanBytes(res.Bytes), len(res.Added), len(res.Changed), len(res.Removed))
	} else {
		fmt.Fprintf(a.stdout, "unchanged: the repository holds it as %s (%d files, %s)\n", res.Version, res.Files, humanBytes(res.Bytes))
		if res.Renewed {
			fmt.Fprintln(a.stdout, "  head renewed")
		}
	}
	fmt.Fprintf(a.stdout, "  downloaded    %d files, %s (%s resumed); %d files unchanged\n",
		res.Downloaded, humanBytes(res.DownloadedBytes), humanBytes(res.ResumedBytes), res.Kept)
	return nil
}

// readLines reads the non-blank, non-comment lines of a file.
func readLines(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" && !strings.HasPrefix(s, "#") {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}
