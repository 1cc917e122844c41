package node

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/node/ratecap"
)

func TestLoadConfigCaps(t *testing.T) {
	p := filepath.Join(t.TempDir(), "node.yaml")
	yaml := "caps:\n  wan: 10Mbit\n  wan_schedule: [\"Mon-Fri 08:00-18:00=2Mbit\"]\n  site_wan: 500000\n  lan_upload: 2MiB/s\nmesh:\n  fallback_delay: 30s\n"
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Caps
	if c.WAN != 1_250_000 || c.SiteWAN != 500_000 || c.LANUpload != 2<<20 || len(c.WANSchedule) != 1 || cfg.Mesh.FallbackDelay != Duration(30*time.Second) {
		t.Errorf("caps read as %+v, fallback %v", c, cfg.Mesh.FallbackDelay)
	}
	if err := os.WriteFile(p, []byte("caps:\n  wan: 10Mb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err == nil {
		t.Error("an ambiguous rate (10Mb) was accepted")
	}
}

// A node's WAN cap is the tightest of its own (by schedule, or the
// update-now cap while one runs), its share of the site's among the members
// that fetch for the site, and the channel's; it follows the clock and the
// membership.
func TestCapsCombine(t *testing.T) {
	mon := func(h int) time.Time { return time.Date(2026, 11, 30, h, 0, 0, 0, time.Local) }
	now := mon(7)
	live := 4
	c, err := newCaps(CapsConfig{
		WAN: 2_000_000, WANSchedule: []string{"Mon-Fri 08:00-18:00=250KB/s"}, WANNow: 5_000_000,
		SiteWAN: 4_000_000, LANUpload: 1_000_000,
	}, func() int { return live }, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		at      time.Time
		live    int
		now     bool
		channel *[3]int64
		want    ratecap.Rate
	}{
		{name: "night: the site share of 4 is tighter", at: mon(7), live: 4, want: 1_000_000},
		{name: "night: alone, own cap", at: mon(7), live: 1, want: 2_000_000},
		{name: "business hours", at: mon(9), live: 1, want: 250_000},
		{name: "update now in business hours", at: mon(9), live: 1, now: true, want: 4_000_000},
		{name: "update now, site share", at: mon(9), live: 2, now: true, want: 2_000_000},
		{name: "channel tightens", at: mon(7), live: 1, channel: &[3]int64{300_000, 0, 0}, want: 300_000},
		{name: "channel site cap tightens the share", at: mon(7), live: 4, channel: &[3]int64{0, 400_000, 0}, want: 100_000},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			// Each step a minute apart: the limiter asks again on a new minute.
			now, live = st.at.Add(time.Duration(i)*time.Minute), st.live
			c.channel.Store(nil)
			if ch := st.channel; ch != nil {
				c.setChannel(ch[0], ch[1], ch[2])
			}
			if st.now {
				done := c.updateNow()
				defer done()
			}
			if got := c.wan.Rate(); got != st.want {
				t.Errorf("WAN cap %v, want %v", got, st.want)
			}
		})
	}
}
