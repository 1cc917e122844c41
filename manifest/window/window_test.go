package window

import (
	"errors"
	"testing"
	"time"
	_ "time/tzdata" // the DST cases need Europe/Paris wherever the tests run
)

func TestParse(t *testing.T) {
	tests := []struct {
		spec    string
		days    string // by weekday from Sunday, x: in
		start   int
		end     int
		wantErr bool
	}{
		{spec: "Mon-Fri 22:00-05:00", days: ".xxxxx.", start: 22 * 3600, end: 5 * 3600},
		{spec: "Sat+Sun", days: "x.....x", start: 0, end: 24 * 3600},
		{spec: "sat,sunday 00:00-24:00", days: "x.....x", start: 0, end: 24 * 3600},
		{spec: "Fri-Mon 01:30-02:00:30", days: "xx...xx", start: 5400, end: 7230},
		{spec: "03:00-04:00", days: "xxxxxxx", start: 3 * 3600, end: 4 * 3600},
		{spec: "Mon 22:00-22:00", wantErr: true},
		{spec: "Mon 24:00-05:00", wantErr: true},
		{spec: "Mon 25:00-26:00", wantErr: true},
		{spec: "Funday 01:00-02:00", wantErr: true},
		{spec: "Mon 01:00", wantErr: true},
		{spec: "Mon 1:00-2", wantErr: true},
		{spec: "", wantErr: true},
		{spec: "Mon Tue 01:00-02:00", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			w, err := Parse(tt.spec)
			if tt.wantErr {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("Parse(%q) = %+v, %v; want ErrSyntax", tt.spec, w, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var days string
			for _, in := range w.Days {
				days += map[bool]string{true: "x", false: "."}[in]
			}
			if days != tt.days || w.Start != tt.start || w.End != tt.end {
				t.Errorf("Parse(%q) = days %s %d-%d; want %s %d-%d", tt.spec, days, w.Start, w.End, tt.days, tt.start, tt.end)
			}
		})
	}
}

func TestOpenAndNext(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04:05", s, paris)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 2026-11-30 is a Monday; 2026-03-29 and 2026-10-25 are the Sundays
	// Paris moves its clocks.
	tests := []struct {
		name    string
		windows []string
		now     string
		open    bool
		next    string // "": never within a week
	}{
		{"inside", []string{"Mon-Fri 09:00-17:00"}, "2026-11-30 12:00:00", true, "2026-11-30 12:00:00"},
		{"before", []string{"Mon-Fri 09:00-17:00"}, "2026-11-30 08:59:59", false, "2026-11-30 09:00:00"},
		{"end is open-ended", []string{"Mon-Fri 09:00-17:00"}, "2026-11-30 17:00:00", false, "2026-12-01 09:00:00"},
		{"midnight crossing, evening", []string{"Mon-Fri 22:00-05:00"}, "2026-11-30 23:30:00", true, "2026-11-30 23:30:00"},
		{"midnight crossing, morning after", []string{"Mon-Fri 22:00-05:00"}, "2026-12-01 04:59:59", true, "2026-12-01 04:59:59"},
		{"midnight crossing, Saturday morning belongs to Friday", []string{"Mon-Fri 22:00-05:00"}, "2026-12-05 03:00:00", true, "2026-12-05 03:00:00"},
		{"midnight crossing, Monday morning belongs to no day", []string{"Mon-Fri 22:00-05:00"}, "2026-11-30 03:00:00", false, "2026-11-30 22:00:00"},
		{"weekday edge: Friday evening to Monday", []string{"Mon-Fri 22:00-05:00"}, "2026-12-05 05:00:00", false, "2026-12-07 22:00:00"},
		{"weekend only", []string{"Sat+Sun"}, "2026-12-04 23:59:59", false, "2026-12-05 00:00:00"},
		{"wrapping day range", []string{"Sat-Mon 00:00-24:00"}, "2026-11-30 23:00:00", true, "2026-11-30 23:00:00"},
		{"two windows, the next one", []string{"Mon 01:00-02:00", "Wed 01:00-02:00"}, "2026-11-30 03:00:00", false, "2026-12-02 01:00:00"},
		{"spring forward: the window opens when the clock jumps", []string{"Sun 02:00-04:00"}, "2026-03-29 01:00:00", false, "2026-03-29 03:00:00"},
		{"spring forward: a skipped window does not open", []string{"Sun 02:10-02:50"}, "2026-03-29 01:00:00", false, "2026-04-05 02:10:00"},
		{"fall back: the repeated hour is inside", []string{"Sun 02:00-02:30"}, "2026-10-25 01:59:00", false, "2026-10-25 02:00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := ParseSet(tt.windows)
			if err != nil {
				t.Fatal(err)
			}
			now := at(tt.now)
			if got := set.Open(now); got != tt.open {
				t.Errorf("Open(%s) = %v, want %v", now, got, tt.open)
			}
			next, ok := NextOpen(now, set)
			if tt.next == "" {
				if ok {
					t.Errorf("NextOpen(%s) = %s, want none", now, next)
				}
				return
			}
			if want := at(tt.next); !ok || !next.Equal(want) {
				t.Errorf("NextOpen(%s) = %s, %v; want %s", now, next, ok, want)
			}
		})
	}
}

// TestStricterWins: a node's windows and a rollout stage's both hold; the
// apply waits for a time inside both.
func TestStricterWins(t *testing.T) {
	loc := time.FixedZone("test", 2*3600)
	node, _ := ParseSet([]string{"Mon-Fri 22:00-05:00"})
	stage, _ := ParseSet([]string{"Tue+Thu 00:00-24:00"})
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, loc) // Monday noon
	next, ok := NextOpen(now, node, stage)
	// Monday 22:00 is outside the stage's days; Tuesday 00:00 is inside both.
	if want := time.Date(2026, 12, 1, 0, 0, 0, 0, loc); !ok || !next.Equal(want) {
		t.Errorf("NextOpen = %s, %v; want %s", next, ok, want)
	}
	if Both(time.Date(2026, 12, 1, 6, 0, 0, 0, loc), node, stage) {
		t.Error("Tuesday 06:00 is outside the node's window but was open")
	}
	never, _ := ParseSet([]string{"Mon 01:00-02:00"})
	other, _ := ParseSet([]string{"Tue 01:00-02:00"})
	if at, ok := NextOpen(now, never, other); ok {
		t.Errorf("windows that never overlap opened at %s", at)
	}
	if !Both(now) || !Both(now, nil) {
		t.Error("no windows must mean always open")
	}
}
