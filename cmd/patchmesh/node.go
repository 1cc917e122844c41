package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node"
	"github.com/patchmesh/patchmesh/node/service"
)

func newNodeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a node, or write its example config",
	}
	cmd.AddCommand(newNodeRunCmd(a), newNodeInitCmd(a), newNodeScrubCmd(a), newNodeServiceCmd(a))
	return cmd
}

// nodeFlags binds the flags of `node run`: the node's settings to a
// DefaultConfig (so the help shows the defaults), and the CLI's own.
type nodeFlags struct {
	config   string
	memLimit int64
	cfg      node.Config
}

func (f *nodeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "YAML config file (flags and PATCHMESH_* environment variables override it)")
	f.cfg = node.DefaultConfig()
	f.cfg.AddFlags(fs)
	fs.Int64Var(&f.memLimit, "memory-limit", 64<<20, "soft limit of the Go heap in bytes, so the node stays small while it moves large releases (GOMEMLIMIT, when set, wins; 0: none)")
}

// toConfig layers the settings: DefaultConfig, the --config file, then the
// PATCHMESH_* environment variables, then the flags.
func (f *nodeFlags) toConfig(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) (node.Config, error) {
	if err := node.SetFromEnv(fs, lookupEnv); err != nil {
		return node.Config{}, err
	}
	cfg := node.DefaultConfig()
	if f.config != "" {
		var err error
		if cfg, err = node.LoadConfig(f.config); err != nil {
			return cfg, err
		}
	}
	if err := cfg.SetFlags(fs); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func newNodeRunCmd(a *app) *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "run [--config FILE] [flags]",
		Short: "Run a node: keep a channel's release current and share it with the site",
		Long: `run is the long-running node service. It checks its update sources at start,
every --check-interval (with jitter) and when asked ("patchmesh update"), verifies
every head, manifest and chunk against the pinned trust root, fetches only the chunks
it lacks (from its site first when it has a --site-key), assembles the release in a
staging folder and switches --install-dir/current to it atomically, rolling back when
the health check fails. SIGINT or SIGTERM stop it cleanly.

Settings come from --config, then PATCHMESH_* environment variables (e.g.
PATCHMESH_SOURCE=url1,url2, PATCHMESH_DATA=/var/lib/patchmesh), then flags.
A repeatable flag's variable lists its items separated by commas, or by ";" for
--window and the rate schedules (PATCHMESH_WAN_RATE_SCHEDULE="Sat,Sun=off;* 22:00-06:00=50Mbit").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.toConfig(cmd.Flags(), os.LookupEnv)
			if err != nil {
				return withCode(exitUsage, err)
			}
			cfg.Logger = a.logger()
			cfg.Version = buildInfo().Version
			// The live heap of a node is small (tens of MiB) but churns: a
			// soft limit keeps the collector from letting it double.
			if os.Getenv("GOMEMLIMIT") == "" && f.memLimit > 0 {
				debug.SetMemoryLimit(f.memLimit)
			}
			n, err := node.New(cfg)
			if err != nil {
				return withCode(exitUsage, err)
			}
			// Under the Windows service manager, its stop request cancels the node.
			return service.Run(cmd.Context(), "patchmesh-node", n.Run)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func newNodeInitCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "init --out node.yaml",
		Short: "Write a commented example node config",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || out == "-" {
				_, err := fmt.Fprint(a.stdout, node.ExampleConfig)
				return err
			}
			if _, err := os.Stat(out); err == nil {
				return withCode(exitUsage, fmt.Errorf("node init: %s exists; not overwriting it", out))
			}
			if err := repo.WriteFileAtomic(out, []byte(node.ExampleConfig), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "example config written to %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "-", "file to write (\"-\": standard output)")
	return cmd
}

func newNodeScrubCmd(a *app) *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use:   "scrub [--api ADDR]",
		Short: "Make a running node check every stored chunk now",
		Long: `scrub asks a running node to read every chunk in its store and check it against
its CID now, at full speed (the background scrub is paced by --scrub-rate). A
damaged chunk is dropped, never used or served, and fetched again if a kept release
needs it. Exit code 3 when damaged chunks were found (a disk to look at), 1 when the
scrub failed, 4 when the node could not be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := c.client().Scrub(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if c.asJSON {
				if err := printJSON(a.stdout, res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "checked %d chunks (%d bytes) in %s: %d damaged, %d fetched again\n",
					res.Chunks, res.Bytes, res.Finished.Sub(res.Started).Round(time.Millisecond), res.Damaged, res.Refetched)
				for _, c := range res.DamagedCIDs {
					fmt.Fprintf(a.stdout, "damaged: %s\n", c)
				}
				if res.Message != "" {
					fmt.Fprintln(a.stdout, res.Message)
				}
			}
			if res.Damaged > 0 {
				return withCode(exitRefused, fmt.Errorf("scrub: %d damaged chunks dropped", res.Damaged))
			}
			return nil
		},
	}
	c.register(cmd)
	return cmd
}
