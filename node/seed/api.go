package seed

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchmesh/patchmesh/node/api"
)

//go:embed web
var webFiles embed.FS

// apiHandler serves, behind the node API's security rules (api.Guard):
//
//	GET /                  dashboard
//	GET /static/app.css    the node dashboard's stylesheet, for the same look
//	GET /static/format.js  the node dashboard's formatting helpers, shared
//	GET /static/dom.js     the node dashboard's page helpers, shared
//	GET /static/seed/...   the seed dashboard's script and styles
//	GET /api/status        Status
//	GET /api/fleet         the fleet collector's sites (with --report-tokens)
//	GET /metrics           Prometheus metrics
//
// and, outside the guard since nodes on other machines send it with a
// report token instead, POST /api/report.
func (s *Seed) apiHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
	own, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	nodeWeb := api.WebFS()
	file := func(fsys fs.FS, name string) http.Handler {
		return only(http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFileFS(w, r, fsys, name)
		}))
	}

	mux := http.NewServeMux()
	mux.Handle("/{$}", only(http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, own, "index.html")
	})))
	mux.Handle("/static/app.css", file(nodeWeb, "app.css"))
	mux.Handle("/static/format.js", file(nodeWeb, "format.js"))
	mux.Handle("/static/dom.js", file(nodeWeb, "dom.js"))
	mux.Handle("/static/seed/seed.css", file(own, "seed.css"))
	mux.Handle("/static/seed/seed.js", file(own, "seed.js"))
	mux.Handle("/api/status", only(http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Status())
	})))
	mux.Handle("/api/fleet", only(http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.fleet == nil {
			writeError(w, http.StatusNotFound, "this seed collects no fleet reports (serve --report-tokens FILE)")
			return
		}
		writeJSON(w, http.StatusOK, s.fleet.view(time.Now()))
	})))
	mux.Handle("/metrics", only(http.MethodGet, metrics))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such page: "+r.URL.Path)
	}))
	guarded := api.Guard(mux, api.Options{Token: s.cfg.APIToken, Logger: s.cfg.Logger})
	if s.fleet == nil {
		return guarded
	}
	top := http.NewServeMux()
	top.Handle("/api/report", http.HandlerFunc(s.fleet.handleReport))
	top.Handle("/", guarded)
	return top
}

// only lets one method through (GET also admits HEAD) and answers 405 with a
// JSON error otherwise, as the node's API does.
func only(method string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && (method != http.MethodGet || r.Method != http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s needs %s", r.URL.Path, method))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		buf = []byte(`{"error":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(buf, '\n'))
}
