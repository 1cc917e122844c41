package service

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"strings"

	"github.com/patchmesh/patchmesh/manifest/repo"
)

// Launchd registers the node as a launchd daemon (macOS).
type Launchd struct{ c Config }

// NewLaunchd checks c and returns its launchd manager; it builds on any OS.
func NewLaunchd(c Config) (*Launchd, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Launchd{c: c}, nil
}

// PlistPath is where the daemon's property list is written, under Root.
func (l *Launchd) PlistPath() string {
	return under(l.c.Root, "/Library/LaunchDaemons/"+l.c.Name+".plist")
}

// LogPath is where launchd sends the node's standard output and error.
func (l *Launchd) LogPath() string { return "/Library/Logs/patchmesh/" + l.c.Name + ".log" }

// Plist returns the property list's text. KeepAlive restarts a node that
// failed, not one that was stopped (a clean exit is 0).
func (l *Launchd) Plist() string {
	var b strings.Builder
	str := func(s string) string {
		var e strings.Builder
		_ = xml.EscapeText(&e, []byte(s)) // writing to a Builder does not fail
		return "<string>" + e.String() + "</string>"
	}
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>` + str(l.c.Name) + `
	<key>ProgramArguments</key>
	<array>
`)
	for _, a := range append([]string{l.c.Executable}, l.c.Args...) {
		b.WriteString("\t\t" + str(a) + "\n")
	}
	b.WriteString("\t</array>\n")
	if l.c.User != "" {
		b.WriteString("\t<key>UserName</key>" + str(l.c.User) + "\n")
	}
	b.WriteString(`	<key>RunAtLoad</key><true/>
	<key>KeepAlive</key>
	<dict><key>SuccessfulExit</key><false/></dict>
	<key>ExitTimeOut</key><integer>60</integer>
	<key>StandardOutPath</key>` + str(l.LogPath()) + `
	<key>StandardErrorPath</key>` + str(l.LogPath()) + `
</dict>
</plist>
`)
	return b.String()
}

// Install writes the property list and loads it, which starts the node.
func (l *Launchd) Install(ctx context.Context) error {
	if err := repo.WriteFileAtomic(l.PlistPath(), []byte(l.Plist()), 0o644); err != nil {
		return fmt.Errorf("install %s: %w", l.c.Name, err)
	}
	if l.c.Root != "" {
		return nil
	}
	if err := os.MkdirAll("/Library/Logs/patchmesh", 0o755); err != nil {
		return fmt.Errorf("install %s: %w", l.c.Name, err)
	}
	if err := command(ctx, "launchctl", "bootstrap", "system", l.PlistPath()); err != nil {
		return fmt.Errorf("install %s: %w", l.c.Name, err)
	}
	return nil
}

// Uninstall unloads the daemon, which stops it, and removes its property list.
func (l *Launchd) Uninstall(ctx context.Context) error {
	if _, err := os.Stat(l.PlistPath()); err != nil {
		return fmt.Errorf("uninstall %s: not installed: %w", l.c.Name, err)
	}
	if l.c.Root == "" {
		if err := command(ctx, "launchctl", "bootout", "system/"+l.c.Name); err != nil {
			return fmt.Errorf("uninstall %s: %w", l.c.Name, err)
		}
	}
	if err := os.Remove(l.PlistPath()); err != nil {
		return fmt.Errorf("uninstall %s: %w", l.c.Name, err)
	}
	return nil
}

// Start starts the loaded daemon now.
func (l *Launchd) Start(ctx context.Context) error {
	return l.control(ctx, "start", "kickstart", "system/"+l.c.Name)
}

// Stop sends the node SIGTERM; it exits 0, so KeepAlive leaves it stopped.
func (l *Launchd) Stop(ctx context.Context) error {
	return l.control(ctx, "stop", "kill", "TERM", "system/"+l.c.Name)
}

func (l *Launchd) control(ctx context.Context, verb string, args ...string) error {
	if l.c.Root != "" {
		return fmt.Errorf("%s %s: %w", verb, l.c.Name, ErrRoot)
	}
	if err := command(ctx, "launchctl", args...); err != nil {
		return fmt.Errorf("%s %s: %w", verb, l.c.Name, err)
	}
	return nil
}
