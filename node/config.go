package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/window"
	"github.com/patchmesh/patchmesh/mesh"
	"github.com/patchmesh/patchmesh/node/proxy"
	"github.com/patchmesh/patchmesh/node/ratecap"
	"github.com/patchmesh/patchmesh/node/source"
)

// Config of a node. DefaultConfig gives every optional field a sane value; the
// zero value of each is documented. LoadConfig reads it from YAML, refusing
// unknown keys so a typo is an error rather than a silently ignored setting.
type Config struct {
	Name       string `yaml:"name"`        // zero: hostname plus a short hash of DataDir, unique per node on a machine
	DataDir    string `yaml:"data"`        // state and chunk store; required
	InstallDir string `yaml:"install_dir"` // where `current` and the releases live; required
	Channel    string `yaml:"channel"`     // zero: "stable"
	// Channels are more channels this node follows, each into its own
	// install folder (an antivirus engine and its signature databases),
	// sharing the store, the site and the API. Channel and InstallDir stay
	// the first channel; with no InstallDir, the first entry here is it.
	Channels []ChannelConfig `yaml:"channels"`
	Trust    string          `yaml:"trust"`   // pinned trust root file; required
	Sources  []string        `yaml:"sources"` // update sources in order: http(s)://, ftp://, file:// or a folder; required
	CAFile   string          `yaml:"ca_file"` // extra PEM roots for https sources
	Proxy    string          `yaml:"proxy"`   // HTTP proxy URL; zero: HTTP_PROXY/HTTPS_PROXY/NO_PROXY
	// CheckInterval between scheduled checks; zero: one hour.
	CheckInterval Duration `yaml:"check_interval"`
	// CheckJitter spreads a fleet's checks: each wait is CheckInterval ± a random
	// part of it. Zero: a tenth of CheckInterval; negative: none.
	CheckJitter   Duration `yaml:"check_jitter"`
	SourceTimeout Duration `yaml:"source_timeout"` // per request for small files; zero: 30s
	IdleTimeout   Duration `yaml:"idle_timeout"`   // no byte for this long fails a download; zero: 15s

	API      string `yaml:"api"`       // local control API and dashboard; zero: 127.0.0.1:7780; "off": none
	APIToken string `yaml:"api_token"` // required when API is not loopback

	Keep        int   `yaml:"keep"`        // old releases kept besides current and previous; zero: 2
	QuotaBytes  int64 `yaml:"quota_bytes"` // chunk store size above which unneeded chunks are collected; zero: collect all unneeded
	Concurrency int   `yaml:"concurrency"` // chunks fetched at once; zero: 16
	// MaxConcurrency is how far a node alone (outside a site, or its one live
	// member) lets its chunk fetches at once grow past Concurrency while more of them move more bytes a
	// second: far from its sources each fetch waits a round trip. Zero: 128;
	// not above Concurrency: Concurrency, fixed.
	MaxConcurrency int `yaml:"max_concurrency"`
	// ScrubRate bounds the bytes a second the background scrub reads to
	// check every stored chunk against its CID. Zero: 1 MiB/s; negative: no
	// background scrub (patchmesh node scrub still runs one).
	ScrubRate int64 `yaml:"scrub_rate"`
	// ScrubInterval is the time between the starts of two background scrubs;
	// the first starts ten minutes after the node. Zero: 24h.
	ScrubInterval Duration `yaml:"scrub_interval"`

	// Tags name the groups this node belongs to (office-paris, ring-early):
	// a staged rollout may target a release or a stage at tags.
	Tags []string `yaml:"tags"`
	// RolloutPoll is how often a node that waits on a staged rollout (for its
	// stage, a pause, a halted site) checks again, to see promotes, pauses,
	// aborts and its site's outcomes soon. Zero: 1 minute.
	RolloutPoll Duration `yaml:"rollout_poll"`
	// Windows are the maintenance windows, in this machine's local time, in
	// which the node applies releases ("Mon-Fri 22:00-05:00", "Sat+Sun";
	// package manifest/window). It downloads and stages any time, so a window
	// is not spent on the WAN. A rollout stage's windows hold too: the apply
	// waits for a time inside both. Zero: any time.
	Windows []string `yaml:"windows"`

	Hooks HooksConfig `yaml:"hooks"`
	Mesh  MeshConfig  `yaml:"mesh"`
	// Caps bound the bytes a second this node moves (README, "Rate caps").
	// A channel's head may set caps too; the tighter one holds.
	Caps CapsConfig `yaml:"caps"`
	// ServeRepo, when set, serves the repository format (heads, manifests, chunks)
	// over HTTP from this node, fetching through the site on a miss, so plain
	// clients and other sites can use this node as their source.
	ServeRepo string `yaml:"serve_repo"`
	// ServeFiles serves the files of the current release over HTTP(S) by
	// path, for agents that update from a plain web server. Zero: off.
	ServeFiles FilesConfig `yaml:"serve_files"`
	// ProxyCache runs a caching forward HTTP proxy for vendor agents, shared
	// through the site (package node/proxy). Zero: off.
	ProxyCache ProxyCacheConfig `yaml:"proxy_cache"`

	// Report names the site and sends its view to a fleet collector.
	Report ReportConfig `yaml:"report"`

	// GOOS and GOARCH the node matches release targets against; zero: this build's.
	GOOS   string `yaml:"goos"`
	GOARCH string `yaml:"goarch"`

	Logger *slog.Logger `yaml:"-"` // zero: discard
	// Version of this build, reported in the status and the sources'
	// User-Agent; the CLI sets its own. Zero: BuildVersion.
	Version string `yaml:"-"`
}

// ChannelConfig is one more channel a node follows (Config.Channels).
type ChannelConfig struct {
	Name       string `yaml:"name"`        // required
	InstallDir string `yaml:"install_dir"` // required; each channel has its own
	// Hooks run around this channel's applies; zero Timeout and
	// ReleaseHooks are the node's (Config.Hooks).
	Hooks HooksConfig `yaml:"hooks"`
	// Windows are this channel's maintenance windows, as Config.Windows;
	// zero: any time (the node's windows are its first channel's).
	Windows []string `yaml:"windows"`
}

// followed lists every channel the node follows, its first channel first.
func (c Config) followed() []ChannelConfig {
	out := []ChannelConfig{{Name: c.Channel, InstallDir: c.InstallDir, Hooks: c.Hooks, Windows: c.Windows}}
	return append(out, c.Channels...)
}

// FilesConfig configures the file view (package node/fileview).
type FilesConfig struct {
	Addr  string `yaml:"addr"`  // listen address, e.g. ":8080"; empty: no file view
	Index bool   `yaml:"index"` // list folders as HTML pages (wget --mirror needs them)
	// TLSCert and TLSKey, both set, serve HTTPS instead of HTTP.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// ProxyCacheConfig configures the caching proxy (package node/proxy).
type ProxyCacheConfig struct {
	Addr  string   `yaml:"addr"`  // listen address, e.g. ":3128"; empty: no proxy
	Allow []string `yaml:"allow"` // upstream hosts served: host, host:port or *.domain; required with Addr
	// MaxObject is the largest body stored; larger ones pass through. Zero: 512 MiB.
	MaxObject int64 `yaml:"max_object"`
	// MaxBytes bounds the bodies stored; least recently used go first. Zero: 2 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
}

// ReportConfig names the site in its view and, optionally, reports the view
// to a fleet collector (patchmesh serve --report-tokens): only the site's
// elected member (its lowest-named alive one) sends it.
type ReportConfig struct {
	Site      string   `yaml:"site"`       // label of the site in views and reports; zero: the site key's fingerprint
	To        string   `yaml:"to"`         // collector URL, e.g. http://seed:8781/api/report; zero: no reports
	TokenFile string   `yaml:"token_file"` // file holding the report token the collector's admin issued; required with To
	Interval  Duration `yaml:"interval"`   // between reports; zero: 1m
}

// HooksConfig are the commands a node runs around an apply.
type HooksConfig struct {
	PreActivate []string `yaml:"pre_activate"` // argv run before the switch; failure aborts the apply
	HealthCheck []string `yaml:"health_check"` // argv run after the switch; failure rolls back
	Timeout     Duration `yaml:"timeout"`      // per hook; zero: 2m
	// ReleaseHooks lets the hooks a signed manifest names (files inside the
	// release) run too. Zero (false) in a YAML file is overridden by DefaultConfig's true.
	ReleaseHooks *bool `yaml:"release_hooks"`
}

// CapsConfig are byte-rate caps: "10Mbit", "500KB/s", "2MiB/s"; zero or
// "off": none. Schedules are windows in local time, "Mon-Fri 08:00-18:00=2Mbit";
// the first that holds replaces the plain cap beside it.
type CapsConfig struct {
	WAN         ratecap.Rate `yaml:"wan"`          // this node's reads from its update sources
	WANSchedule []string     `yaml:"wan_schedule"` // windows that replace WAN
	// WANNow replaces WAN (and its schedule) while an update asked for
	// through the API or CLI runs. Zero: WAN holds then too.
	WANNow ratecap.Rate `yaml:"wan_now"`
	// SiteWAN caps the whole site's WAN reads: each member reads at most
	// SiteWAN divided by the members it sees fetch from the WAN for the
	// site (the live distribution points if any, else every live member;
	// an ordinary member beside distribution points divides by every live
	// member). Set it alike on every member.
	SiteWAN         ratecap.Rate `yaml:"site_wan"`
	SiteWANSchedule []string     `yaml:"site_wan_schedule"` // windows that replace SiteWAN
	LANUpload       ratecap.Rate `yaml:"lan_upload"`        // chunk bytes served to site peers
}

// MeshConfig joins the node to its site. Without a site key the node has no mesh
// and fetches everything from its sources.
type MeshConfig struct {
	SiteKey string   `yaml:"site_key"` // site key file (patchmesh keygen --site); zero: no mesh
	Join    []string `yaml:"join"`     // gossip addresses of other nodes; zero: mDNS discovery on the LAN
	Gossip  string   `yaml:"gossip"`   // gossip listener; zero: 0.0.0.0:7946
	P2P     []string `yaml:"p2p"`      // libp2p listeners, as multiaddrs or host:port; zero: TCP and QUIC on all interfaces, any port
	Role    string   `yaml:"role"`     // "dp" marks a distribution point: when any is alive, only they fetch from the WAN
	MDNS    *bool    `yaml:"mdns"`     // zero: on when Join is empty
	// CatchUp makes the node check its sources at once when a member of its
	// site has verified a newer release of its first channel than it knows,
	// rather than at its next scheduled check: the site catches up with the
	// first member to see a release within seconds. Zero: on.
	CatchUp *bool `yaml:"catch_up"`
	// SiteTimeout: after this long without the site delivering a chunk, the node
	// fetches it from its sources itself. Zero: 5m.
	SiteTimeout Duration `yaml:"site_timeout"`
	// FallbackDelay: when the site fails to deliver a chunk sooner, the node
	// keeps asking it for this long (within SiteTimeout) before fetching the
	// chunk from its sources. Zero: fall back at the first failure.
	FallbackDelay Duration `yaml:"fallback_delay"`
	// WANRequests is how many WAN fetches the whole site keeps in flight,
	// shared by the members that fetch from the WAN for the others (the
	// live distribution points if any, else all). Far from the sources each
	// fetch waits a round trip for one chunk (19 KiB on average), so the
	// site moves about WANRequests x 19 KiB a round trip (32 make ~100
	// Mbit/s at 50 ms) until its owners widen their fetches, up to
	// MaxWANRequests. Set it alike on every member. Zero: 32.
	WANRequests int `yaml:"wan_requests"`
	// MaxWANRequests is how far the site's WAN fetches widen past
	// WANRequests while they take about as long as the quickest: far from
	// the sources behind a fast link, where the round trip caps the site.
	// A full link queues and slows every fetch, so members stop widening
	// there. Zero: 4 x WANRequests (at most 1024); not above WANRequests:
	// no widening.
	MaxWANRequests int `yaml:"max_wan_requests"`
}

// maxSiteWANRequests bounds Mesh.WANRequests: each is a connection to a
// source and a served stream on a LAN peer.
const maxSiteWANRequests = 1024

// DefaultConfig returns the defaults every field falls back to: the one
// place they are written, read by withDefaults, LoadConfig and the flags' help.
func DefaultConfig() Config {
	t := true
	so := source.DefaultOptions()
	return Config{
		Channel:        "stable",
		CheckInterval:  Duration(time.Hour),
		SourceTimeout:  Duration(so.Timeout),
		IdleTimeout:    Duration(so.IdleTimeout),
		API:            "127.0.0.1:7780",
		Keep:           2,
		Concurrency:    16,
		MaxConcurrency: 128,
		ScrubRate:      1 << 20,
		ScrubInterval:  Duration(24 * time.Hour),
		RolloutPoll:    Duration(time.Minute),
		Hooks:          HooksConfig{Timeout: Duration(2 * time.Minute), ReleaseHooks: &t},
		Mesh:           MeshConfig{Gossip: mesh.DefaultGossipAddr, SiteTimeout: Duration(mesh.DefaultSiteTimeout), WANRequests: mesh.DefaultSiteWANRequests},
		ProxyCache:     ProxyCacheConfig{MaxObject: proxy.DefaultMaxObject, MaxBytes: proxy.DefaultMaxBytes},
		Report:         ReportConfig{Interval: Duration(time.Minute)},
		GOOS:           runtime.GOOS,
		GOARCH:         runtime.GOARCH,
	}
}

// LoadConfig reads a YAML config file over DefaultConfig.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if len(data) > 1<<20 {
		return cfg, fmt.Errorf("config %s: larger than 1 MiB", path)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// withDefaults fills zero fields and checks the required ones.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.DataDir == "" {
		return c, errors.New("config: no data folder (--data)")
	}
	c.Channels = slices.Clone(c.Channels) // their hooks get defaults below
	if c.InstallDir == "" && len(c.Channels) > 0 {
		// The first entry is the first channel; what it leaves zero, the
		// top-level settings give, as they do for the first channel.
		first := c.Channels[0]
		c.Channel, c.InstallDir = first.Name, first.InstallDir
		if first.Windows != nil {
			c.Windows = first.Windows
		}
		if first.Hooks.PreActivate != nil || first.Hooks.HealthCheck != nil {
			c.Hooks.PreActivate, c.Hooks.HealthCheck = first.Hooks.PreActivate, first.Hooks.HealthCheck
		}
		if first.Hooks.Timeout > 0 {
			c.Hooks.Timeout = first.Hooks.Timeout
		}
		if first.Hooks.ReleaseHooks != nil {
			c.Hooks.ReleaseHooks = first.Hooks.ReleaseHooks
		}
		c.Channels = c.Channels[1:]
	}
	if c.InstallDir == "" {
		return c, errors.New("config: no install folder (--install-dir)")
	}
	if c.Trust == "" {
		return c, errors.New("config: no trust root (--trust)")
	}
	if len(c.Sources) == 0 {
		return c, errors.New("config: no update source (--source)")
	}
	if c.Channel == "" {
		c.Channel = d.Channel
	}
	if c.ProxyCache.Addr != "" && len(c.ProxyCache.Allow) == 0 {
		return c, errors.New("config: the caching proxy needs the upstream hosts it may reach (--proxy-allow host1,host2)")
	}
	for _, t := range c.Tags {
		if err := manifest.CheckTag(t); err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
	}
	if _, err := window.ParseSet(c.Windows); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if c.Report.Interval <= 0 {
		c.Report.Interval = d.Report.Interval
	}
	if c.Report.To != "" && c.Report.TokenFile == "" {
		return c, errors.New("config: report to " + c.Report.To + " needs a report token file (--report-token-file)")
	}
	if c.Report.To != "" && c.Mesh.SiteKey == "" {
		return c, errors.New("config: reports to a fleet collector need a site (--site-key)")
	}
	if c.RolloutPoll <= 0 {
		c.RolloutPoll = d.RolloutPoll
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = d.CheckInterval
	}
	if c.SourceTimeout <= 0 {
		c.SourceTimeout = d.SourceTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.Mesh.SiteTimeout <= 0 {
		c.Mesh.SiteTimeout = d.Mesh.SiteTimeout
	}
	if c.CheckJitter == 0 {
		c.CheckJitter = c.CheckInterval / 10
	}
	if c.API == "" {
		c.API = d.API
	}
	if c.Keep <= 0 {
		c.Keep = d.Keep
	}
	if c.Concurrency <= 0 {
		c.Concurrency = d.Concurrency
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = d.MaxConcurrency
	}
	if c.ScrubRate == 0 {
		c.ScrubRate = d.ScrubRate
	}
	if c.ScrubInterval <= 0 {
		c.ScrubInterval = d.ScrubInterval
	}
	if c.Hooks.Timeout <= 0 {
		c.Hooks.Timeout = d.Hooks.Timeout
	}
	if c.Hooks.ReleaseHooks == nil {
		c.Hooks.ReleaseHooks = d.Hooks.ReleaseHooks
	}
	if err := c.checkChannels(); err != nil {
		return c, err
	}
	if c.Mesh.Gossip == "" {
		c.Mesh.Gossip = d.Mesh.Gossip
	}
	if c.GOOS == "" {
		c.GOOS = d.GOOS
	}
	if c.GOARCH == "" {
		c.GOARCH = d.GOARCH
	}
	if _, err := ratecap.ParseSchedule(c.Caps.WANSchedule); err != nil {
		return c, fmt.Errorf("config: caps.wan_schedule: %w", err)
	}
	if _, err := ratecap.ParseSchedule(c.Caps.SiteWANSchedule); err != nil {
		return c, fmt.Errorf("config: caps.site_wan_schedule: %w", err)
	}
	if c.Mesh.FallbackDelay < 0 {
		return c, errors.New("config: mesh.fallback_delay is negative")
	}
	switch {
	case c.Mesh.WANRequests == 0:
		c.Mesh.WANRequests = d.Mesh.WANRequests
	case c.Mesh.WANRequests < 0 || c.Mesh.WANRequests > maxSiteWANRequests:
		return c, fmt.Errorf("config: mesh.wan_requests %d: want 1 to %d", c.Mesh.WANRequests, maxSiteWANRequests)
	}
	switch {
	case c.Mesh.MaxWANRequests == 0:
		c.Mesh.MaxWANRequests = min(4*c.Mesh.WANRequests, maxSiteWANRequests)
	case c.Mesh.MaxWANRequests < 0 || c.Mesh.MaxWANRequests > maxSiteWANRequests:
		return c, fmt.Errorf("config: mesh.max_wan_requests %d: want 1 to %d", c.Mesh.MaxWANRequests, maxSiteWANRequests)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = BuildVersion
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		abs, _ := filepath.Abs(c.DataDir)
		h := sha256.Sum256([]byte(abs))
		c.Name = host + "-" + hex.EncodeToString(h[:3])
	}
	return c, nil
}

// checkChannels checks the channels followed and fills their hooks' zero
// fields from the node's: names valid and distinct, install folders set and
// apart from each other.
func (c *Config) checkChannels() error {
	names := make(map[string]bool)
	var dirs []string
	for i, ch := range c.followed() {
		if err := manifest.CheckChannel(ch.Name); err != nil {
			return fmt.Errorf("config: channels: %w", err)
		}
		if names[ch.Name] {
			return fmt.Errorf("config: channel %s is followed twice", ch.Name)
		}
		names[ch.Name] = true
		if ch.InstallDir == "" {
			return fmt.Errorf("config: channel %s has no install folder (install_dir, or --follow %s=DIR)", ch.Name, ch.Name)
		}
		dir, err := filepath.Abs(ch.InstallDir)
		if err != nil {
			return fmt.Errorf("config: channel %s: install folder: %w", ch.Name, err)
		}
		for j, d := range dirs {
			if within(dir, d) || within(d, dir) {
				return fmt.Errorf("config: channels %s and %s share install folder %s: give each its own", c.followed()[j].Name, ch.Name, ch.InstallDir)
			}
		}
		dirs = append(dirs, dir)
		if _, err := window.ParseSet(ch.Windows); err != nil {
			return fmt.Errorf("config: channel %s: %w", ch.Name, err)
		}
		if i == 0 {
			continue
		}
		h := &c.Channels[i-1].Hooks
		if h.Timeout <= 0 {
			h.Timeout = c.Hooks.Timeout
		}
		if h.ReleaseHooks == nil {
			h.ReleaseHooks = c.Hooks.ReleaseHooks
		}
	}
	return nil
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// Duration is a time.Duration written as "90s", "1h" in YAML and JSON.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String implements fmt.Stringer.
func (d Duration) String() string { return time.Duration(d).String() }
