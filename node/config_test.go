package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExampleConfig: the example that `node init` writes and scripts/ ships are
// the same text, and it loads.
func TestExampleConfig(t *testing.T) {
	shipped, err := os.ReadFile(filepath.Join("..", "scripts", "patchmesh-node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(shipped) != ExampleConfig {
		t.Fatal("scripts/patchmesh-node.yaml differs from node.ExampleConfig; copy one over the other")
	}
	p := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(p, shipped, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatalf("LoadConfig(example): %v", err)
	}
	if len(cfg.Sources) != 3 || cfg.CheckInterval != Duration(time.Hour) || cfg.CheckJitter != Duration(6*time.Minute) || cfg.API != "127.0.0.1:7780" {
		t.Errorf("example config read as %+v", cfg)
	}
}

func TestLoadConfigRefuses(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "data: /x\nsorces: [a]\n", "sorces"},
		{"bad duration", "check_interval: often\n", "often"},
		{"wrong type", "keep: many\n", "many"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "node.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadConfig: got %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestConfigRequired(t *testing.T) {
	full := Config{DataDir: "d", InstallDir: "i", Trust: "t", Sources: []string{"s"}}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"data", func(c *Config) { c.DataDir = "" }, "--data"},
		{"install", func(c *Config) { c.InstallDir = "" }, "--install-dir"},
		{"trust", func(c *Config) { c.Trust = "" }, "--trust"},
		{"sources", func(c *Config) { c.Sources = nil }, "--source"},
		{"window", func(c *Config) { c.Windows = []string{"Mon 22:00-25:00"} }, "maintenance window"},
		{"channel twice", func(c *Config) { c.Channels = []ChannelConfig{{Name: "stable", InstallDir: "j"}} }, "followed twice"},
		{"channel dir", func(c *Config) { c.Channels = []ChannelConfig{{Name: "db"}} }, "--follow db=DIR"},
		{"shared dir", func(c *Config) { c.Channels = []ChannelConfig{{Name: "db", InstallDir: "i/db"}} }, "share install folder"},
		{"channel name", func(c *Config) { c.Channels = []ChannelConfig{{Name: "a/b", InstallDir: "j"}} }, "channel"},
		{"channel window", func(c *Config) {
			c.Channels = []ChannelConfig{{Name: "db", InstallDir: "j", Windows: []string{"Mon 22:00-25:00"}}}
		}, "channel db"},
		{"site WAN requests negative", func(c *Config) { c.Mesh.WANRequests = -1 }, "mesh.wan_requests -1"},
		{"site WAN requests unbounded", func(c *Config) { c.Mesh.WANRequests = 100000 }, "mesh.wan_requests 100000"},
		{"site WAN widening negative", func(c *Config) { c.Mesh.MaxWANRequests = -1 }, "mesh.max_wan_requests -1"},
		{"site WAN widening unbounded", func(c *Config) { c.Mesh.MaxWANRequests = 2000 }, "mesh.max_wan_requests 2000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := full
			tt.modify(&c)
			_, err := c.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
	c, err := full.withDefaults()
	if err != nil || c.Channel != "stable" || c.Keep != 2 || c.Concurrency != 16 || c.Mesh.WANRequests != 32 || c.Mesh.MaxWANRequests != 128 || c.Name == "" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	// Widening defaults to 4 x the site's WAN fetches, within the bound.
	wide := full
	wide.Mesh.WANRequests = 512
	if c, err := wide.withDefaults(); err != nil || c.Mesh.MaxWANRequests != maxSiteWANRequests {
		t.Fatalf("mesh.wan_requests 512: max_wan_requests %d, %v; want %d", c.Mesh.MaxWANRequests, err, maxSiteWANRequests)
	}
}

// TestConfigChannels: extra channels get the node's hook defaults, and a
// config with channels but no install_dir takes its first channel from them,
// keeping the top-level settings it leaves zero.
func TestConfigChannels(t *testing.T) {
	c, err := Config{DataDir: "d", InstallDir: "i", Trust: "t", Sources: []string{"s"},
		Channels: []ChannelConfig{{Name: "db", InstallDir: "j"}}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.followed(); len(got) != 2 || got[0].Name != "stable" || got[1].Name != "db" ||
		got[1].Hooks.Timeout != c.Hooks.Timeout || got[1].Hooks.ReleaseHooks == nil {
		t.Errorf("followed: %+v", got)
	}
	c, err = Config{DataDir: "d", Trust: "t", Sources: []string{"s"}, Windows: []string{"Sat"},
		Channels: []ChannelConfig{{Name: "engine", InstallDir: "e"}, {Name: "db", InstallDir: "j"}}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Channel != "engine" || c.InstallDir != "e" || len(c.Channels) != 1 || c.Channels[0].Name != "db" || len(c.Windows) != 1 {
		t.Errorf("first channel from the list: channel %s, install %s, channels %+v, windows %v", c.Channel, c.InstallDir, c.Channels, c.Windows)
	}
}
