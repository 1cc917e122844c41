// Command patchmesh publishes signed, chunked software releases and runs the nodes
// that spread them across a site peer to peer. Each subcommand is a thin layer over
// the library packages; see README.md for the whole picture.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, documented in the root command's help.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitRefused = 3 // verification failed or input refused
	exitNoNode  = 4 // the node's local API could not be reached
)

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app holds what every subcommand shares: output streams and logging flags.
type app struct {
	stdout, stderr io.Writer
	logLevel       string
	logFormat      string
}

func (a *app) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if a.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "patchmesh",
		Short: "Peer-to-peer distribution points for signed software updates",
		Long: `patchmesh publishes software releases as signed manifests of content-addressed
chunks into a static repository, and runs nodes that keep a release current from a
list of sources, share chunks with the other nodes of their site, and apply each
release atomically with a health check and rollback.

Exit codes:
  0  success
  1  failure (I/O, network, internal error)
  2  usage error (bad flags or arguments)
  3  verification failed or input refused (bad signature, tampered data, not newer)
  4  the node's local API could not be reached`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildInfo().String(),
		// Runnable, so that an unknown subcommand reaches usageArgs below
		// and exits 2; alone it prints the help, as cobra would.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetVersionTemplate("patchmesh {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitUsage, err) })
	for _, add := range commands {
		root.AddCommand(add(a))
	}
	usageArgs(root)
	root.Args = func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return withCode(exitUsage, fmt.Errorf("unknown command %q for \"patchmesh\"", args[0]))
		}
		return nil
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "patchmesh: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// needPath fails with a usage error when a path given on the command line
// does not exist: a typo, not a verification failure.
func needPath(op, path string) error {
	if _, err := os.Stat(path); err != nil {
		return withCode(exitUsage, fmt.Errorf("%s: %w", op, err))
	}
	return nil
}

// usageArgs makes every command's argument and required-flag errors usage
// errors (exit 2). Cobra checks arguments just before required flags, so the
// wrapper checks both.
func usageArgs(cmd *cobra.Command) {
	check := cmd.Args
	if check == nil {
		check = cobra.ArbitraryArgs
	}
	cmd.Args = func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return withCode(exitUsage, fmt.Errorf("%s: %w", c.CommandPath(), err))
		}
		if err := c.ValidateRequiredFlags(); err != nil {
			return withCode(exitUsage, fmt.Errorf("%s: %w", c.CommandPath(), err))
		}
		return nil
	}
	for _, sub := range cmd.Commands() {
		usageArgs(sub)
	}
}

// commands lists the subcommand constructors; each file adds its own.
var commands = []func(*app) *cobra.Command{
	newKeygenCmd,
	newTrustCmd,
	newPublishCmd,
	newSignCmd,
	newMirrorCmd,
	newRenewCmd,
	newRolloutCmd,
	newVerifyCmd,
	newServeCmd,
	newNodeCmd,
	newStatusCmd,
	newFleetCmd,
	newReleasesCmd,
	newUpdateCmd,
	newApplyNowCmd,
	newRollbackCmd,
	newReleaseCmd,
	newDemoCmd,
	newVersionCmd,
}
