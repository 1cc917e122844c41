package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/patchmesh/patchmesh/manifest/repo"
)

// Systemd registers the node as a systemd unit.
type Systemd struct{ c Config }

// NewSystemd checks c and returns its systemd manager. It builds on any OS so the
// unit a package ships can be written anywhere.
func NewSystemd(c Config) (*Systemd, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Systemd{c: c}, nil
}

// UnitPath is where the unit is written: /etc/systemd/system/NAME.service under Root.
func (s *Systemd) UnitPath() string {
	return under(s.c.Root, "/etc/systemd/system/"+s.c.Name+".service")
}

// wantsPath is the link `systemctl enable` makes for WantedBy=multi-user.target.
func (s *Systemd) wantsPath() string {
	return under(s.c.Root, "/etc/systemd/system/multi-user.target.wants/"+s.c.Name+".service")
}

// Unit returns the unit's text.
func (s *Systemd) Unit() (string, error) {
	args := append([]string{s.c.Executable}, s.c.Args...)
	quoted := make([]string, len(args))
	for i, a := range args {
		q, err := systemdQuote(a)
		if err != nil {
			return "", fmt.Errorf("systemd unit %s: %w", s.c.Name, err)
		}
		quoted[i] = q
	}
	var b strings.Builder
	b.WriteString(`# patchmesh node, written by "patchmesh node service install". The node's settings
# belong in its config file; install again to change this command line.
[Unit]
Description=` + specifiers.Replace(s.c.Description) + `
Documentation=https://github.com/patchmesh/patchmesh
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=` + strings.Join(quoted, " ") + "\n")
	if s.c.User != "" {
		u, err := systemdQuote(s.c.User)
		if err != nil || u != s.c.User {
			return "", fmt.Errorf("systemd unit %s: user %q: not a plain account name", s.c.Name, s.c.User)
		}
		b.WriteString("User=" + u + "\nGroup=" + u + "\n")
	}
	b.WriteString(`Restart=on-failure
RestartSec=5s
# SIGTERM stops the node cleanly: in-flight fetches stop, nothing half-written
# is visible. Give it time to finish an apply's health check.
KillSignal=SIGTERM
TimeoutStopSec=60s
# control-group: hooks started by a node that crashed die with it.
KillMode=control-group
# /var/lib/patchmesh, created for and owned by the node's user.
StateDirectory=patchmesh
StateDirectoryMode=0750
LimitNOFILE=65536
NoNewPrivileges=true
PrivateTmp=true
ProtectHome=read-only

[Install]
WantedBy=multi-user.target
`)
	return b.String(), nil
}

// specifiers escapes what systemd would expand in a unit's values.
var specifiers = strings.NewReplacer("%", "%%", "$", "$$")

// systemdQuote writes one ExecStart word: plain when it is safe, else in double
// quotes with C escapes, after escaping % specifiers and $ variables.
func systemdQuote(s string) (string, error) {
	if strings.ContainsAny(s, "\n\r\x00") {
		return "", fmt.Errorf("argument %q: has a line break or NUL", s)
	}
	s = specifiers.Replace(s)
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-$", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s, nil
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\t", `\t`).Replace(s) + `"`, nil
}

// Install writes the unit and enables it (it starts at boot; Start starts it
// now). Under Root it makes the link `systemctl enable` would and stops there.
func (s *Systemd) Install(ctx context.Context) error {
	unit, err := s.Unit()
	if err != nil {
		return err
	}
	if s.c.Root == "" {
		if err := systemdRunning(); err != nil {
			return fmt.Errorf("install %s: %w", s.c.Name, err)
		}
	}
	if err := repo.WriteFileAtomic(s.UnitPath(), []byte(unit), 0o644); err != nil {
		return fmt.Errorf("install %s: %w", s.c.Name, err)
	}
	if s.c.Root != "" {
		if err := os.MkdirAll(filepath.Dir(s.wantsPath()), 0o755); err != nil {
			return fmt.Errorf("install %s: %w", s.c.Name, err)
		}
		target := "/etc/systemd/system/" + s.c.Name + ".service"
		if err := os.Remove(s.wantsPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("install %s: %w", s.c.Name, err)
		}
		if err := os.Symlink(target, s.wantsPath()); err != nil {
			return fmt.Errorf("install %s: enable: %w", s.c.Name, err)
		}
		return nil
	}
	if err := command(ctx, "systemctl", "daemon-reload"); err != nil {
		return fmt.Errorf("install %s: %w", s.c.Name, err)
	}
	if err := command(ctx, "systemctl", "enable", s.c.Name+".service"); err != nil {
		return fmt.Errorf("install %s: %w", s.c.Name, err)
	}
	return nil
}

// Uninstall stops and disables the unit and removes its file.
func (s *Systemd) Uninstall(ctx context.Context) error {
	if _, err := os.Stat(s.UnitPath()); err != nil {
		return fmt.Errorf("uninstall %s: not installed: %w", s.c.Name, err)
	}
	if s.c.Root == "" {
		if err := command(ctx, "systemctl", "disable", "--now", s.c.Name+".service"); err != nil {
			return fmt.Errorf("uninstall %s: %w", s.c.Name, err)
		}
	} else if err := os.Remove(s.wantsPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("uninstall %s: %w", s.c.Name, err)
	}
	if err := os.Remove(s.UnitPath()); err != nil {
		return fmt.Errorf("uninstall %s: %w", s.c.Name, err)
	}
	if s.c.Root == "" {
		if err := command(ctx, "systemctl", "daemon-reload"); err != nil {
			return fmt.Errorf("uninstall %s: %w", s.c.Name, err)
		}
	}
	return nil
}

// Start starts the installed unit now.
func (s *Systemd) Start(ctx context.Context) error { return s.control(ctx, "start") }

// Stop stops the unit; the node gets SIGTERM and shuts down cleanly.
func (s *Systemd) Stop(ctx context.Context) error { return s.control(ctx, "stop") }

func (s *Systemd) control(ctx context.Context, verb string) error {
	if s.c.Root != "" {
		return fmt.Errorf("%s %s: %w", verb, s.c.Name, ErrRoot)
	}
	if err := command(ctx, "systemctl", verb, s.c.Name+".service"); err != nil {
		return fmt.Errorf("%s %s: %w", verb, s.c.Name, err)
	}
	return nil
}

// systemdRunning tells whether systemd is this machine's init, as sd_booted does.
func systemdRunning() error {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return errors.New("systemd is not running on this machine (no /run/systemd/system); run `patchmesh node run` under your init system, or pass --root to only write the unit")
	}
	return nil
}
