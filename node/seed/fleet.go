package seed

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/patchmesh/patchmesh/node/api"
)

// Collector bounds: what a report may hold and how many sites are kept.
const (
	maxSites       = 1024
	maxNameBytes   = 128
	maxMessage     = 1024
	minTokenLen    = 16
	maxTokenFile   = 1 << 20
	staleAfter     = 5 * time.Minute // three default report intervals, and some
	fleetKeyPrefix = "site/"
)

// reportToken is one token the admin issued: for any site, or bound to one.
type reportToken struct {
	sum  [32]byte // sha256 of the token: compared in constant time, whatever its length
	site string   // "": any site
}

// loadReportTokens reads a token file: one token a line, "TOKEN" or
// "SITE TOKEN" (the token may report only that site); blank lines and
// lines starting with # are skipped.
func loadReportTokens(path string) ([]reportToken, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read report tokens: %w", err)
	}
	defer f.Close()
	var out []reportToken
	sc := bufio.NewScanner(io.LimitReader(f, maxTokenFile))
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		var t reportToken
		tok := fields[0]
		switch len(fields) {
		case 1:
		case 2:
			t.site, tok = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("read report tokens %s:%d: want \"TOKEN\" or \"SITE TOKEN\"", path, line)
		}
		if len(tok) < minTokenLen {
			return nil, fmt.Errorf("read report tokens %s:%d: a token of %d characters is too short (at least %d; openssl rand -hex 24)", path, line, len(tok), minTokenLen)
		}
		t.sum = sha256.Sum256([]byte(tok))
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read report tokens %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read report tokens %s: no token in the file", path)
	}
	return out, nil
}

// fleet is the collector: the newest report of every site, in badger so it
// survives a restart.
type fleet struct {
	tokens []reportToken
	db     *badger.DB
	log    *slog.Logger
	hook   *webhook // nil: none

	mu    sync.Mutex
	sites map[string]api.FleetSite
}

// openFleet opens (or creates) the collector's database in dir ("" keeps
// it in memory) and loads the sites it holds.
func openFleet(dir string, tokens []reportToken, hook *webhook, log *slog.Logger) (*fleet, error) {
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20).WithValueThreshold(64 << 10).
		WithBlockCacheSize(1 << 20).WithIndexCacheSize(1 << 20).WithNumVersionsToKeep(1)
	if dir == "" {
		opts = opts.WithInMemory(true)
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open fleet database %s: %w", dir, err)
	}
	f := &fleet{tokens: tokens, db: db, log: log, hook: hook, sites: map[string]api.FleetSite{}}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(fleetKeyPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(f.sites) < maxSites; it.Next() {
			var s api.FleetSite
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &s) }); err != nil {
				log.Warn("fleet database: unreadable site report; skipped", "key", string(it.Item().Key()), "err", err)
				continue
			}
			f.sites[s.View.Site] = s
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("load fleet database %s: %w", dir, err)
	}
	return f, nil
}

func (f *fleet) close() error {
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("close fleet database: %w", err)
	}
	return nil
}

// authorize checks the request's bearer token: 401 without one, 403 when
// it matches no issued token or one bound to another site. It returns the
// site the token is bound to ("" for any).
func (f *fleet) authorize(r *http.Request) (site string, code int) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return "", http.StatusUnauthorized
	}
	sum := sha256.Sum256([]byte(tok))
	found := -1
	for i, t := range f.tokens {
		// Every token is compared, so the time taken tells nothing of which.
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return "", http.StatusForbidden
	}
	return f.tokens[found].site, 0
}

// errReport marks a report the collector refuses as malformed.
var errReport = errors.New("bad site report")

// checkReport bounds everything in a report that came from the network.
func checkReport(r *api.SiteReport) error {
	v := &r.View
	if v.Site == "" || len(v.Site) > maxNameBytes || strings.ContainsAny(v.Site, "/\x00") {
		return fmt.Errorf("site name %q: 1 to %d bytes, no '/': %w", v.Site, maxNameBytes, errReport)
	}
	if len(r.Reporter) > maxNameBytes || len(v.Reporter) > maxNameBytes || len(v.Latest) > maxNameBytes || len(v.Summary) > 4*maxMessage {
		return fmt.Errorf("a name or the summary is too long: %w", errReport)
	}
	if len(v.Nodes) > api.MaxSiteNodes || len(v.Failing) > api.MaxSiteNodes {
		return fmt.Errorf("%d nodes, at most %d: %w", len(v.Nodes), api.MaxSiteNodes, errReport)
	}
	for _, n := range v.Nodes {
		if n.Name == "" || len(n.Name) > maxNameBytes || len(n.State) > 16 || len(n.Version) > maxNameBytes ||
			len(n.Outcome) > 32 || len(n.Message) > maxMessage {
			return fmt.Errorf("node %.40q: a field is empty or too long: %w", n.Name, errReport)
		}
	}
	for _, fl := range v.Failing {
		if len(fl.Name) > maxNameBytes || len(fl.Outcome) > 32 || len(fl.Message) > maxMessage {
			return fmt.Errorf("failing node %.40q: a field is too long: %w", fl.Name, errReport)
		}
	}
	return nil
}

// handleReport is POST /api/report: a site's elected node sends its view.
func (f *fleet) handleReport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "/api/report needs POST")
		return
	}
	bound, code := f.authorize(r)
	switch code {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="patchmesh reports"`)
		writeError(w, code, "report refused: no report token (Authorization: Bearer TOKEN; the node's --report-token-file)")
		return
	case http.StatusForbidden:
		f.log.Warn("report refused: unknown token", "remote", r.RemoteAddr)
		writeError(w, code, "report refused: the token is not one this collector issued")
		return
	}
	var rep api.SiteReport
	// Unknown fields are ignored, not refused: nodes newer than the seed
	// may add some, and their reports should still count.
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, api.MaxReportBytes))
	if err := dec.Decode(&rep); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("report refused: decode: %v", err))
		return
	}
	if err := checkReport(&rep); err != nil {
		writeError(w, http.StatusBadRequest, "report refused: "+err.Error())
		return
	}
	if bound != "" && bound != rep.View.Site {
		f.log.Warn("report refused: token bound to another site", "site", rep.View.Site, "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, fmt.Sprintf("report refused: this token may report site %q only", bound))
		return
	}
	if err := f.put(rep, time.Now()); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, errFull) {
			code = http.StatusServiceUnavailable
		}
		writeError(w, code, "report refused: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
}

var errFull = fmt.Errorf("the collector holds %d sites already", maxSites)

// put stores a report, and tells the webhook what got worse since the last.
func (f *fleet) put(rep api.SiteReport, now time.Time) error {
	site := api.FleetSite{SiteReport: rep, Received: now}
	b, err := json.Marshal(site)
	if err != nil {
		return fmt.Errorf("store report of %s: %w", rep.View.Site, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old, had := f.sites[rep.View.Site]
	if !had && len(f.sites) >= maxSites {
		return errFull
	}
	if err := f.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(fleetKeyPrefix+rep.View.Site), b)
	}); err != nil {
		return fmt.Errorf("store report of %s: %w", rep.View.Site, err)
	}
	f.sites[rep.View.Site] = site
	if f.hook != nil {
		for _, e := range newEvents(old.View, rep.View, had, now) {
			f.hook.send(e)
		}
	}
	return nil
}

// view is the fleet as GET /api/fleet returns it, sites by name.
func (f *fleet) view(now time.Time) api.Fleet {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := api.Fleet{Sites: make([]api.FleetSite, 0, len(f.sites))}
	for _, s := range f.sites {
		s.Stale = now.Sub(s.Received) > staleAfter
		out.Sites = append(out.Sites, s)
		out.Nodes += s.View.Members
		out.OnLatest += s.View.OnLatest
		out.Failing += len(s.View.Failing)
		if s.View.Halted {
			out.Halted++
		}
	}
	sort.Slice(out.Sites, func(i, j int) bool { return out.Sites[i].View.Site < out.Sites[j].View.Site })
	return out
}
