package node

import (
	"log/slog"

	"github.com/patchmesh/patchmesh/chunk/store"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/mesh"
	"github.com/patchmesh/patchmesh/node/api"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name  string
		nodes []api.SiteNode
		want  string
		on    int
		fail  int
	}{
		{"empty", nil, "0 member(s), none running a release yet", 0, 0},
		{"all on latest", []api.SiteNode{{Name: "a", State: "alive", Version: "1.4.2", Sequence: 3}, {Name: "b", State: "alive", Version: "1.4.2", Sequence: 3}},
			"2 of 2 on 1.4.2", 2, 0},
		{"failing and dead", []api.SiteNode{
			{Name: "a", State: "alive", Version: "1.4.2", Sequence: 3},
			{Name: "b", State: "alive", Version: "1.4.1", Sequence: 2, Outcome: "rolled-back", Message: "health check failed"},
			{Name: "c", State: "dead", Version: "1.4.1", Sequence: 2},
		}, "1 of 3 on 1.4.2; 2 failing: b (rolled-back), c (unreachable)", 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &api.SiteView{Nodes: tt.nodes}
			summarize(v)
			if v.Summary != tt.want || v.OnLatest != tt.on || len(v.Failing) != tt.fail {
				t.Fatalf("summary %q on %d failing %d, want %q %d %d", v.Summary, v.OnLatest, len(v.Failing), tt.want, tt.on, tt.fail)
			}
		})
	}
}

// A summary fits the mesh's bound whatever the release and the message.
func TestSummaryFits(t *testing.T) {
	big := int64(1) << 62
	s := memberSummary{Version: strings.Repeat("\x01", 500), Seq: ^uint64(0), Checked: big, Outcome: "rolled-back",
		Message: strings.Repeat("\"é\x00", 1000), Failures: big, Halted: true,
		WAN7d: big, LAN7d: big, WAN28d: big, LAN28d: big, Served28d: big, Channel: strings.Repeat("c", 64), Head: ^uint64(0)}
	if b := s.encode(); len(b) > mesh.MaxSummary {
		t.Fatalf("summary of %d bytes, over %d", len(b), mesh.MaxSummary)
	}
}

func TestNewestHead(t *testing.T) {
	sum := func(ch string, head uint64) []byte { return memberSummary{Channel: ch, Head: head, Seq: 1}.encode() }
	alive := func(name string) mesh.Member { return mesh.Member{Name: name, State: mesh.StateAlive} }
	tests := []struct {
		name    string
		members []mesh.Member
		sums    map[string][]byte
		seq     uint64
		from    string
	}{
		{"the newest of the live others", []mesh.Member{alive("a"), alive("b"), alive("c")},
			map[string][]byte{"a": sum("stable", 4), "b": sum("stable", 6), "c": sum("stable", 5)}, 6, "b"},
		{"another channel's sequence is no news", []mesh.Member{alive("a"), alive("b")},
			map[string][]byte{"a": sum("beta", 9), "b": sum("stable", 3)}, 3, "b"},
		{"this node's own summary", []mesh.Member{{Name: "me", State: mesh.StateAlive, Self: true}, alive("b")},
			map[string][]byte{"me": sum("stable", 9), "b": sum("stable", 3)}, 3, "b"},
		{"dead and leaving members", []mesh.Member{{Name: "d", State: mesh.StateDead}, {Name: "l", State: mesh.StateLeaving}},
			map[string][]byte{"d": sum("stable", 9), "l": sum("stable", 8)}, 0, ""},
		{"no summary, or one unreadable", []mesh.Member{alive("a"), alive("b")},
			map[string][]byte{"b": []byte("{")}, 0, ""},
		{"an older member without the fields", []mesh.Member{alive("a")},
			map[string][]byte{"a": []byte(`{"v":"1.0.0","q":3}`)}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, from := newestHead(tt.members, tt.sums, "stable")
			if seq != tt.seq || from != tt.from {
				t.Errorf("got %d from %q, want %d from %q", seq, from, tt.seq, tt.from)
			}
		})
	}
}

func TestDailyWindows(t *testing.T) {
	d := &dailyBytes{days: map[string]bytesNow{}, dirty: map[string]bool{}}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	d.add(now, bytesNow{WAN: 10, LAN: 90})
	d.add(now.AddDate(0, 0, -6), bytesNow{WAN: 100})
	d.add(now.AddDate(0, 0, -7), bytesNow{WAN: 1000})
	d.add(now.AddDate(0, 0, -28), bytesNow{WAN: 10000})
	if w := d.window(now, 7); w.WAN != 110 || w.LAN != 90 {
		t.Fatalf("7 days: %+v", w)
	}
	if w := d.window(now, 28); w.WAN != 1110 {
		t.Fatalf("28 days: %+v", w)
	}
}

// The daily counters survive a restart, in the store's meta; days past the
// window are dropped.
func TestDailySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	st, err := store.Open(dir, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	d := loadDaily(st, slog.New(slog.DiscardHandler))
	d.add(now, bytesNow{WAN: 5, LAN: 15, Served: 7})
	d.add(now.AddDate(0, 0, -40), bytesNow{WAN: 99})
	d.save(st, now, slog.New(slog.DiscardHandler))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(dir, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d = loadDaily(st, slog.New(slog.DiscardHandler))
	if w := d.window(now, 28); w != (bytesNow{WAN: 5, LAN: 15, Served: 7}) {
		t.Fatalf("after restart: %+v", w)
	}
	if len(d.days) != 1 {
		t.Fatalf("%d days kept, want 1", len(d.days))
	}
}
