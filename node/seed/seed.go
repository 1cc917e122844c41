// Package seed runs a seed node: it serves a repository folder over HTTP(S) to
// nodes, mirrors and plain clients, and reports what it served on a local status API.
package seed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/api"
)

// Config of a seed. The zero value of each optional field is documented.
type Config struct {
	Repo    string // repository folder, required
	Listen  string // repository listener; zero: DefaultConfig's ":8780"
	TLSCert string // PEM certificate; zero: plain HTTP
	TLSKey  string // PEM key of TLSCert
	API     string // dashboard, status API and metrics listener; zero or "off": none, as a node's
	// APIToken, when set, is required by every API request (bearer header, or
	// the dashboard's cookie from /?token=T). It must be set when API is not a
	// loopback address; without it only loopback Host names are answered.
	APIToken string
	// ReportTokens is a file of the report tokens the admin issued ("TOKEN"
	// or "SITE TOKEN" a line): with it, the API listener collects site
	// reports on POST /api/report (a node's --report-to) and shows the
	// fleet. Zero: no collector.
	ReportTokens string
	// FleetData is the folder of the collector's badger database, so the
	// fleet survives a restart. Zero: kept in memory only.
	FleetData string
	// Webhook is a URL the collector POSTs an event (JSON) to when a report
	// shows a node newly failing or rolled back, or a site newly halted.
	// Zero: none.
	Webhook string
	// AccessLog is where a line for each repository request goes: a file,
	// appended to in the Combined Log Format and opened again by name when
	// logrotate moves it away; "-": the Logger, at info level. Zero: the
	// Logger at debug level, so a busy seed's requests neither cost CPU nor
	// crowd its warnings out of a rate-limited journal.
	AccessLog string
	// NoBatch refuses batch reads (package batch), as a static server
	// would: nodes then ask for each chunk on its own. Zero: a node asks
	// for up to 256 chunks in one request, which halves the CPU a seed
	// spends serving them.
	NoBatch bool
	Logger  *slog.Logger // zero: discard
}

// DefaultConfig returns a config serving on every interface, API on loopback.
func DefaultConfig() Config {
	return Config{Listen: ":8780", API: "127.0.0.1:8781"}
}

// Seed serves one repository.
type Seed struct {
	cfg     Config
	files   *repo.DirFiles
	stats   repo.Stats
	started time.Time
	history *history

	// sampleEvery is how often the history takes a sample; a field so tests can
	// shorten it.
	sampleEvery time.Duration
	// shutdownBound is how long a stopping seed lets requests in flight
	// finish before it closes their connections; a field so tests can
	// shorten it.
	shutdownBound time.Duration
	// reopenCheck is how often an access log file checks that its name still
	// leads to it; a field so tests can shorten it.
	reopenCheck time.Duration

	tokens []reportToken // ReportTokens, read by New
	fleet  *fleet        // the collector, set by Run before serving; nil: none

	mu      sync.Mutex
	addr    string
	scheme  string
	apiAddr string
	ready   chan struct{}
}

// New checks the config; Run starts serving.
func New(cfg Config) (*Seed, error) {
	if cfg.Repo == "" {
		return nil, errors.New("seed: no repository folder (--repo)")
	}
	switch st, err := os.Stat(cfg.Repo); {
	case err != nil:
		return nil, fmt.Errorf("seed: repository: %w", err)
	case !st.IsDir():
		return nil, fmt.Errorf("seed: repository %s is not a folder", cfg.Repo)
	}
	// The dashboard shows the folder; a relative path says little there.
	if abs, err := filepath.Abs(cfg.Repo); err == nil {
		cfg.Repo = abs
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("seed: give both --tls-cert and --tls-key, or neither")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultConfig().Listen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.API == "off" {
		cfg.API = ""
	}
	if cfg.API != "" && !api.IsLoopback(cfg.API) && cfg.APIToken == "" {
		return nil, fmt.Errorf("seed: the API on %s is not loopback: set an API token (--api-token)", cfg.API)
	}
	var tokens []reportToken
	if cfg.ReportTokens != "" {
		var err error
		if tokens, err = loadReportTokens(cfg.ReportTokens); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		if cfg.API == "" {
			return nil, errors.New("seed: --report-tokens collects reports on the API listener: set --api")
		}
	} else if cfg.FleetData != "" || cfg.Webhook != "" {
		return nil, errors.New("seed: --fleet-data and --webhook need a collector: set --report-tokens")
	}
	return &Seed{cfg: cfg, tokens: tokens, ready: make(chan struct{}), history: newHistory(historyLen), sampleEvery: sampleEvery,
		shutdownBound: shutdownBound, reopenCheck: reopenCheck}, nil
}

// Stats returns what the seed has served so far.
func (s *Seed) Stats() repo.StatsSnapshot { return s.stats.Snapshot() }

// Ready is closed once the listeners are bound.
func (s *Seed) Ready() <-chan struct{} { return s.ready }

// Addr is the bound repository address, valid after Ready.
func (s *Seed) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// APIAddr is the bound API address, valid after Ready.
func (s *Seed) APIAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiAddr
}

// shutdownBound is how long a stopping seed drains requests in flight.
const shutdownBound = 10 * time.Second

// Run serves until ctx is cancelled, then drains in-flight requests for at most
// 10 seconds and closes the connections still open. It returns once every
// server it started has stopped: nothing listens or answers any more.
// Cancellation is a clean exit.
func (s *Seed) Run(ctx context.Context) error {
	files, err := repo.OpenDir(s.cfg.Repo)
	if err != nil {
		return err
	}
	defer files.Close()
	s.files = files
	s.started = time.Now()

	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("seed: listen %s: %w", s.cfg.Listen, err)
	}
	scheme := "http"
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("seed: load certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	hopts := repo.HandlerOptions{Logger: s.cfg.Logger, Stats: &s.stats, Batch: !s.cfg.NoBatch}
	switch s.cfg.AccessLog {
	case "":
		hopts.Access = repo.LogAccess(s.cfg.Logger, slog.LevelDebug)
	case "-":
		hopts.Access = repo.LogAccess(s.cfg.Logger, slog.LevelInfo)
	default:
		af, err := openAccessFile(s.cfg.AccessLog, s.reopenCheck, s.cfg.Logger)
		if err != nil {
			ln.Close()
			return err
		}
		defer af.Close()
		hopts.Access = af.Access
	}
	servers := []*http.Server{newServer(repo.NewHandler(files, hopts))}
	listeners := []net.Listener{ln}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.scheme = scheme
	s.mu.Unlock()

	var hook *webhook
	if s.cfg.Webhook != "" {
		hook = newWebhook(s.cfg.Webhook, s.cfg.Logger)
	}
	if s.tokens != nil {
		f, err := openFleet(s.cfg.FleetData, s.tokens, hook, s.cfg.Logger)
		if err != nil {
			ln.Close()
			return fmt.Errorf("seed: %w", err)
		}
		s.fleet = f
		defer func() {
			if err := f.close(); err != nil {
				s.cfg.Logger.Error("seed stopping", "err", err)
			}
		}()
	}
	if s.cfg.API != "" {
		aln, err := net.Listen("tcp", s.cfg.API)
		if err != nil {
			ln.Close()
			return fmt.Errorf("seed: listen API %s: %w", s.cfg.API, err)
		}
		servers = append(servers, newServer(s.apiHandler()))
		listeners = append(listeners, aln)
		s.mu.Lock()
		s.apiAddr = aln.Addr().String()
		s.mu.Unlock()
	}
	s.cfg.Logger.Info("seed serving", "repo", s.cfg.Repo, "url", s.url(), "api", s.APIAddr())

	// The first sample is taken before anything is served, so the history starts
	// at zero; the sampler stops before Run returns, after the servers drained.
	s.takeSample(time.Now())
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.sample(sampleCtx) })
	if hook != nil {
		wg.Go(func() { hook.run(sampleCtx) })
	}
	defer func() {
		stopSampling()
		wg.Wait()
	}()
	close(s.ready)

	errc := make(chan error, len(servers))
	var serving sync.WaitGroup
	for i, srv := range servers {
		serving.Go(func() {
			if err := srv.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		})
	}
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		runErr = fmt.Errorf("seed: serve: %w", err)
	}
	s.shutdown(servers)
	serving.Wait()
	return runErr
}

// shutdown stops every server: requests in flight drain for at most
// shutdownBound, then the connections still open are closed, so a client
// that stalls cannot hold a stopping seed.
func (s *Seed) shutdown(servers []*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), s.shutdownBound)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			s.cfg.Logger.Warn("seed stopping: requests still in flight; closing their connections", "err", err)
			_ = srv.Close()
		}
	}
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		WriteTimeout:      10 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// url is the repository's address as a client would write it.
func (s *Seed) url() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scheme + "://" + s.addr
}
