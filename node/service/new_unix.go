//go:build !windows

package service

import (
	"context"
	"runtime"
)

// New returns the manager of this machine's service manager: launchd on macOS,
// systemd elsewhere (with Root set, systemd's files on any OS).
func New(c Config) (Manager, error) {
	if runtime.GOOS == "darwin" {
		return NewLaunchd(c)
	}
	return NewSystemd(c)
}

// Run runs the node. Off Windows the service managers stop a node with
// SIGTERM, which the CLI already turns into cancelling ctx.
func Run(ctx context.Context, _ string, run func(context.Context) error) error {
	return run(ctx)
}
