package ratecap

import (
	"fmt"
	"strings"
	"time"
)

// Window is a cap that holds on some weekdays between two times of day, in
// the node's local time: "Mon-Fri 08:00-18:00=2Mbit". A window whose end is
// before its start runs past midnight ("22:00-06:00"): its days name the
// day it starts on.
type Window struct {
	Days     [7]bool // by time.Weekday
	From, To int     // minutes after midnight; To == From: the whole day
	Rate     Rate
	text     string
}

// Schedule is a list of windows; the first that holds at a time sets the cap.
type Schedule []Window

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWindow reads "DAYS HH:MM-HH:MM=RATE". DAYS is a day, a range or a
// comma-separated list of either ("Mon-Fri", "Sat,Sun", "Fri-Mon") or "*";
// the hours may be left out for the whole day ("Sat,Sun=off").
func ParseWindow(s string) (Window, error) {
	w := Window{text: strings.TrimSpace(s)}
	spec, rate, ok := strings.Cut(w.text, "=")
	if !ok {
		return w, fmt.Errorf("parse schedule %q: want DAYS HH:MM-HH:MM=RATE, e.g. \"Mon-Fri 08:00-18:00=2Mbit\"", s)
	}
	r, err := ParseRate(rate)
	if err != nil {
		return w, fmt.Errorf("parse schedule %q: %w", s, err)
	}
	w.Rate = r
	fields := strings.Fields(spec)
	if len(fields) == 0 || len(fields) > 2 {
		return w, fmt.Errorf("parse schedule %q: want DAYS HH:MM-HH:MM=RATE", s)
	}
	if err := w.parseDays(fields[0]); err != nil {
		return w, fmt.Errorf("parse schedule %q: %w", s, err)
	}
	if len(fields) == 2 {
		from, to, ok := strings.Cut(fields[1], "-")
		if !ok {
			return w, fmt.Errorf("parse schedule %q: hours %q: want HH:MM-HH:MM", s, fields[1])
		}
		if w.From, err = parseClock(from); err == nil {
			w.To, err = parseClock(to)
		}
		if err != nil {
			return w, fmt.Errorf("parse schedule %q: %w", s, err)
		}
	}
	return w, nil
}

func (w *Window) parseDays(s string) error {
	if s == "*" {
		for i := range w.Days {
			w.Days[i] = true
		}
		return nil
	}
	for _, part := range strings.Split(strings.ToLower(s), ",") {
		a, b, isRange := strings.Cut(part, "-")
		from, ok1 := weekdays[a]
		to := from
		ok2 := true
		if isRange {
			to, ok2 = weekdays[b]
		}
		if !ok1 || !ok2 {
			return fmt.Errorf("days %q: want Mon, Tue, … Sun, ranges like Mon-Fri, or *", s)
		}
		for d := from; ; d = (d + 1) % 7 {
			w.Days[d] = true
			if d == to {
				break
			}
		}
	}
	return nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		if s == "24:00" {
			return 24 * 60, nil
		}
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// holds reports whether w covers the local time t.
func (w Window) holds(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	d := t.Weekday()
	switch {
	case w.From == w.To || (w.From == 0 && w.To == 24*60):
		return w.Days[d]
	case w.From < w.To:
		return w.Days[d] && m >= w.From && m < w.To
	}
	// Past midnight: the evening part on its own day, the morning part on the next.
	return (w.Days[d] && m >= w.From) || (w.Days[(d+6)%7] && m < w.To)
}

// String returns the window as it was written.
func (w Window) String() string { return w.text }

// At returns the cap at t: the first window that holds, else base.
func (s Schedule) At(t time.Time, base Rate) Rate {
	for _, w := range s {
		if w.holds(t) {
			return w.Rate
		}
	}
	return base
}

// ParseSchedule reads windows, one a string, as flags and YAML give them.
func ParseSchedule(specs []string) (Schedule, error) {
	var s Schedule
	for _, spec := range specs {
		w, err := ParseWindow(spec)
		if err != nil {
			return nil, err
		}
		s = append(s, w)
	}
	return s, nil
}
