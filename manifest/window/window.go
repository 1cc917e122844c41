// Package window reads maintenance windows ("Mon-Fri 22:00-05:00") and
// tells whether a time falls inside them, and when they next open, in the
// local time of the time given: a fleet spread over time zones applies at
// each machine's night.
package window

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrSyntax marks a window that does not parse.
var ErrSyntax = errors.New("bad maintenance window")

// Window opens on its days at Start and closes at End, seconds since local
// midnight. End below or equal to Start crosses midnight: the window belongs to
// the day it opens ("Fri 22:00-05:00" ends Saturday 05:00).
type Window struct {
	Days  [7]bool // by time.Weekday
	Start int
	End   int // up to 24h
	text  string
}

func (w Window) String() string { return w.text }

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Parse reads "[DAYS] HH:MM[:SS]-HH:MM[:SS]" or "DAYS" (whole days). DAYS is
// a day ("Mon"), a range ("Mon-Fri", "Fri-Mon" wraps) or a list of both joined
// by '+' or ',' ("Sat+Sun"); without DAYS the window opens every day.
func Parse(s string) (Window, error) {
	w := Window{text: strings.TrimSpace(s)}
	fields := strings.Fields(s)
	var days, hours string
	switch len(fields) {
	case 1:
		if strings.Contains(fields[0], ":") {
			hours = fields[0]
		} else {
			days = fields[0]
		}
	case 2:
		days, hours = fields[0], fields[1]
	default:
		return w, fmt.Errorf("%w %q: want \"[DAYS] HH:MM-HH:MM\", e.g. \"Mon-Fri 22:00-05:00\"", ErrSyntax, s)
	}
	if days == "" {
		for i := range w.Days {
			w.Days[i] = true
		}
	} else if err := parseDays(days, &w.Days); err != nil {
		return w, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
	}
	if hours == "" {
		w.Start, w.End = 0, 24*3600
		return w, nil
	}
	from, to, ok := strings.Cut(hours, "-")
	if !ok {
		return w, fmt.Errorf("%w %q: hours %q: want HH:MM-HH:MM", ErrSyntax, s, hours)
	}
	var err error
	if w.Start, err = clock(from, false); err != nil {
		return w, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
	}
	if w.End, err = clock(to, true); err != nil {
		return w, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
	}
	if w.Start == w.End {
		return w, fmt.Errorf("%w %q: opens and closes at the same time (a whole day is 00:00-24:00)", ErrSyntax, s)
	}
	return w, nil
}

func parseDays(s string, days *[7]bool) error {
	for part := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == '+' || r == ',' }) {
		a, b, isRange := strings.Cut(part, "-")
		i, err := day(a)
		if err != nil {
			return err
		}
		j := i
		if isRange {
			if j, err = day(b); err != nil {
				return err
			}
		}
		for d := i; ; d = (d + 1) % 7 {
			days[d] = true
			if d == j {
				break
			}
		}
	}
	return nil
}

func day(s string) (int, error) {
	s = strings.ToLower(s)
	if len(s) >= 3 {
		if i := slices.Index(dayNames, s[:3]); i >= 0 {
			return i, nil
		}
	}
	return 0, fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", s)
}

// clock reads HH:MM[:SS] as seconds since midnight; 24:00 only as an end.
func clock(s string, end bool) (int, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, fmt.Errorf("time %q: want HH:MM or HH:MM:SS", s)
	}
	var v [3]int
	limits := [3]int{24, 59, 59}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || len(p) > 2 || n < 0 || n > limits[i] {
			return 0, fmt.Errorf("time %q: want HH:MM or HH:MM:SS", s)
		}
		v[i] = n
	}
	secs := v[0]*3600 + v[1]*60 + v[2]
	if v[0] == 24 && (secs != 24*3600 || !end) {
		return 0, fmt.Errorf("time %q: 24:00 only ends a window", s)
	}
	return secs, nil
}

// Open reports whether t, in its own location, is inside w.
func (w Window) Open(t time.Time) bool {
	wd := int(t.Weekday())
	sec := t.Hour()*3600 + t.Minute()*60 + t.Second()
	if w.Start < w.End {
		return w.Days[wd] && sec >= w.Start && sec < w.End
	}
	// Crosses midnight: the evening of one of its days, or the morning after.
	return (w.Days[wd] && sec >= w.Start) || (w.Days[(wd+6)%7] && sec < w.End)
}

// Set is the windows of one source (the node's config, a rollout stage): it
// is open when any of them is. An empty Set is always open.
type Set []Window

// ParseSet parses each of specs.
func ParseSet(specs []string) (Set, error) {
	var s Set
	for _, spec := range specs {
		w, err := Parse(spec)
		if err != nil {
			return nil, err
		}
		s = append(s, w)
	}
	return s, nil
}

// Open reports whether t is inside one of the windows, or s is empty.
func (s Set) Open(t time.Time) bool {
	if len(s) == 0 {
		return true
	}
	for _, w := range s {
		if w.Open(t) {
			return true
		}
	}
	return false
}

func (s Set) String() string {
	parts := make([]string, len(s))
	for i, w := range s {
		parts[i] = w.String()
	}
	return strings.Join(parts, ", ")
}

// horizon bounds the search for the next opening: every weekly pattern
// repeats within it.
const horizon = 8 * 24 * time.Hour

// Both reports whether t is inside every set: when windows come from
// several places, the stricter wins.
func Both(t time.Time, sets ...Set) bool {
	for _, s := range sets {
		if !s.Open(t) {
			return false
		}
	}
	return true
}

// NextOpen returns the first time at or after t that is inside every set, in
// t's location, and false when none opens within a week (windows that never
// overlap).
func NextOpen(t time.Time, sets ...Set) (time.Time, bool) {
	if Both(t, sets...) {
		return t, true
	}
	// Openness changes only at a window's edges or when the clock jumps
	// (daylight saving), so the first open instant is one of those.
	var cand []time.Time
	loc := t.Location()
	y, m, d := t.Date()
	for i := -1; i <= 8; i++ {
		day := time.Date(y, m, d+i, 0, 0, 0, 0, loc)
		for _, s := range sets {
			for _, w := range s {
				for _, sec := range []int{w.Start, w.End} {
					cand = append(cand, at(day, sec))
				}
			}
		}
	}
	for z := t; z.Before(t.Add(horizon)); {
		_, end := z.ZoneBounds()
		if end.IsZero() || !end.After(z) {
			break
		}
		cand = append(cand, end.In(loc))
		z = end
	}
	slices.SortFunc(cand, func(a, b time.Time) int { return a.Compare(b) })
	for _, c := range cand {
		if c.After(t) && c.Before(t.Add(horizon)) && Both(c, sets...) {
			return c, true
		}
	}
	return time.Time{}, false
}

// at is sec seconds of local clock time on day; a clock time that the day
// skips (daylight saving) lands where time.Date puts it, and the zone's
// edge is a candidate of its own.
func at(day time.Time, sec int) time.Time {
	y, m, d := day.Date()
	return time.Date(y, m, d, sec/3600, sec%3600/60, sec%60, 0, day.Location())
}
