package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed web
var webFiles embed.FS

// Options configure the handler. The zero value serves without a token, logs
// nothing and reports an empty build version.
type Options struct {
	// Token, when non-empty, is required by every request: "Authorization: Bearer
	// T", or the cookie set by visiting /?token=T (which then redirects to /).
	// Zero: no token; then only loopback Host names are answered, so a web page
	// cannot reach the node through DNS rebinding.
	Token   string
	Logger  *slog.Logger // zero: discard
	Version string       // patchmesh build version, for patchmesh_build_info
}

const (
	cookieName     = "patchmesh_session"
	maxBodyBytes   = 4 << 10 // POST bodies: a reason string at most
	eventsLifetime = 10 * time.Minute
	eventsPoll     = 250 * time.Millisecond // how often a stream looks for changes
	eventsEvery    = time.Second            // a status event at least this often
	maxEventStream = 32                     // concurrent /api/events streams
	writeTimeout   = 10 * time.Second       // per event written to a stream
)

type handler struct {
	b       Backend
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	session string // cookie value: a digest of the token, so the cookie jar never holds it

	// Event streams; fields so tests can shorten them.
	eventsLifetime time.Duration
	eventsPoll     time.Duration
	eventsEvery    time.Duration
	streams        chan struct{} // semaphore bounding concurrent streams
}

// NewHandler serves the dashboard, the JSON API and the metrics of b:
//
//	GET  /               dashboard
//	GET  /api/status     Status
//	GET  /api/releases   []ReleaseInfo
//	GET  /api/peers      []Peer
//	GET  /api/events     server-sent "status" events
//	POST /api/update     check now (?wait=1: answer with the CheckResult)
//	POST /api/apply-now  apply the release waiting for a maintenance window now (?wait=1 as update)
//	POST /api/rollback   roll back to the previous release
//	POST /api/scrub      check every stored chunk now (ScrubResult)
//	POST /api/releases/retry  clear a release's bad mark
//	GET  /metrics        Prometheus metrics
func NewHandler(b Backend, opts Options) http.Handler {
	return newHandler(b, opts)
}

func newHandler(b Backend, opts Options) *handler {
	h := &handler{
		b: b, opts: opts, log: opts.Logger, mux: http.NewServeMux(),
		eventsLifetime: eventsLifetime, eventsPoll: eventsPoll, eventsEvery: eventsEvery,
		streams: make(chan struct{}, maxEventStream),
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if opts.Token != "" {
		sum := sha256.Sum256([]byte("patchmesh dashboard session\x00" + opts.Token))
		h.session = hex.EncodeToString(sum[:])
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(b, opts.Version),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelWarn), MaxRequestsInFlight: 4, Timeout: 10 * time.Second,
	})

	static, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	h.mux.Handle("/{$}", only(http.MethodGet, http.HandlerFunc(h.dashboard)))
	h.mux.Handle("/static/", only(http.MethodGet, http.StripPrefix("/static/", http.FileServerFS(static))))
	h.mux.Handle("/api/status", only(http.MethodGet, http.HandlerFunc(h.status)))
	h.mux.Handle("/api/releases", only(http.MethodGet, http.HandlerFunc(h.releases)))
	h.mux.Handle("/api/peers", only(http.MethodGet, http.HandlerFunc(h.peers)))
	h.mux.Handle("/api/events", only(http.MethodGet, http.HandlerFunc(h.events)))
	h.mux.Handle("/api/update", h.action(h.update))
	h.mux.Handle("/api/apply-now", h.action(h.applyNow))
	h.mux.Handle("/api/rollback", h.action(h.rollback))
	h.mux.Handle("/api/scrub", h.action(h.scrub))
	h.mux.Handle("/api/releases/retry", h.action(h.retry))
	h.mux.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no such endpoint: "+r.URL.Path)
	}))
	h.mux.Handle("/metrics", only(http.MethodGet, metrics))
	h.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", "no such page: "+r.URL.Path)
	}))
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")

	if h.opts.Token == "" && !isLoopbackHost(hostOnly(r.Host)) {
		// Without a token the listener is loopback; any other Host name means a
		// browser was pointed here by a name that resolves to us (DNS rebinding).
		writeError(w, http.StatusForbidden, "", fmt.Sprintf("host %q not allowed: use 127.0.0.1, [::1] or localhost, or configure an API token", r.Host))
		return
	}
	if h.opts.Token != "" {
		if r.URL.Path == "/" && r.URL.Query().Has("token") && r.Method == http.MethodGet {
			h.login(w, r)
			return
		}
		if !h.authorized(r) {
			h.log.Info("api: request without a valid token", "path", r.URL.Path, "remote", r.RemoteAddr)
			hdr.Set("WWW-Authenticate", `Bearer realm="patchmesh"`)
			if r.URL.Path == "/" {
				hdr.Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, "patchmesh: this dashboard needs its API token: open /?token=YOUR_TOKEN once.\n")
				return
			}
			writeError(w, http.StatusUnauthorized, codeUnauthorized, "missing or wrong API token: send Authorization: Bearer <token>")
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// action admits only same-site POSTs to next.
func (h *handler) action(next http.HandlerFunc) http.Handler {
	return only(http.MethodPost, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := crossSite(r); msg != "" {
			h.log.Warn("api: refused a cross-site request", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", msg)
			writeError(w, http.StatusForbidden, "", msg)
			return
		}
		next(w, r)
	}))
}

// login turns /?token=T into a session cookie and redirects to /, so the token
// leaves the address bar and the browser history.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(h.opts.Token)) != 1 {
		h.log.Info("api: wrong token in dashboard login", "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "wrong API token")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: h.session, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *handler) authorized(r *http.Request) bool {
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(auth)), []byte(h.opts.Token)) == 1
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return subtle.ConstantTimeCompare([]byte(c.Value), []byte(h.session)) == 1
	}
	return false
}

// crossSite explains why a POST looks like it came from another site, or
// returns "". Browsers send Sec-Fetch-Site and Origin; a form or an image on
// another site cannot set a JSON content type or a custom header without a
// CORS preflight, which this server never grants.
func crossSite(r *http.Request) string {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return "cross-site request refused"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if o == "null" || err != nil || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Sprintf("cross-site request refused: origin %s is not %s", o, r.Host)
		}
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if !strings.EqualFold(strings.TrimSpace(ct), "application/json") && r.Header.Get("X-Patchmesh") != "1" {
		return "actions need Content-Type: application/json or the header X-Patchmesh: 1"
	}
	return ""
}

func hostOnly(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return strings.Trim(hostport, "[]")
}

// only lets one method through (GET also admits HEAD) and answers 405 with a
// JSON error otherwise.
func only(method string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && (method != http.MethodGet || r.Method != http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "", fmt.Sprintf("%s needs %s", r.URL.Path, method))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *handler) dashboard(w http.ResponseWriter, r *http.Request) {
	page, err := webFiles.ReadFile("web/index.html")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", "dashboard missing from the build")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(page)
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	st := sanitize(h.b.Status())
	writeJSON(w, http.StatusOK, st)
}

func (h *handler) releases(w http.ResponseWriter, r *http.Request) {
	rels := h.b.Status().Releases
	if rels == nil {
		rels = []ReleaseInfo{}
	}
	writeJSON(w, http.StatusOK, rels)
}

func (h *handler) peers(w http.ResponseWriter, r *http.Request) {
	peers := h.b.Status().Peers
	if peers == nil {
		peers = []Peer{}
	}
	writeJSON(w, http.StatusOK, peers)
}

func (h *handler) update(w http.ResponseWriter, r *http.Request) {
	wait := r.URL.Query().Get("wait")
	waiting := wait == "1" || wait == "true"
	asked := time.Now()
	res, err := h.b.Check(r.Context(), waiting)
	if err != nil {
		h.log.Warn("api: check failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "", fmt.Sprintf("check: %v", err))
		return
	}
	h.log.Info("api: check requested", "wait", waiting, "outcome", res.Outcome)
	answerCheck(w, res, waiting, asked)
}

// answerCheck answers a check asked at asked: 202 when the caller does not
// wait for it, 200 with its result when it did.
func answerCheck(w http.ResponseWriter, res CheckResult, waiting bool, asked time.Time) {
	if !waiting {
		if res.Started.IsZero() {
			// The dashboard waits for the first check to finish after this
			// time; without it, it could not tell that check from an older one.
			res.Started = asked
		}
		writeJSON(w, http.StatusAccepted, res)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// readBody decodes an action's JSON body, at most maxBodyBytes, into v; an
// empty body leaves v as it is. On a bad body it answers, with want when
// set, and returns false.
func readBody(w http.ResponseWriter, r *http.Request, v any, want string) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, "", fmt.Sprintf("read body: %v", err))
		return false
	case len(body) > maxBodyBytes:
		writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("body over %d bytes", maxBodyBytes))
		return false
	case len(strings.TrimSpace(string(body))) == 0:
		return true
	}
	if err := json.Unmarshal(body, v); err != nil {
		msg := fmt.Sprintf("body: %v", err)
		if want != "" {
			msg = "body: " + want
		}
		writeError(w, http.StatusBadRequest, "", msg)
		return false
	}
	return true
}

// rollbackRequest is the optional body of POST /api/rollback.
type rollbackRequest struct {
	Reason string `json:"reason"`
}

func (h *handler) rollback(w http.ResponseWriter, r *http.Request) {
	var req rollbackRequest
	if !readBody(w, r, &req, "") {
		return
	}
	if req.Reason == "" {
		req.Reason = r.URL.Query().Get("reason")
	}
	if req.Reason == "" {
		req.Reason = "rolled back by the operator"
	}
	res, err := h.b.Rollback(r.Context(), r.URL.Query().Get("channel"), req.Reason)
	switch {
	case errors.Is(err, ErrNoChannel):
		writeError(w, http.StatusNotFound, codeNoChannel, err.Error())
		return
	case errors.Is(err, ErrNoPrevious):
		writeError(w, http.StatusConflict, codeNoPrevious, err.Error())
		return
	case err != nil:
		h.log.Warn("api: rollback failed", "err", err)
		writeError(w, http.StatusInternalServerError, "", fmt.Sprintf("rollback: %v", err))
		return
	}
	h.log.Info("api: rolled back", "from", res.From, "to", res.To, "reason", req.Reason)
	writeJSON(w, http.StatusOK, res)
}

func (h *handler) scrub(w http.ResponseWriter, r *http.Request) {
	res, err := h.b.Scrub(r.Context())
	if err != nil {
		h.log.Warn("api: scrub failed", "err", err)
		writeError(w, http.StatusInternalServerError, "", fmt.Sprintf("scrub: %v", err))
		return
	}
	h.log.Info("api: scrub done", "chunks", res.Chunks, "damaged", res.Damaged, "refetched", res.Refetched)
	writeJSON(w, http.StatusOK, res)
}

// retryRequest is the body of POST /api/releases/retry.
type retryRequest struct {
	Version string `json:"version"`
}

func (h *handler) retry(w http.ResponseWriter, r *http.Request) {
	var req retryRequest
	if !readBody(w, r, &req, `want {"version": "..."}`) {
		return
	}
	if req.Version == "" {
		writeError(w, http.StatusBadRequest, "", `body: want {"version": "..."}`)
		return
	}
	res, err := h.b.Retry(r.Context(), r.URL.Query().Get("channel"), req.Version)
	switch {
	case errors.Is(err, ErrNoChannel):
		writeError(w, http.StatusNotFound, codeNoChannel, err.Error())
		return
	case errors.Is(err, ErrNotBad):
		writeError(w, http.StatusConflict, codeNotBad, err.Error())
		return
	case err != nil:
		h.log.Warn("api: retry failed", "err", err)
		writeError(w, http.StatusInternalServerError, "", fmt.Sprintf("retry: %v", err))
		return
	}
	h.log.Info("api: bad mark cleared", "version", req.Version, "releases", res.Cleared)
	writeJSON(w, http.StatusOK, res)
}

func (h *handler) applyNow(w http.ResponseWriter, r *http.Request) {
	wait := r.URL.Query().Get("wait")
	waiting := wait == "1" || wait == "true"
	asked := time.Now()
	res, err := h.b.ApplyNow(r.Context(), r.URL.Query().Get("channel"), waiting)
	switch {
	case errors.Is(err, ErrNoChannel):
		writeError(w, http.StatusNotFound, codeNoChannel, err.Error())
		return
	case errors.Is(err, ErrNothingWaiting):
		writeError(w, http.StatusConflict, codeNotWaiting, err.Error())
		return
	case err != nil:
		h.log.Warn("api: apply now failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "", fmt.Sprintf("apply now: %v", err))
		return
	}
	h.log.Info("api: apply now", "wait", waiting, "outcome", res.Outcome)
	answerCheck(w, res, waiting, asked)
}

// errorBody is every JSON error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"` // stable code for the cases callers tell apart
}

func writeError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, errorBody{Error: msg, Code: errCode})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		buf, _ = json.Marshal(errorBody{Error: fmt.Sprintf("encode answer: %v", err)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(buf, '\n'))
}

// sanitize hides passwords a source URL may carry (ftp://user:pass@host), the
// only secret the node's Status could hold.
func sanitize(st Status) Status {
	if len(st.Sources) > 0 {
		srcs := make([]SourceState, len(st.Sources))
		for i, s := range st.Sources {
			s.URL = redactURL(s.URL)
			s.LastError = redactIn(s.LastError, st.Sources[i].URL)
			srcs[i] = s
		}
		st.Sources = srcs
	}
	if st.LastCheck != nil {
		c := *st.LastCheck
		c.Source = redactURL(c.Source)
		st.LastCheck = &c
	}
	if len(st.Counters.SourceFailuresByURL) > 0 {
		m := make(map[string]int64, len(st.Counters.SourceFailuresByURL))
		for k, v := range st.Counters.SourceFailuresByURL {
			m[redactURL(k)] += v
		}
		st.Counters.SourceFailuresByURL = m
	}
	return st
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); !has {
		return s
	}
	return u.Redacted()
}

// redactIn replaces the unredacted form of source in msg: errors from net/url
// and the FTP client quote the URL they failed on.
func redactIn(msg, source string) string {
	if r := redactURL(source); r != source {
		return strings.ReplaceAll(msg, source, r)
	}
	return msg
}
