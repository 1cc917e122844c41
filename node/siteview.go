package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patchmesh/patchmesh/mesh"
	"github.com/patchmesh/patchmesh/node/api"
)

// memberSummary is what a node gossips of itself for the site view
// (mesh.SetSummary): compact JSON, at most mesh.MaxSummary bytes.
type memberSummary struct {
	Version   string `json:"v,omitempty"`
	Seq       uint64 `json:"q,omitempty"`
	Checked   int64  `json:"c,omitempty"` // unix seconds the last check ended
	Outcome   string `json:"o,omitempty"`
	Message   string `json:"m,omitempty"` // cut to fit
	Failures  int64  `json:"f,omitempty"`
	Halted    bool   `json:"h,omitempty"`
	WAN7d     int64  `json:"w7,omitempty"`
	LAN7d     int64  `json:"l7,omitempty"`
	WAN28d    int64  `json:"w28,omitempty"`
	LAN28d    int64  `json:"l28,omitempty"`
	Served28d int64  `json:"s28,omitempty"`
	// Channel and Head: the first channel's name and the newest release of
	// it the member verified (head and manifest), which members that catch
	// up (--site-catch-up) check for.
	Channel string `json:"ch,omitempty"`
	Head    uint64 `json:"hd,omitempty"`
}

// Cuts that keep a summary under mesh.MaxSummary whatever the release.
const (
	maxSummaryVersion = 64
	maxSummaryMessage = 200
	// summaryEvery is how often a node refreshes its summary and daily
	// counters; the gossip only carries it when it changed.
	summaryEvery = 5 * time.Second
)

// encode returns s as JSON within mesh.MaxSummary bytes, cutting the
// message (JSON escaping may grow it) until it fits.
func (s memberSummary) encode() []byte {
	s.Version = cut(s.Version, maxSummaryVersion)
	s.Message = cut(s.Message, maxSummaryMessage)
	for {
		b, err := json.Marshal(s)
		if err == nil && len(b) <= mesh.MaxSummary {
			return b
		}
		if s.Message == "" {
			s.Version = "" // only a version of escapes gets here
			continue
		}
		s.Message = cut(s.Message, len(s.Message)/2)
	}
}

// cut shortens s to at most n bytes on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// failingOutcome reports whether a check outcome means the member needs a look.
func failingOutcome(o string) bool {
	switch o {
	case "failed", "rolled-back", "refused", "aborted", "skipped-bad":
		return true
	}
	return false
}

// siteLoop keeps the daily byte counters and gossips this node's summary
// until ctx ends, and reports the site when this node is elected to.
func (n *Node) siteLoop(ctx context.Context) {
	days := loadDaily(n.store, n.log)
	var last bytesNow
	var lastCheck *api.CheckResult
	var failures int64
	var lastSent []byte
	var caught caughtUp
	t := time.NewTicker(summaryEvery)
	defer t.Stop()
	for {
		now := time.Now()
		cur := n.bytesNow()
		if d := cur.sub(last); d != (bytesNow{}) {
			days.add(now, d)
			days.save(n.store, now, n.log)
		}
		last = cur
		// The first channel's: the one the site's gossip carries.
		n.mu.Lock()
		lc := n.followers[0].st.lastCheck
		n.mu.Unlock()
		if lc != nil && lc != lastCheck && failingOutcome(lc.Outcome) {
			failures++
		}
		lastCheck = lc
		if n.mesh != nil {
			// Read once for the summary and for catching up.
			head, headErr := n.followers[0].highestSeq()
			s := n.ownSummary(now, days, lc, failures)
			if headErr == nil {
				s.Head = head
			}
			if b := s.encode(); string(b) != string(lastSent) {
				if err := n.mesh.SetSummary(b); err != nil {
					n.log.Warn("gossip site summary", "err", err)
				}
				lastSent = b
			}
			// Until the check at start ends, it is catching up by itself.
			if lc != nil && headErr == nil && (n.cfg.Mesh.CatchUp == nil || *n.cfg.Mesh.CatchUp) {
				n.catchUp(&caught, head)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.summaryNow:
		}
	}
}

// ownSummary is this node's summary now.
func (n *Node) ownSummary(now time.Time, days *dailyBytes, lc *api.CheckResult, failures int64) memberSummary {
	s := memberSummary{Failures: failures}
	first := n.followers[0]
	if rec := first.currentRecord(); rec != nil {
		s.Version, s.Seq = rec.Version, rec.Sequence
	} else if v, q, ok := splitName(first.inst.Current()); ok {
		s.Version, s.Seq = v, q
	}
	if lc != nil {
		s.Checked, s.Outcome, s.Message = lc.Finished.Unix(), lc.Outcome, lc.Message
	}
	s.Failures += n.stat.rollbacks()
	if ro := first.rolloutStatus(); ro != nil {
		s.Halted = ro.Halted
	}
	w7 := days.window(now, 7)
	w28 := days.window(now, 28)
	s.WAN7d, s.LAN7d = w7.WAN, w7.LAN
	s.WAN28d, s.LAN28d, s.Served28d = w28.WAN, w28.LAN, w28.Served
	s.Channel = first.channel // and Head, which the site loop sets
	return s
}

// newestHead returns the newest release of channel that a live member other
// than this node gossips having verified, and that member's name.
func newestHead(members []mesh.Member, sums map[string][]byte, channel string) (seq uint64, from string) {
	for _, m := range members {
		if m.Self || m.State != mesh.StateAlive {
			continue
		}
		var s memberSummary
		if b, ok := sums[m.Name]; !ok || json.Unmarshal(b, &s) != nil || s.Channel != channel {
			continue
		}
		if s.Head > seq {
			seq, from = s.Head, m.Name
		}
	}
	return seq, from
}

// triggerSite is the trigger of a check made to catch up with the site.
const triggerSite = "site"

// catchUpGap is the least time between two checks a node makes to catch up
// with its site: a member that gossips ever newer releases it does not have
// (another source, or a lie) costs a check per gap, no more.
const catchUpGap = 30 * time.Second

// caughtUp is what catchUp last did: the release it caught up with, and when.
type caughtUp struct {
	seq uint64
	at  time.Time
}

// catchUp makes the first channel's check due when a live member of the site
// has verified a newer release of it than own, the newest this node has,
// once for each newer release seen and at most once a catchUpGap.
func (n *Node) catchUp(last *caughtUp, own uint64) {
	if time.Since(last.at) < catchUpGap {
		return
	}
	first := n.followers[0]
	newest, from := newestHead(n.mesh.Members(), n.mesh.Summaries(), first.channel)
	if newest <= own || newest <= last.seq {
		return
	}
	n.log.Info("a site member has a newer release: checking now", "from", from, "sequence", newest, "highest_here", own)
	if err := n.sched.Due(0, triggerSite); err != nil {
		n.log.Warn("catch up with the site", "err", err)
		return
	}
	*last = caughtUp{seq: newest, at: time.Now()}
}

// siteView builds the site view from the members' gossiped summaries.
func (n *Node) siteView() *api.SiteView {
	if n.mesh == nil {
		return nil
	}
	sums := n.mesh.Summaries()
	v := &api.SiteView{Site: n.siteLabel(), Failing: []api.SiteFailure{}, Nodes: []api.SiteNode{},
		Gossip: api.SiteGossip{StateBytes: n.mesh.SummaryStateSize(), Summaries: len(sums), SummaryCap: mesh.MaxSummary, MembersCap: mesh.MaxSummaries}}
	for _, b := range sums {
		v.Gossip.SummaryMaxBytes = max(v.Gossip.SummaryMaxBytes, len(b))
	}
	for _, m := range n.mesh.Members() {
		if m.State == mesh.StateLeft || len(v.Nodes) >= api.MaxSiteNodes {
			continue
		}
		sn := api.SiteNode{Name: m.Name, State: m.State}
		var s memberSummary
		if b, ok := sums[m.Name]; ok && json.Unmarshal(b, &s) == nil {
			sn.Version, sn.Sequence, sn.Outcome, sn.Message = s.Version, s.Seq, s.Outcome, s.Message
			if s.Checked > 0 {
				sn.LastCheck = time.Unix(s.Checked, 0)
			}
			sn.Failures, sn.Halted = s.Failures, s.Halted
			sn.WAN7d, sn.LAN7d, sn.WAN28d, sn.LAN28d, sn.Served28d = s.WAN7d, s.LAN7d, s.WAN28d, s.LAN28d, s.Served28d
		}
		if m.State == mesh.StateAlive && v.Reporter == "" {
			v.Reporter = m.Name // Members is sorted by name
		}
		v.Nodes = append(v.Nodes, sn)
	}
	summarize(v)
	return v
}

// summarize fills the view's totals and its one-line summary from its nodes.
func summarize(v *api.SiteView) {
	v.Members = len(v.Nodes)
	v.OnLatest, v.Latest, v.LatestSeq = 0, "", 0
	v.Failing = v.Failing[:0]
	v.WAN7d, v.LAN7d, v.WAN28d, v.LAN28d, v.Served28d = 0, 0, 0, 0, 0
	for _, sn := range v.Nodes {
		if sn.Sequence > v.LatestSeq {
			v.Latest, v.LatestSeq = sn.Version, sn.Sequence
		}
	}
	for _, sn := range v.Nodes {
		if v.LatestSeq > 0 && sn.Sequence == v.LatestSeq {
			v.OnLatest++
		}
		switch {
		case sn.State == mesh.StateDead:
			v.Failing = append(v.Failing, api.SiteFailure{Name: sn.Name, Outcome: "unreachable"})
		case failingOutcome(sn.Outcome):
			v.Failing = append(v.Failing, api.SiteFailure{Name: sn.Name, Outcome: sn.Outcome, Message: sn.Message})
		}
		v.Halted = v.Halted || sn.Halted
		v.WAN7d += sn.WAN7d
		v.LAN7d += sn.LAN7d
		v.WAN28d += sn.WAN28d
		v.LAN28d += sn.LAN28d
		v.Served28d += sn.Served28d
	}
	v.Saving7d = saving(v.WAN7d, v.LAN7d)
	v.Saving28d = saving(v.WAN28d, v.LAN28d)
	var b strings.Builder
	if v.LatestSeq == 0 {
		fmt.Fprintf(&b, "%d member(s), none running a release yet", v.Members)
	} else {
		fmt.Fprintf(&b, "%d of %d on %s", v.OnLatest, v.Members, v.Latest)
	}
	if len(v.Failing) > 0 {
		fmt.Fprintf(&b, "; %d failing: ", len(v.Failing))
		for i, f := range v.Failing {
			if i == 3 {
				fmt.Fprintf(&b, ", and %d more", len(v.Failing)-3)
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s)", f.Name, f.Outcome)
		}
	}
	if v.Halted {
		b.WriteString("; rollout halted")
	}
	v.Summary = b.String()
}

func saving(wan, lan int64) float64 {
	if wan+lan <= 0 {
		return 0
	}
	return float64(lan) / float64(wan+lan)
}

// siteLabel names the site in views and reports.
func (n *Node) siteLabel() string {
	if n.cfg.Report.Site != "" {
		return n.cfg.Report.Site
	}
	return n.siteID
}

// bytesNow are the node's byte counters since it started.
type bytesNow struct{ WAN, LAN, Served int64 }

func (a bytesNow) sub(b bytesNow) bytesNow {
	return bytesNow{WAN: a.WAN - b.WAN, LAN: a.LAN - b.LAN, Served: a.Served - b.Served}
}

// bytesNow reads the counters Status reports as Bytes.
func (n *Node) bytesNow() bytesNow {
	var meshServed int64
	if n.mesh != nil {
		for _, m := range n.mesh.Members() {
			meshServed += m.BytesTo
		}
	}
	wan, lan := n.chunkBytes()
	return bytesNow{WAN: wan, LAN: lan, Served: n.stat.servedTotal() + meshServed}
}
