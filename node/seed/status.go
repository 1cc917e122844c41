package seed

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/api"
)

const (
	sampleEvery = 5 * time.Second
	historyLen  = 360 // samples kept: half an hour at sampleEvery
	maxChannels = 256 // channel folders read per status; the rest are not shown
	// expiringWithin is how close to its expiry a head is flagged: nodes refuse an
	// expired head, so the publisher must re-sign before then.
	expiringWithin = 24 * time.Hour
)

// Channel states in Status.Channels.
const (
	StateOK         = "ok"
	StateExpiring   = "expiring"   // the head expires within 24 hours
	StateExpired    = "expired"    // nodes refuse the head: republish or re-sign it
	StateUnreadable = "unreadable" // no head, or a head that does not parse; see Error
)

// Status is what the seed's API reports.
type Status struct {
	Repo          string             `json:"repo"`
	URL           string             `json:"url"` // the repository listener, scheme://host:port
	Started       time.Time          `json:"started"`
	UptimeSeconds float64            `json:"uptime_seconds"`
	Served        repo.StatsSnapshot `json:"served"`
	// Channels of the repository, by name. Heads are read as the files say:
	// the seed holds no trust root and does not check their signatures.
	Channels []Channel `json:"channels"`
	// History of the served counters, oldest first, one sample every few
	// seconds, the last half hour at most. Served is the newest value.
	History []Sample `json:"history"`
	// Fleet is what the collector holds; absent without --report-tokens.
	Fleet *api.Fleet `json:"fleet,omitempty"`
}

// Channel is one channel's head as the repository holds it.
type Channel struct {
	Name     string    `json:"name"`
	Version  string    `json:"version,omitempty"`
	Sequence uint64    `json:"sequence,omitempty"`
	Issued   time.Time `json:"issued,omitzero"`
	Expires  time.Time `json:"expires,omitzero"`
	State    string    `json:"state"` // StateOK, StateExpiring, StateExpired or StateUnreadable
	Error    string    `json:"error,omitempty"`
}

// Sample is the served counters at one time.
type Sample struct {
	Time       time.Time `json:"t"`
	Requests   int64     `json:"requests"`
	Bytes      int64     `json:"bytes"`
	ChunkBytes int64     `json:"chunk_bytes"`
}

// Status returns the seed's status now: what it served and the repository's channels.
func (s *Seed) Status() Status {
	now := time.Now()
	st := Status{
		Repo:     s.cfg.Repo,
		URL:      s.url(),
		Started:  s.started,
		Served:   s.Stats(),
		Channels: s.channels(now),
		History:  s.history.snapshot(),
	}
	if s.fleet != nil {
		f := s.fleet.view(now)
		st.Fleet = &f
	}
	if !s.started.IsZero() {
		st.UptimeSeconds = now.Sub(s.started).Seconds()
	}
	return st
}

// channels reads the head of every channel folder, sorted by name.
func (s *Seed) channels(now time.Time) []Channel {
	names, err := channelNames(s.cfg.Repo)
	if err != nil {
		return []Channel{{Name: "*", State: StateUnreadable, Error: err.Error()}}
	}
	out := make([]Channel, 0, len(names))
	for _, name := range names {
		c := Channel{Name: name}
		h, err := repo.ReadHeadUnverified(s.cfg.Repo, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			c.State, c.Error = StateUnreadable, "no head.json: nothing published on this channel yet"
		case err != nil:
			c.State, c.Error = StateUnreadable, err.Error()
		default:
			c.Version, c.Sequence, c.Issued, c.Expires = h.Version, h.Sequence, h.Issued, h.Expires
			c.State = headState(h.Expires, now)
		}
		out = append(out, c)
	}
	return out
}

func headState(expires, now time.Time) string {
	switch {
	case !now.Before(expires):
		return StateExpired
	case expires.Sub(now) <= expiringWithin:
		return StateExpiring
	}
	return StateOK
}

// channelNames lists the valid channel folders under channels/, at most
// maxChannels of them; a repository without channels/ has none.
func channelNames(repoDir string) ([]string, error) {
	d, err := os.Open(filepath.Join(repoDir, "channels"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var names []string
	// Read in batches so a folder filled with junk costs bounded memory.
	for len(names) < maxChannels {
		ents, err := d.ReadDir(64)
		for _, e := range ents {
			if e.IsDir() && repo.ValidChannel(e.Name()) == nil && len(names) < maxChannels {
				names = append(names, e.Name())
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(names)
	return names, nil
}

// history keeps the last samples of the served counters.
type history struct {
	mu      sync.Mutex
	max     int
	samples []Sample
}

func newHistory(max int) *history { return &history{max: max} }

func (h *history) add(x Sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) == h.max {
		copy(h.samples, h.samples[1:])
		h.samples = h.samples[:h.max-1]
	}
	h.samples = append(h.samples, x)
}

func (h *history) snapshot() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Sample{}, h.samples...)
}

// takeSample records the served counters at t.
func (s *Seed) takeSample(t time.Time) {
	st := s.Stats()
	s.history.add(Sample{Time: t, Requests: st.Requests, Bytes: st.Bytes, ChunkBytes: st.ChunkBytes})
}

// sample records the served counters every s.sampleEvery until ctx ends.
func (s *Seed) sample(ctx context.Context) {
	tick := time.NewTicker(s.sampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-tick.C:
			s.takeSample(t)
		}
	}
}
