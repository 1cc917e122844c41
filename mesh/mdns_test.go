package mesh

import (
	"testing"
	"time"
)

// TestMDNSWithStatusUpdates: a node discovering its site by mDNS takes status
// updates while it announces itself; under -race this caught mdnsLoop reading
// memberlist's local node while metaLoop rewrote it.
func TestMDNSWithStatusUpdates(t *testing.T) {
	w := newTestWAN(t)
	cfg := loopbackConfig(siteKey(t), "mdns")
	cfg.MDNS = true
	n := startNode(t, cfg, w, nil, runOptions{})
	want := []byte("status 9")
	for i := range 10 {
		if err := n.m.SetStatus([]byte("status " + string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []byte
		for _, mb := range n.m.Members() {
			if mb.Self {
				got = mb.Status
			}
		}
		if string(got) == string(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("own status %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
