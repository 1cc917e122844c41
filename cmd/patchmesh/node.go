package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
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

// nodeFlags binds every flag of `node run`; applyTo copies the ones set (on the
// command line or through PATCHMESH_* environment variables) over the file config.
type nodeFlags struct {
	config, data, install, channel, trust, api, apiToken, caFile, proxy string
	sources, join, p2p                                                  []string
	siteKey, gossip, role, serveRepo, name                              string
	interval, jitter, srcTimeout, idleTimeout                           time.Duration
	siteTimeout                                                         time.Duration
	keep, concurrency                                                   int
	quota                                                               int64
	preActivate, healthCheck                                            string
	mdns                                                                bool
	memLimit                                                            int64
	scrubRate                                                           int64
	scrubInterval                                                       time.Duration
	serveFiles                                                          node.FilesConfig
	proxyCache                                                          node.ProxyCacheConfig
	tags                                                                []string
	rolloutPoll                                                         time.Duration
	caps                                                                node.CapsConfig
	fallbackDelay                                                       time.Duration
	windows                                                             []string
	follow                                                              []string
	report                                                              node.ReportConfig
	reportInterval                                                      time.Duration
}

func (f *nodeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "YAML config file (flags and PATCHMESH_* environment variables override it)")
	fs.StringVar(&f.data, "data", "", "data folder: chunk store and state")
	fs.StringVar(&f.install, "install-dir", "", "install folder: holds the releases and the current link to the running one")
	fs.StringVar(&f.channel, "channel", "", "channel to follow (default stable)")
	fs.StringArrayVar(&f.follow, "follow", nil, "one more channel to follow into its own install folder, NAME=DIR (repeatable; adds to the config file's channels)")
	fs.StringVar(&f.trust, "trust", "", "pinned trust root file")
	fs.StringArrayVar(&f.sources, "source", nil, "update source URL, in order of preference (repeatable): http(s)://, ftp://, file:// or a folder")
	fs.StringVar(&f.api, "api", "", "local API and dashboard address (default 127.0.0.1:7780; \"off\" for none)")
	fs.StringVar(&f.apiToken, "api-token", "", "token required by the API (mandatory when --api is not loopback)")
	fs.StringVar(&f.caFile, "ca-file", "", "extra PEM CA certificates for https sources")
	fs.StringVar(&f.proxy, "proxy", "", "HTTP proxy for sources (default: HTTP_PROXY/HTTPS_PROXY/NO_PROXY)")
	fs.DurationVar(&f.interval, "check-interval", 0, "time between scheduled checks (default 1h)")
	fs.DurationVar(&f.jitter, "check-jitter", 0, "random spread of scheduled checks (default a tenth of the interval)")
	fs.DurationVar(&f.srcTimeout, "source-timeout", 0, "per-request time limit for small files (default 30s)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", 0, "a download with no byte for this long fails (default 15s)")
	fs.IntVar(&f.keep, "keep", 0, "old releases kept besides current and previous (default 2)")
	fs.Int64Var(&f.quota, "quota", 0, "chunk store bytes above which unneeded chunks are collected (default: collect all unneeded)")
	fs.IntVar(&f.concurrency, "concurrency", 0, "chunks fetched at once (default 16)")
	fs.StringVar(&f.preActivate, "pre-activate", "", "command run before switching to a release (split on spaces)")
	fs.StringVar(&f.healthCheck, "health-check", "", "command run after switching; failure rolls back (split on spaces)")
	fs.StringVar(&f.siteKey, "site-key", "", "site key file: join the site mesh (patchmesh keygen --site)")
	fs.StringArrayVar(&f.join, "join", nil, "gossip address of a site member to join (repeatable; none: mDNS discovery)")
	fs.StringVar(&f.gossip, "gossip", "", "gossip listener host:port (default 0.0.0.0:7946)")
	fs.StringArrayVar(&f.p2p, "p2p", nil, "libp2p listener, multiaddr or host:port (repeatable)")
	fs.StringVar(&f.role, "role", "", "\"dp\" marks a distribution point: only they fetch from the WAN when any is alive")
	fs.DurationVar(&f.siteTimeout, "site-timeout", 0, "fetch a chunk from the sources when the site has not delivered it in this long (default 5m)")
	fs.BoolVar(&f.mdns, "mdns", false, "discover site members by mDNS even with --join")
	fs.Int64Var(&f.memLimit, "memory-limit", 64<<20, "soft limit of the Go heap in bytes, so the node stays small while it moves large releases (GOMEMLIMIT, when set, wins; 0: none)")
	fs.StringVar(&f.serveRepo, "serve-repo", "", "serve the repository format on this address for plain clients and other sites")
	fs.StringVar(&f.serveFiles.Addr, "serve-files", "", "serve the current release's files by path on this address, for agents that update from a plain HTTP server")
	fs.BoolVar(&f.serveFiles.Index, "serve-files-index", false, "list folders in the file view (wget --mirror needs it)")
	fs.StringVar(&f.serveFiles.TLSCert, "serve-files-tls-cert", "", "PEM certificate: serve the file view over HTTPS")
	fs.StringVar(&f.serveFiles.TLSKey, "serve-files-tls-key", "", "PEM private key of --serve-files-tls-cert")
	fs.StringVar(&f.proxyCache.Addr, "proxy-cache", "", "run a caching forward HTTP proxy on this address (agents set http_proxy=http://node:port); objects are fetched once per site")
	fs.StringSliceVar(&f.proxyCache.Allow, "proxy-allow", nil, "upstream hosts the proxy serves, comma-separated: host, host:port or *.domain")
	fs.Int64Var(&f.proxyCache.MaxObject, "proxy-max-object", 0, "largest response body the proxy stores; larger ones pass through (default 512 MiB)")
	fs.Int64Var(&f.proxyCache.MaxBytes, "proxy-max-bytes", 0, "bytes of bodies the proxy keeps; the least recently used go first (default 2 GiB)")
	fs.StringVar(&f.name, "name", "", "node name (default: hostname and a hash of the data folder)")
	fs.Int64Var(&f.scrubRate, "scrub-rate", 0, "bytes a second the background scrub reads to check stored chunks (default 1 MiB/s; negative: no background scrub)")
	fs.DurationVar(&f.scrubInterval, "scrub-interval", 0, "time between background scrubs of the chunk store (default 24h)")
	fs.StringArrayVar(&f.tags, "tag", nil, "a group this node belongs to, for rollouts that target tags (repeatable)")
	fs.StringArrayVar(&f.windows, "window", nil, "maintenance window in local time when releases are applied, e.g. \"Mon-Fri 22:00-05:00\" or \"Sat+Sun\" (repeatable; downloads happen any time; none: apply any time)")
	fs.DurationVar(&f.rolloutPoll, "rollout-poll", 0, "how often a node waiting on a staged rollout checks again (default 1m)")
	fs.Var(&f.caps.WAN, "wan-rate", "cap on this node's reads from its sources, e.g. 10Mbit, 500KB/s, 2MiB/s")
	fs.StringArrayVar(&f.caps.WANSchedule, "wan-rate-schedule", nil, "a --wan-rate by weekday and hour, local time, e.g. \"Mon-Fri 08:00-18:00=2Mbit\" (repeatable; the first window that holds wins)")
	fs.Var(&f.caps.WANNow, "wan-rate-now", "WAN cap while an update asked for (patchmesh update, the dashboard) runs, instead of --wan-rate (off: --wan-rate holds then too)")
	fs.Var(&f.caps.SiteWAN, "site-wan-rate", "cap on the whole site's WAN reads, shared by its live members; set it alike on every member")
	fs.StringArrayVar(&f.caps.SiteWANSchedule, "site-wan-rate-schedule", nil, "a --site-wan-rate by weekday and hour, local time (repeatable)")
	fs.Var(&f.caps.LANUpload, "lan-upload-rate", "cap on the chunk bytes this node serves to site peers")
	fs.DurationVar(&f.fallbackDelay, "site-fallback-delay", 0, "when the site fails to deliver a chunk, keep asking it this long (within --site-timeout) before fetching from the sources (default 0: at once)")
	fs.StringVar(&f.report.Site, "site-name", "", "label of this node's site in site and fleet views (default: the site key's fingerprint)")
	fs.StringVar(&f.report.To, "report-to", "", "fleet collector URL (a seed's http://HOST:PORT/api/report): the site's elected node reports the site view there")
	fs.StringVar(&f.report.TokenFile, "report-token-file", "", "file holding the report token the collector's admin issued (required with --report-to)")
	fs.DurationVar(&f.reportInterval, "report-interval", 0, "time between site reports (default 1m)")
}

// applyEnv sets every flag not given on the command line from PATCHMESH_<FLAG>
// (dashes as underscores; repeatable flags take comma-separated values).
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || err != nil {
			return
		}
		env := "PATCHMESH_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		v, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		vals := []string{v}
		if fl.Value.Type() == "stringArray" {
			vals = strings.Split(v, ",")
		}
		for _, s := range vals {
			if e := fs.Set(fl.Name, s); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
				return
			}
		}
	})
	return err
}

func (f *nodeFlags) toConfig(fs *pflag.FlagSet) (node.Config, error) {
	cfg := node.DefaultConfig()
	if f.config != "" {
		var err error
		if cfg, err = node.LoadConfig(f.config); err != nil {
			return cfg, err
		}
	}
	set := func(name string, apply func()) {
		if fs.Changed(name) {
			apply()
		}
	}
	set("data", func() { cfg.DataDir = f.data })
	set("install-dir", func() { cfg.InstallDir = f.install })
	set("channel", func() { cfg.Channel = f.channel })
	set("trust", func() { cfg.Trust = f.trust })
	set("source", func() { cfg.Sources = f.sources })
	set("api", func() { cfg.API = f.api })
	set("api-token", func() { cfg.APIToken = f.apiToken })
	set("ca-file", func() { cfg.CAFile = f.caFile })
	set("proxy", func() { cfg.Proxy = f.proxy })
	set("check-interval", func() { cfg.CheckInterval = node.Duration(f.interval) })
	set("check-jitter", func() { cfg.CheckJitter = node.Duration(f.jitter) })
	set("source-timeout", func() { cfg.SourceTimeout = node.Duration(f.srcTimeout) })
	set("idle-timeout", func() { cfg.IdleTimeout = node.Duration(f.idleTimeout) })
	set("keep", func() { cfg.Keep = f.keep })
	set("quota", func() { cfg.QuotaBytes = f.quota })
	set("concurrency", func() { cfg.Concurrency = f.concurrency })
	set("pre-activate", func() { cfg.Hooks.PreActivate = strings.Fields(f.preActivate) })
	set("health-check", func() { cfg.Hooks.HealthCheck = strings.Fields(f.healthCheck) })
	set("site-key", func() { cfg.Mesh.SiteKey = f.siteKey })
	set("join", func() { cfg.Mesh.Join = f.join })
	set("gossip", func() { cfg.Mesh.Gossip = f.gossip })
	set("p2p", func() { cfg.Mesh.P2P = f.p2p })
	set("role", func() { cfg.Mesh.Role = f.role })
	set("site-timeout", func() { cfg.Mesh.SiteTimeout = node.Duration(f.siteTimeout) })
	set("mdns", func() { m := f.mdns; cfg.Mesh.MDNS = &m })
	set("serve-repo", func() { cfg.ServeRepo = f.serveRepo })
	set("serve-files", func() { cfg.ServeFiles.Addr = f.serveFiles.Addr })
	set("serve-files-index", func() { cfg.ServeFiles.Index = f.serveFiles.Index })
	set("serve-files-tls-cert", func() { cfg.ServeFiles.TLSCert = f.serveFiles.TLSCert })
	set("serve-files-tls-key", func() { cfg.ServeFiles.TLSKey = f.serveFiles.TLSKey })
	set("proxy-cache", func() { cfg.ProxyCache.Addr = f.proxyCache.Addr })
	set("proxy-allow", func() { cfg.ProxyCache.Allow = f.proxyCache.Allow })
	set("proxy-max-object", func() { cfg.ProxyCache.MaxObject = f.proxyCache.MaxObject })
	set("proxy-max-bytes", func() { cfg.ProxyCache.MaxBytes = f.proxyCache.MaxBytes })
	set("name", func() { cfg.Name = f.name })
	set("scrub-rate", func() { cfg.ScrubRate = f.scrubRate })
	set("scrub-interval", func() { cfg.ScrubInterval = node.Duration(f.scrubInterval) })
	set("tag", func() { cfg.Tags = f.tags })
	set("rollout-poll", func() { cfg.RolloutPoll = node.Duration(f.rolloutPoll) })
	set("wan-rate", func() { cfg.Caps.WAN = f.caps.WAN })
	set("wan-rate-schedule", func() { cfg.Caps.WANSchedule = f.caps.WANSchedule })
	set("wan-rate-now", func() { cfg.Caps.WANNow = f.caps.WANNow })
	set("site-wan-rate", func() { cfg.Caps.SiteWAN = f.caps.SiteWAN })
	set("site-wan-rate-schedule", func() { cfg.Caps.SiteWANSchedule = f.caps.SiteWANSchedule })
	set("lan-upload-rate", func() { cfg.Caps.LANUpload = f.caps.LANUpload })
	set("site-fallback-delay", func() { cfg.Mesh.FallbackDelay = node.Duration(f.fallbackDelay) })
	set("window", func() { cfg.Windows = f.windows })
	for _, fl := range f.follow {
		name, dir, ok := strings.Cut(fl, "=")
		if !ok || name == "" || dir == "" {
			return cfg, fmt.Errorf("--follow %q: want NAME=DIR", fl)
		}
		cfg.Channels = append(cfg.Channels, node.ChannelConfig{Name: name, InstallDir: dir})
	}
	set("site-name", func() { cfg.Report.Site = f.report.Site })
	set("report-to", func() { cfg.Report.To = f.report.To })
	set("report-token-file", func() { cfg.Report.TokenFile = f.report.TokenFile })
	set("report-interval", func() { cfg.Report.Interval = node.Duration(f.reportInterval) })
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
PATCHMESH_SOURCE=url1,url2, PATCHMESH_DATA=/var/lib/patchmesh), then flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return withCode(exitUsage, err)
			}
			cfg, err := f.toConfig(cmd.Flags())
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
