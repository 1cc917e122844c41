package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Config says what to register. The zero value of each optional field is
// documented; Executable is required.
type Config struct {
	// Name of the systemd unit (without ".service"), the launchd label or the
	// Windows service. Zero: "patchmesh-node".
	Name string
	// DisplayName is what the Windows service manager lists. Zero: "patchmesh node".
	DisplayName string
	// Description of the service. Zero: a sentence about the node.
	Description string
	// Executable is the absolute path of the patchmesh binary.
	Executable string
	// Args follow Executable, e.g. "node", "run", "--config", "/etc/patchmesh/node.yaml".
	Args []string
	// User the node runs as (systemd User= and Group=, launchd UserName).
	// Zero: root. Ignored on Windows, where the service runs as LocalSystem.
	User string
	// Root, for systemd and launchd, is the folder that stands for "/": the
	// files are written under it and the running service manager is left alone
	// (building packages, tests). Zero: the real system.
	Root string
}

// ErrRoot is returned by Start and Stop, which need the running service manager,
// when Config.Root is set.
var ErrRoot = errors.New("a service manager under a --root folder cannot be started or stopped")

// Manager installs, removes, starts and stops the node's service.
type Manager interface {
	Install(ctx context.Context) error
	Uninstall(ctx context.Context) error
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

const (
	defaultName        = "patchmesh-node"
	defaultDisplayName = "patchmesh node"
	defaultDescription = "patchmesh node: keeps releases current and shares them with its site"
)

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = defaultName
	}
	if c.DisplayName == "" {
		c.DisplayName = defaultDisplayName
	}
	if c.Description == "" {
		c.Description = defaultDescription
	}
	if strings.ContainsAny(c.Name, `/\ `) || strings.HasPrefix(c.Name, ".") {
		return c, fmt.Errorf("service name %q: no slashes, spaces or leading dot", c.Name)
	}
	// Windows paths are absolute only on Windows, so check the form that
	// the target's service manager will read.
	if c.Executable == "" || !(filepath.IsAbs(c.Executable) || strings.HasPrefix(c.Executable, "/")) {
		return c, fmt.Errorf("service executable %q: need an absolute path", c.Executable)
	}
	return c, nil
}

// DefaultConfigFile is where a node registered as a service reads its config
// unless told otherwise: the path the packages install on Linux.
func DefaultConfigFile() string {
	switch runtime.GOOS {
	case "windows":
		dir := os.Getenv("ProgramData")
		if dir == "" {
			dir = `C:\ProgramData`
		}
		return filepath.Join(dir, "patchmesh", "node.yaml")
	case "darwin":
		return "/usr/local/etc/patchmesh/node.yaml"
	default:
		return "/etc/patchmesh/node.yaml"
	}
}

// under joins an absolute system path under root ("" or "/" being the system).
func under(root, path string) string {
	if root == "" {
		return path
	}
	return filepath.Join(root, filepath.FromSlash(path))
}

// command runs a service manager's CLI, its output in the error when it fails.
func command(ctx context.Context, name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
