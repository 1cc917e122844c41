package node

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/patchmesh/patchmesh/node/ratecap"
)

// envSepAnnotation marks a repeatable flag whose items may hold commas
// (windows, rate schedules: "Sat,Sun=off"): its environment variable splits
// on the annotation's separator instead.
const envSepAnnotation = "patchmesh-env-separator"

// AddFlags registers the flags of `patchmesh node run`, each bound to its
// field of c; the field's value is the flag's default, so flags added to a
// DefaultConfig show the defaults in the help. A flag's environment variable
// is EnvVar(its name); its YAML key is the field's yaml tag.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data folder: chunk store and state")
	fs.StringVar(&c.InstallDir, "install-dir", c.InstallDir, "install folder: holds the releases and the current link to the running one")
	fs.StringVar(&c.Channel, "channel", c.Channel, "channel to follow")
	fs.Var(&followValue{&c.Channels}, "follow", "one more channel to follow into its own install folder, NAME=DIR (repeatable; adds to the config file's channels)")
	fs.StringVar(&c.Trust, "trust", c.Trust, "pinned trust root file")
	fs.StringArrayVar(&c.Sources, "source", c.Sources, "update source URL, in order of preference (repeatable): http(s)://, ftp://, file:// or a folder")
	fs.StringVar(&c.API, "api", c.API, "local API and dashboard address (\"off\" for none)")
	fs.StringVar(&c.APIToken, "api-token", c.APIToken, "token required by the API (mandatory when --api is not loopback)")
	fs.StringVar(&c.CAFile, "ca-file", c.CAFile, "extra PEM CA certificates for https sources")
	fs.StringVar(&c.Proxy, "proxy", c.Proxy, "HTTP proxy for sources (none: HTTP_PROXY/HTTPS_PROXY/NO_PROXY)")
	fs.Var((*durationValue)(&c.CheckInterval), "check-interval", "time between scheduled checks")
	fs.Var((*durationValue)(&c.CheckJitter), "check-jitter", "random spread of scheduled checks (0: a tenth of the interval; negative: none)")
	fs.Var((*durationValue)(&c.SourceTimeout), "source-timeout", "per-request time limit for small files")
	fs.Var((*durationValue)(&c.IdleTimeout), "idle-timeout", "a download with no byte for this long fails")
	fs.IntVar(&c.Keep, "keep", c.Keep, "old releases kept besides current and previous")
	fs.Int64Var(&c.QuotaBytes, "quota", c.QuotaBytes, "chunk store bytes above which unneeded chunks are collected (0: collect all unneeded)")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "chunks fetched at once")
	fs.IntVar(&c.MaxConcurrency, "max-concurrency", c.MaxConcurrency, "alone (outside a site, or its one live member), the most chunks fetched at once while more at once move more bytes a second (--concurrency or less: fixed)")
	fs.Var((*commandValue)(&c.Hooks.PreActivate), "pre-activate", "command run before switching to a release (split on spaces)")
	fs.Var((*commandValue)(&c.Hooks.HealthCheck), "health-check", "command run after switching; failure rolls back (split on spaces)")
	fs.StringVar(&c.Mesh.SiteKey, "site-key", c.Mesh.SiteKey, "site key file: join the site mesh (patchmesh keygen --site)")
	fs.StringArrayVar(&c.Mesh.Join, "join", c.Mesh.Join, "gossip address of a site member to join (repeatable; none: mDNS discovery)")
	fs.StringVar(&c.Mesh.Gossip, "gossip", c.Mesh.Gossip, "gossip listener host:port")
	fs.StringArrayVar(&c.Mesh.P2P, "p2p", c.Mesh.P2P, "libp2p listener, multiaddr or host:port (repeatable)")
	fs.StringVar(&c.Mesh.Role, "role", c.Mesh.Role, "\"dp\" marks a distribution point: only they fetch from the WAN when any is alive")
	fs.Var((*durationValue)(&c.Mesh.SiteTimeout), "site-timeout", "fetch a chunk from the sources when the site has not delivered it in this long")
	fs.Var(&optBoolValue{&c.Mesh.MDNS}, "mdns", "discover site members by mDNS even with --join")
	fs.Lookup("mdns").NoOptDefVal = "true"
	fs.Var(&optBoolValue{&c.Mesh.CatchUp}, "site-catch-up", "check the sources at once when a site member has verified a newer release of the channel (default true; false: wait for the schedule)")
	fs.Lookup("site-catch-up").NoOptDefVal = "true"
	fs.StringVar(&c.ServeRepo, "serve-repo", c.ServeRepo, "serve the repository format on this address for plain clients and other sites")
	fs.StringVar(&c.ServeFiles.Addr, "serve-files", c.ServeFiles.Addr, "serve the current release's files by path on this address, for agents that update from a plain HTTP server")
	fs.BoolVar(&c.ServeFiles.Index, "serve-files-index", c.ServeFiles.Index, "list folders in the file view (wget --mirror needs it)")
	fs.StringVar(&c.ServeFiles.TLSCert, "serve-files-tls-cert", c.ServeFiles.TLSCert, "PEM certificate: serve the file view over HTTPS")
	fs.StringVar(&c.ServeFiles.TLSKey, "serve-files-tls-key", c.ServeFiles.TLSKey, "PEM private key of --serve-files-tls-cert")
	fs.StringVar(&c.ProxyCache.Addr, "proxy-cache", c.ProxyCache.Addr, "run a caching forward HTTP proxy on this address (agents set http_proxy=http://node:port); objects are fetched once per site")
	fs.StringSliceVar(&c.ProxyCache.Allow, "proxy-allow", c.ProxyCache.Allow, "upstream hosts the proxy serves, comma-separated: host, host:port or *.domain")
	fs.Int64Var(&c.ProxyCache.MaxObject, "proxy-max-object", c.ProxyCache.MaxObject, "largest response body the proxy stores; larger ones pass through")
	fs.Int64Var(&c.ProxyCache.MaxBytes, "proxy-max-bytes", c.ProxyCache.MaxBytes, "bytes of bodies the proxy keeps; the least recently used go first")
	fs.StringVar(&c.Name, "name", c.Name, "node name (none: hostname and a hash of the data folder)")
	fs.Int64Var(&c.ScrubRate, "scrub-rate", c.ScrubRate, "bytes a second the background scrub reads to check stored chunks (negative: no background scrub)")
	fs.Var((*durationValue)(&c.ScrubInterval), "scrub-interval", "time between background scrubs of the chunk store")
	fs.StringArrayVar(&c.Tags, "tag", c.Tags, "a group this node belongs to, for rollouts that target tags (repeatable)")
	fs.StringArrayVar(&c.Windows, "window", c.Windows, "maintenance window in local time when releases are applied, e.g. \"Mon-Fri 22:00-05:00\" or \"Sat+Sun\" (repeatable; downloads happen any time; none: apply any time)")
	fs.Var((*durationValue)(&c.RolloutPoll), "rollout-poll", "how often a node waiting on a staged rollout checks again")
	fs.Var(&c.Caps.WAN, "wan-rate", "cap on this node's reads from its sources, e.g. 10Mbit, 500KB/s, 2MiB/s")
	fs.StringArrayVar(&c.Caps.WANSchedule, "wan-rate-schedule", c.Caps.WANSchedule, "a --wan-rate by weekday and hour, local time, e.g. \"Mon-Fri 08:00-18:00=2Mbit\" (repeatable; the first window that holds wins)")
	fs.Var(&c.Caps.WANNow, "wan-rate-now", "WAN cap while an update asked for (patchmesh update, the dashboard) runs, instead of --wan-rate (off: --wan-rate holds then too)")
	fs.Var(&c.Caps.SiteWAN, "site-wan-rate", "cap on the whole site's WAN reads, shared by the members that fetch from the WAN (its distribution points if any); set it alike on every member")
	fs.StringArrayVar(&c.Caps.SiteWANSchedule, "site-wan-rate-schedule", c.Caps.SiteWANSchedule, "a --site-wan-rate by weekday and hour, local time (repeatable)")
	fs.Var(&c.Caps.LANUpload, "lan-upload-rate", "cap on the chunk bytes this node serves to site peers")
	fs.IntVar(&c.Mesh.WANRequests, "site-wan-requests", c.Mesh.WANRequests, "WAN fetches the whole site keeps in flight, shared by the members that fetch from the WAN (the live distribution points if any, else all), before they widen (--site-max-wan-requests); set it alike on every member")
	fs.IntVar(&c.Mesh.MaxWANRequests, "site-max-wan-requests", c.Mesh.MaxWANRequests, "how far the site's WAN fetches widen past --site-wan-requests while they take about as long as the quickest (far from the sources behind a fast link); 0: 4 x --site-wan-requests; not above it: no widening")
	fs.Var((*durationValue)(&c.Mesh.FallbackDelay), "site-fallback-delay", "when the site fails to deliver a chunk, keep asking it this long (within --site-timeout) before fetching from the sources (0: at once)")
	fs.StringVar(&c.Report.Site, "site-name", c.Report.Site, "label of this node's site in site and fleet views (none: the site key's fingerprint)")
	fs.StringVar(&c.Report.To, "report-to", c.Report.To, "fleet collector URL (a seed's http://HOST:PORT/api/report): the site's elected node reports the site view there")
	fs.StringVar(&c.Report.TokenFile, "report-token-file", c.Report.TokenFile, "file holding the report token the collector's admin issued (required with --report-to)")
	fs.Var((*durationValue)(&c.Report.Interval), "report-interval", "time between site reports")

	for _, name := range []string{"window", "wan-rate-schedule", "site-wan-rate-schedule"} {
		_ = fs.SetAnnotation(name, envSepAnnotation, []string{";"}) // the flag exists: registered above
	}
}

// EnvVar is the environment variable of a flag: PATCHMESH_ and the flag's
// name in capitals, dashes as underscores (--wan-rate: PATCHMESH_WAN_RATE).
func EnvVar(flag string) string {
	return "PATCHMESH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// SetFromEnv sets every flag of fs not given on the command line from its
// environment variable, as lookup (os.LookupEnv) finds it. A repeatable flag
// takes a list: comma-separated, or ";"-separated for windows and rate
// schedules, whose items hold commas themselves.
func SetFromEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || err != nil {
			return
		}
		env := EnvVar(fl.Name)
		v, ok := lookup(env)
		if !ok {
			return
		}
		vals := []string{v}
		if fl.Value.Type() == "stringArray" {
			sep := ","
			if s := fl.Annotations[envSepAnnotation]; len(s) == 1 {
				sep = s[0]
			}
			vals = strings.Split(v, sep)
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

// SetFlags sets on c every flag of AddFlags that fs holds as changed (given
// on the command line, or by SetFromEnv), so they override what c held, a
// config file's settings. fs may hold other flags; they are skipped.
func (c *Config) SetFlags(fs *pflag.FlagSet) error {
	own := pflag.NewFlagSet("node", pflag.ContinueOnError)
	c.AddFlags(own)
	var err error
	fs.Visit(func(fl *pflag.Flag) {
		if err != nil || own.Lookup(fl.Name) == nil {
			return
		}
		vals := []string{fl.Value.String()}
		switch v := fl.Value.(type) {
		case interface{ GetSlice() []string }:
			vals = v.GetSlice()
		case *ratecap.Rate:
			vals = []string{strconv.FormatInt(int64(*v), 10)} // exact, unlike String's Mbit/s
		}
		for _, s := range vals {
			if e := own.Set(fl.Name, s); e != nil {
				err = fmt.Errorf("--%s: %w", fl.Name, e)
				return
			}
		}
	})
	return err
}

// durationValue is a Duration flag; zero prints as "0", so the help shows no
// default where zero means "see the text".
type durationValue Duration

func (d *durationValue) Set(s string) error { return (*Duration)(d).UnmarshalText([]byte(s)) }
func (d *durationValue) Type() string       { return "duration" }
func (d *durationValue) String() string {
	if *d == 0 {
		return "0"
	}
	return time.Duration(*d).String()
}

// commandValue is an argv given as one string, split on spaces.
type commandValue []string

func (v *commandValue) Set(s string) error { *v = strings.Fields(s); return nil }
func (v *commandValue) Type() string       { return "string" }
func (v *commandValue) String() string     { return strings.Join(*v, " ") }

// optBoolValue sets a *bool whose nil means "decide from the rest".
type optBoolValue struct{ p **bool }

func (v *optBoolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*v.p = &b
	return nil
}
func (v *optBoolValue) Type() string { return "bool" }
func (v *optBoolValue) String() string {
	if *v.p == nil {
		return ""
	}
	return strconv.FormatBool(**v.p)
}

// followValue adds a channel per NAME=DIR to the channels followed.
type followValue struct{ p *[]ChannelConfig }

func (v *followValue) Set(s string) error {
	name, dir, ok := strings.Cut(s, "=")
	if !ok || name == "" || dir == "" {
		return errors.New("want NAME=DIR")
	}
	*v.p = append(*v.p, ChannelConfig{Name: name, InstallDir: dir})
	return nil
}

// Type is stringArray, as the environment splits it so.
func (v *followValue) Type() string { return "stringArray" }

func (v *followValue) String() string { return strings.Join(v.GetSlice(), ",") }

// GetSlice gives the channels as NAME=DIR, for SetFlags to replay.
func (v *followValue) GetSlice() []string {
	var out []string
	for _, ch := range *v.p {
		out = append(out, ch.Name+"="+ch.InstallDir)
	}
	return out
}
