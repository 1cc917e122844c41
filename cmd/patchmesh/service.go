package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchmesh/patchmesh/node/service"
)

// serviceFlags are the flags every `node service` subcommand shares.
type serviceFlags struct {
	name, user, root, exec string
}

func (f *serviceFlags) register(fs *pflag.FlagSet, install bool) {
	fs.StringVar(&f.name, "name", "patchmesh-node", "service name: systemd unit, launchd label or Windows service")
	fs.StringVar(&f.root, "root", "", "write the unit (systemd) or property list (launchd) under this folder instead of /, and leave the service manager alone")
	if install {
		fs.StringVar(&f.user, "user", "", "account the node runs as (systemd, launchd; default root; Windows: LocalSystem)")
		fs.StringVar(&f.exec, "exec", "", "path of the patchmesh binary the service runs (default: this one)")
	}
}

func (f *serviceFlags) manager(args []string) (service.Manager, error) {
	exe := f.exec
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("service: find this binary: %w", err)
		}
		if exe, err = filepath.EvalSymlinks(exe); err != nil {
			return nil, fmt.Errorf("service: find this binary: %w", err)
		}
	}
	return service.New(service.Config{Name: f.name, User: f.user, Root: f.root, Executable: exe, Args: args})
}

func newNodeServiceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Register the node with systemd, launchd or the Windows service manager",
		Long: `service registers "patchmesh node run" as a service of this machine: a systemd
unit on Linux, a launchd daemon on macOS, a service of the Windows service
control manager. The service restarts the node when it fails; stopping it stops
the node cleanly, as SIGTERM does.`,
	}
	cmd.AddCommand(newServiceInstallCmd(a), newServiceUninstallCmd(a),
		newServiceControlCmd(a, "start", "Start the registered node now"),
		newServiceControlCmd(a, "stop", "Stop the registered node; it shuts down cleanly"))
	return cmd
}

func newServiceInstallCmd(a *app) *cobra.Command {
	var f serviceFlags
	cmd := &cobra.Command{
		Use:   "install [--name NAME] [--user USER] [--root DIR] [-- node run flags]",
		Short: "Register the node as a service that starts at boot",
		Long: `install registers "patchmesh node run" with the node run flags given after "--"
(default: --config ` + service.DefaultConfigFile() + `). The flags are checked now,
so a typo fails here and not when the service starts. systemd: the unit goes to
/etc/systemd/system/NAME.service and is enabled; "service start" starts it.
launchd: /Library/LaunchDaemons/NAME.plist, loaded and started. Windows: an
automatic service, restarted when it fails; "service start" starts it.`,
		Example: `  patchmesh node service install --user patchmesh
  patchmesh node service install -- --config /etc/patchmesh/node.yaml --api 127.0.0.1:7781
  patchmesh node service install --root ./pkgroot --exec /usr/bin/patchmesh`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"--config", service.DefaultConfigFile()}
			}
			// Parse them as `node run` would, to refuse a bad flag now.
			var nf nodeFlags
			fs := pflag.NewFlagSet("node run", pflag.ContinueOnError)
			fs.SetOutput(a.stderr)
			nf.register(fs)
			if err := fs.Parse(args); err != nil {
				return withCode(exitUsage, fmt.Errorf("service install: node run flags: %w", err))
			}
			if fs.NArg() > 0 {
				return withCode(exitUsage, fmt.Errorf("service install: node run takes no arguments, got %q", fs.Args()))
			}
			m, err := f.manager(append([]string{"node", "run"}, args...))
			if err != nil {
				return withCode(exitUsage, err)
			}
			if err := m.Install(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "service %s installed\n", f.name)
			return nil
		},
	}
	f.register(cmd.Flags(), true)
	return cmd
}

func newServiceUninstallCmd(a *app) *cobra.Command {
	var f serviceFlags
	cmd := &cobra.Command{
		Use:   "uninstall [--name NAME] [--root DIR]",
		Short: "Stop the node's service and remove it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.manager(nil)
			if err != nil {
				return withCode(exitUsage, err)
			}
			if err := m.Uninstall(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "service %s removed\n", f.name)
			return nil
		},
	}
	f.register(cmd.Flags(), false)
	return cmd
}

func newServiceControlCmd(a *app, verb, short string) *cobra.Command {
	var f serviceFlags
	cmd := &cobra.Command{
		Use:   verb + " [--name NAME]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.manager(nil)
			if err != nil {
				return withCode(exitUsage, err)
			}
			do := m.Start
			if verb == "stop" {
				do = m.Stop
			}
			if err := do(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "service %s: %s\n", f.name, verb)
			return nil
		},
	}
	f.register(cmd.Flags(), false)
	return cmd
}
