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
	"time"

	"gopkg.in/yaml.v3"

	"github.com/patchmesh/patchmesh/manifest"
)

// Config of a node. DefaultConfig gives every optional field a sane value; the
// zero value of each is documented. LoadConfig reads it from YAML, refusing
// unknown keys so a typo is an error rather than a silently ignored setting.
type Config struct {
	Name       string   `yaml:"name"`        // zero: hostname plus a short hash of DataDir, unique per node on a machine
	DataDir    string   `yaml:"data"`        // state and chunk store; required
	InstallDir string   `yaml:"install_dir"` // where `current` and the releases live; required
	Channel    string   `yaml:"channel"`     // zero: "stable"
	Trust      string   `yaml:"trust"`       // pinned trust root file; required
	Sources    []string `yaml:"sources"`     // update sources in order: http(s)://, ftp://, file:// or a folder; required
	CAFile     string   `yaml:"ca_file"`     // extra PEM roots for https sources
	Proxy      string   `yaml:"proxy"`       // HTTP proxy URL; zero: HTTP_PROXY/HTTPS_PROXY/NO_PROXY
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

	Hooks HooksConfig `yaml:"hooks"`
	Mesh  MeshConfig  `yaml:"mesh"`
	// ServeRepo, when set, serves the repository format (heads, manifests, chunks)
	// over HTTP from this node, fetching through the site on a miss, so plain
	// clients and other sites can use this node as their source.
	ServeRepo string `yaml:"serve_repo"`
	// ServeFiles serves the files of the current release over HTTP(S) by
	// path, for agents that update from a plain web server. Zero: off.
	ServeFiles FilesConfig `yaml:"serve_files"`

	// Report names the site and sends its view to a fleet collector.
	Report ReportConfig `yaml:"report"`

	// GOOS and GOARCH the node matches release targets against; zero: this build's.
	GOOS   string `yaml:"goos"`
	GOARCH string `yaml:"goarch"`

	Logger *slog.Logger `yaml:"-"` // zero: discard
}

// FilesConfig configures the file view (package node/fileview).
type FilesConfig struct {
	Addr  string `yaml:"addr"`  // listen address, e.g. ":8080"; empty: no file view
	Index bool   `yaml:"index"` // list folders as HTML pages (wget --mirror needs them)
	// TLSCert and TLSKey, both set, serve HTTPS instead of HTTP.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
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

// MeshConfig joins the node to its site. Without a site key the node has no mesh
// and fetches everything from its sources.
type MeshConfig struct {
	SiteKey string   `yaml:"site_key"` // site key file (patchmesh keygen --site); zero: no mesh
	Join    []string `yaml:"join"`     // gossip addresses of other nodes; zero: mDNS discovery on the LAN
	Gossip  string   `yaml:"gossip"`   // gossip listener; zero: 0.0.0.0:7946
	P2P     []string `yaml:"p2p"`      // libp2p listeners, as multiaddrs or host:port; zero: TCP and QUIC on all interfaces, any port
	Role    string   `yaml:"role"`     // "dp" marks a distribution point: when any is alive, only they fetch from the WAN
	MDNS    *bool    `yaml:"mdns"`     // zero: on when Join is empty
	// SiteTimeout: after this long without the site delivering a chunk, the node
	// fetches it from its sources itself. Zero: 5m.
	SiteTimeout Duration `yaml:"site_timeout"`
}

// DefaultConfig returns the defaults every field falls back to.
func DefaultConfig() Config {
	t := true
	return Config{
		Channel:       "stable",
		CheckInterval: Duration(time.Hour),
		API:           "127.0.0.1:7780",
		Keep:          2,
		Concurrency:   16,
		ScrubRate:     1 << 20,
		ScrubInterval: Duration(24 * time.Hour),
		Hooks:         HooksConfig{Timeout: Duration(2 * time.Minute), ReleaseHooks: &t},
		Mesh:          MeshConfig{Gossip: "0.0.0.0:7946"},
		GOOS:          runtime.GOOS,
		GOARCH:        runtime.GOARCH,
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
	for _, t := range c.Tags {
		if err := manifest.CheckTag(t); err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
	}
	if c.Report.Interval <= 0 {
		c.Report.Interval = Duration(time.Minute)
	}
	if c.Report.To != "" && c.Report.TokenFile == "" {
		return c, errors.New("config: report to " + c.Report.To + " needs a report token file (--report-token-file)")
	}
	if c.Report.To != "" && c.Mesh.SiteKey == "" {
		return c, errors.New("config: reports to a fleet collector need a site (--site-key)")
	}
	if c.RolloutPoll <= 0 {
		c.RolloutPoll = Duration(time.Minute)
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = d.CheckInterval
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
	if c.Mesh.Gossip == "" {
		c.Mesh.Gossip = d.Mesh.Gossip
	}
	if c.GOOS == "" {
		c.GOOS = d.GOOS
	}
	if c.GOARCH == "" {
		c.GOARCH = d.GOARCH
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		abs, _ := filepath.Abs(c.DataDir)
		h := sha256.Sum256([]byte(abs))
		c.Name = host + "-" + hex.EncodeToString(h[:3])
	}
	return c, nil
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
