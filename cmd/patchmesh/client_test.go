package main

import (
	"testing"

	"github.com/patchmesh/patchmesh/node/api"
)

// TestCapsLine: the status's caps line names each cap set, in bits a second,
// and the time waited on them; no line when no cap is set.
func TestCapsLine(t *testing.T) {
	tests := []struct {
		name string
		caps *api.Caps
		want string
	}{
		{"no caps in the status", nil, ""},
		{"none set", &api.Caps{WANThrottledSeconds: 3}, ""},
		{"a distribution point's share of a site cap", &api.Caps{WAN: 1_000_000, SiteWAN: 1_000_000, WANThrottledSeconds: 12.4},
			"WAN 8Mbit/s, site WAN 8Mbit/s; waited 12s"},
		{"update now", &api.Caps{WAN: 5_000_000, UpdateNow: true}, "WAN 40Mbit/s (update now)"},
		{"LAN upload only", &api.Caps{LANUpload: 125_000_000, LANThrottledSeconds: 0.4}, "LAN upload 1000Mbit/s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := capsLine(tt.caps); got != tt.want {
				t.Errorf("capsLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTriggerText(t *testing.T) {
	for _, tt := range []struct{ trigger, want string }{
		{"start", " (at start)"},
		{"schedule", " (on schedule)"},
		{"retry", " (retry after a failure)"},
		{"asked", " (asked)"},
		{"site", " (a site member had a newer release)"},
		{"", ""},
		{"from a newer node", ""},
	} {
		if got := triggerText(tt.trigger); got != tt.want {
			t.Errorf("triggerText(%q) = %q, want %q", tt.trigger, got, tt.want)
		}
	}
}
