package ratecap

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want Rate
		bad  bool
	}{
		{in: "10Mbit", want: 1_250_000},
		{in: "10mbps", want: 1_250_000},
		{in: "10 Mbit/s", want: 1_250_000},
		{in: "500KB/s", want: 500_000},
		{in: "2MiB/s", want: 2 << 20},
		{in: "1.5MB", want: 1_500_000},
		{in: "64kbit", want: 8000},
		{in: "4096", want: 4096},
		{in: "off", want: 0},
		{in: "0", want: 0},
		{in: "", want: 0},
		{in: "10Mb", bad: true},
		{in: "10 furlongs", bad: true},
		{in: "-3MB", bad: true},
		{in: "fast", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseRate(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRate(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// A Monday in local time, so the schedule reads as written.
func monday(h, m int) time.Time { return time.Date(2026, 11, 30, h, m, 0, 0, time.Local) }

func TestScheduleAt(t *testing.T) {
	s, err := ParseSchedule([]string{"Mon-Fri 08:00-18:00=2Mbit", "Sat,Sun=off", "* 22:00-06:00=50Mbit"})
	if err != nil {
		t.Fatal(err)
	}
	const base = Rate(1_000_000)
	tests := []struct {
		name string
		at   time.Time
		want Rate
	}{
		{"monday before business hours", monday(7, 59), base},
		{"monday at opening", monday(8, 0), 250_000},
		{"monday last minute", monday(17, 59), 250_000},
		{"monday at closing", monday(18, 0), base},
		{"monday night", monday(23, 0), 6_250_000},
		{"tuesday early morning, night window of monday", monday(3, 0).AddDate(0, 0, 1), 6_250_000},
		{"saturday noon", monday(12, 0).AddDate(0, 0, 5), 0},
		{"friday noon", monday(12, 0).AddDate(0, 0, 4), 250_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.At(tt.at, base); got != tt.want {
				t.Errorf("At(%s) = %v, want %v", tt.at.Format("Mon 15:04"), got, tt.want)
			}
		})
	}
}

func TestParseWindowRefuses(t *testing.T) {
	for _, in := range []string{"Mon-Fri 08:00-18:00", "Mon-Fry=1MB", "Mon 8-18=1MB", "Mon 08:00-25:00=1MB", "=1MB", "Mon 08:00-18:00=fast"} {
		if _, err := ParseWindow(in); err == nil {
			t.Errorf("ParseWindow(%q) accepted", in)
		}
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// The business-hours cap takes over at 08:00 and lets go at 18:00, as the
// limiter sees the clock, without anyone restarting anything.
func TestLimiterSwitchesAtBoundary(t *testing.T) {
	s, err := ParseSchedule([]string{"Mon-Fri 08:00-18:00=2Mbit"})
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: monday(7, 59)}
	l := NewLimiter(func(t time.Time) Rate { return s.At(t, 10_000_000) }, clk.now)
	steps := []struct {
		at   time.Time
		want Rate
	}{
		{monday(7, 59), 10_000_000},
		{monday(7, 59).Add(59 * time.Second), 10_000_000},
		{monday(8, 0), 250_000},
		{monday(17, 59).Add(59*time.Second + 999*time.Millisecond), 250_000},
		{monday(18, 0), 10_000_000},
	}
	for _, st := range steps {
		clk.set(st.at)
		if got := l.Rate(); got != st.want {
			t.Errorf("at %s: cap %v, want %v", st.at.Format("15:04:05.000"), got, st.want)
		}
	}
}

// Bytes through a capped limiter take at least bytes/cap, less one bucket.
func TestLimiterHoldsRate(t *testing.T) {
	const cap, total = Rate(400_000), 300_000
	l := NewLimiter(func(time.Time) Rate { return cap }, nil)
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 { // concurrent readers share one bucket
		wg.Go(func() {
			for range total / 4 / 5000 {
				if err := l.WaitN(context.Background(), 5000); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	min := time.Duration(float64(total-burst(cap)) / float64(cap) * float64(time.Second))
	if el := time.Since(start); el < min {
		t.Errorf("%d bytes at %v took %v, want at least %v", total, cap, el, min)
	}
	if l.Throttled() <= 0 {
		t.Error("no throttled time counted")
	}
}

func TestLimiterUncappedAndCancelled(t *testing.T) {
	l := NewLimiter(func(time.Time) Rate { return 0 }, nil)
	if err := l.WaitN(context.Background(), 1<<30); err != nil {
		t.Fatalf("uncapped WaitN: %v", err)
	}
	slow := NewLimiter(func(time.Time) Rate { return 1000 }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := slow.WaitN(ctx, 1<<20); err == nil {
		t.Fatal("WaitN of a MiB at 1000 B/s with a cancelled context returned nil")
	}
}
