// Package ratecap paces byte streams under byte-rate caps that may change with
// the local weekday and hour: a node's WAN cap, its share of its site's WAN
// cap and its LAN upload cap.
package ratecap

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Rate is a byte rate in bytes per second; zero means no cap.
type Rate int64

// rateUnits maps a unit, lower-cased and without "/s" or "ps", to bytes per
// second. k, M, G are decimal (as network links are sold); KiB, MiB, GiB binary.
var rateUnits = map[string]float64{
	"": 1, "b": 1, "byte": 1, "bytes": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	"bit": 1.0 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
}

// ParseRate reads a rate such as "10Mbit", "10mbps" (bits: tc and ISPs spell
// megabits so), "500KB/s", "2MiB/s" or a plain number of bytes a second.
// "0", "off" and "" mean no cap.
func ParseRate(s string) (Rate, error) {
	st := strings.TrimSpace(s)
	t := strings.ToLower(st)
	if t == "" || t == "off" || t == "none" || t == "0" {
		return 0, nil
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("parse rate %q: want a number and a unit, e.g. 10Mbit or 500KB/s", s)
	}
	unit = strings.TrimSuffix(unit, "/s")
	if strings.HasSuffix(unit, "bps") { // "mbps": megabits, as tc and ISPs mean it
		unit = strings.TrimSuffix(unit, "ps") + "it"
	}
	// "KB" and "kB" are kilobytes, "kbit" kilobits; "kb" or "Mb" could be either.
	if raw := strings.TrimSuffix(strings.TrimSpace(st[i:]), "/s"); len(raw) == 2 && raw[1] == 'b' {
		return 0, fmt.Errorf("parse rate %q: %q is ambiguous: write %sbit for bits or %sB for bytes", s, raw, raw[:1], raw[:1])
	}
	m, ok := rateUnits[unit]
	if !ok {
		return 0, fmt.Errorf("parse rate %q: unknown unit %q (want B, KB, MB, KiB, MiB, kbit, Mbit, Gbit, with optional /s)", s, strings.TrimSpace(st[i:]))
	}
	r := v * m
	if r > math.MaxInt64/2 {
		return 0, fmt.Errorf("parse rate %q: too large", s)
	}
	if r > 0 && r < 1 {
		r = 1
	}
	return Rate(r), nil
}

// String writes r in the units a person reads: Mbit/s for link speeds.
func (r Rate) String() string {
	switch {
	case r <= 0:
		return "off"
	case r*8 >= 1e6:
		return strconv.FormatFloat(float64(r)*8/1e6, 'f', -1, 64) + "Mbit/s"
	case r*8 >= 1e3:
		return strconv.FormatFloat(float64(r)*8/1e3, 'f', -1, 64) + "kbit/s"
	}
	return strconv.FormatInt(int64(r), 10) + "B/s"
}

// UnmarshalText parses a rate in YAML and flags.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalText writes the rate in bytes a second, exact.
func (r Rate) MarshalText() ([]byte, error) {
	return []byte(strconv.FormatInt(int64(r), 10) + "B/s"), nil
}

// Set implements pflag.Value.
func (r *Rate) Set(s string) error { return r.UnmarshalText([]byte(s)) }

// Type implements pflag.Value.
func (r *Rate) Type() string { return "rate" }

// Min returns the tighter of two caps; zero is no cap.
func Min(a, b Rate) Rate {
	switch {
	case a <= 0:
		return max(b, 0)
	case b <= 0:
		return a
	}
	return min(a, b)
}
