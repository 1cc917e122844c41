package node

import (
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/patchmesh/patchmesh/chunk/store"
)

// Daily byte counters, kept in the store's meta so the 7- and 28-day WAN
// savings survive restarts: one key a day (UTC), the oldest dropped.
const (
	metaDaily = "daily/"
	keepDays  = 28
)

// dailyBytes holds the counters of the last keepDays days, by "2006-01-02".
// Only siteLoop touches it.
type dailyBytes struct {
	days  map[string]bytesNow
	dirty map[string]bool
}

func dayKey(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// loadDaily reads the counters the store holds; unreadable days are dropped.
func loadDaily(st *store.Store, log *slog.Logger) *dailyBytes {
	d := &dailyBytes{days: map[string]bytesNow{}, dirty: map[string]bool{}}
	all, err := st.ListMeta(metaDaily)
	if err != nil {
		log.Warn("read daily byte counters; starting from zero", "err", err)
		return d
	}
	for k, v := range all {
		var b bytesNow
		if len(v) > 1024 || json.Unmarshal(v, &b) != nil {
			continue
		}
		d.days[strings.TrimPrefix(k, metaDaily)] = b
	}
	return d
}

func (d *dailyBytes) add(now time.Time, b bytesNow) {
	k := dayKey(now)
	c := d.days[k]
	c.WAN += max(b.WAN, 0)
	c.LAN += max(b.LAN, 0)
	c.Served += max(b.Served, 0)
	d.days[k] = c
	d.dirty[k] = true
}

// window sums the counters of the last n days, today included.
func (d *dailyBytes) window(now time.Time, n int) bytesNow {
	var s bytesNow
	for i := range n {
		b := d.days[dayKey(now.AddDate(0, 0, -i))]
		s.WAN += b.WAN
		s.LAN += b.LAN
		s.Served += b.Served
	}
	return s
}

// save writes the days that changed and deletes those past keepDays.
func (d *dailyBytes) save(st *store.Store, now time.Time, log *slog.Logger) {
	oldest := dayKey(now.AddDate(0, 0, -(keepDays - 1)))
	for k := range d.days {
		if k < oldest {
			delete(d.days, k)
			delete(d.dirty, k)
			if err := st.DeleteMeta(metaDaily + k); err != nil {
				log.Debug("drop old daily byte counter", "day", k, "err", err)
			}
		}
	}
	for k := range d.dirty {
		b, _ := json.Marshal(d.days[k])
		if err := st.SetMetaLazy(metaDaily+k, b); err != nil {
			log.Warn("save daily byte counters", "day", k, "err", err)
			continue
		}
		delete(d.dirty, k)
	}
}
