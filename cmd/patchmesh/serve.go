package main

import (
	"github.com/spf13/cobra"

	"github.com/patchmesh/patchmesh/node/seed"
)

func newServeCmd(a *app) *cobra.Command {
	cfg := seed.DefaultConfig()
	batch := true
	cmd := &cobra.Command{
		Use:   "serve --repo DIR [--listen ADDR]",
		Short: "Run a seed node: serve a repository over HTTP(S)",
		Long: `serve is the seed node: it serves a repository folder read-only over HTTP, or
HTTPS with --tls-cert and --tls-key, with Range, ETag/If-None-Match and exact lengths,
no directory listing and nothing outside the folder. --access-log FILE appends a
line for every request to FILE in the Combined Log Format (opened again when
logrotate moves it); --access-log - logs them with the rest; without it they are
logged at debug level. Nodes ask for many chunks in one request (a batch read),
which a static server refuses and they then ask one at a time; --batch=false
refuses them here too. Its
status API and dashboard listen on --api (loopback by default). With --report-tokens
the API listener also collects the site reports nodes send (node run --report-to
http://SEED-API/api/report --report-token-file F): patchmesh fleet and the dashboard
show them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = a.logger()
			cfg.NoBatch = !batch
			s, err := seed.New(cfg)
			if err != nil {
				return withCode(exitUsage, err)
			}
			return s.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Repo, "repo", "", "repository folder to serve (required)")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve the repository on (host:port; [::]:port for IPv6)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate: serve HTTPS")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.API, "api", cfg.API, "address of the status API and dashboard; \"off\": none")
	f.StringVar(&cfg.APIToken, "api-token", "", "token required by the API when it does not listen on loopback")
	f.StringVar(&cfg.ReportTokens, "report-tokens", "", "file of report tokens (\"TOKEN\" or \"SITE TOKEN\" a line): collect site reports on POST /api/report of --api")
	f.StringVar(&cfg.FleetData, "fleet-data", "", "folder of the fleet collector's database, so reports survive a restart (default: memory only)")
	f.StringVar(&cfg.AccessLog, "access-log", "", "file to append a Combined Log Format line to for every request; \"-\": the log, at info level (default: the log, at debug level)")
	f.StringVar(&cfg.Webhook, "webhook", "", "URL to POST a JSON event to when a report shows a node failing or rolled back, or a site halted")
	f.BoolVar(&batch, "batch", true, "answer batch reads: many chunks in one request (false: one request a chunk, as a static server)")
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}
