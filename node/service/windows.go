//go:build windows

package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// New returns the Windows service control manager's manager; with Root set,
// systemd's files (for packaging from Windows).
func New(c Config) (Manager, error) {
	if c.Root != "" {
		return NewSystemd(c)
	}
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	return &scm{c: c}, nil
}

// scm registers the node with the Windows service control manager.
type scm struct{ c Config }

// stopWait bounds how long Stop and Uninstall wait for the node to exit: an
// apply's health check may be running.
const stopWait = 70 * time.Second

func (s *scm) open(verb string) (*mgr.Mgr, *mgr.Service, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: connect to the service manager: %w", verb, s.c.Name, err)
	}
	sv, err := m.OpenService(s.c.Name)
	if err != nil {
		m.Disconnect()
		return nil, nil, fmt.Errorf("%s %s: %w", verb, s.c.Name, err)
	}
	return m, sv, nil
}

func (s *scm) Install(_ context.Context) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("install %s: connect to the service manager: %w", s.c.Name, err)
	}
	defer m.Disconnect()
	if sv, err := m.OpenService(s.c.Name); err == nil {
		sv.Close()
		return fmt.Errorf("install %s: already installed (uninstall it first)", s.c.Name)
	}
	sv, err := m.CreateService(s.c.Name, s.c.Executable, mgr.Config{
		DisplayName: s.c.DisplayName,
		Description: s.c.Description,
		StartType:   mgr.StartAutomatic,
	}, s.c.Args...)
	if err != nil {
		return fmt.Errorf("install %s: %w", s.c.Name, err)
	}
	defer sv.Close()
	// Restart a node that failed, as systemd's Restart=on-failure does.
	restart := []mgr.RecoveryAction{{Type: mgr.ServiceRestart, Delay: 5 * time.Second}}
	if err := sv.SetRecoveryActions(restart, 24*60*60); err != nil {
		return fmt.Errorf("install %s: recovery actions: %w", s.c.Name, err)
	}
	return nil
}

func (s *scm) Uninstall(ctx context.Context) error {
	m, sv, err := s.open("uninstall")
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer sv.Close()
	if err := stopAndWait(ctx, sv); err != nil {
		return fmt.Errorf("uninstall %s: %w", s.c.Name, err)
	}
	if err := sv.Delete(); err != nil {
		return fmt.Errorf("uninstall %s: %w", s.c.Name, err)
	}
	return nil
}

func (s *scm) Start(_ context.Context) error {
	m, sv, err := s.open("start")
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer sv.Close()
	if err := sv.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.c.Name, err)
	}
	return nil
}

func (s *scm) Stop(ctx context.Context) error {
	m, sv, err := s.open("stop")
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer sv.Close()
	if err := stopAndWait(ctx, sv); err != nil {
		return fmt.Errorf("stop %s: %w", s.c.Name, err)
	}
	return nil
}

// stopAndWait asks a running service to stop and waits, bounded, until it has.
func stopAndWait(ctx context.Context, sv *mgr.Service) error {
	st, err := sv.Query()
	if err != nil {
		return err
	}
	if st.State == svc.Stopped {
		return nil
	}
	if _, err := sv.Control(svc.Stop); err != nil && !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, stopWait)
	defer cancel()
	for {
		if st, err = sv.Query(); err != nil {
			return err
		}
		if st.State == svc.Stopped {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still running after %s: %w", stopWait, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Run runs the node. Started by the service control manager, it reports the
// service running, and a Stop or Shutdown request cancels the node's context
// and waits for its Run to return, so the node stops as cleanly as on SIGTERM.
// Started from a console it just runs the node.
func Run(ctx context.Context, name string, run func(context.Context) error) error {
	isSvc, err := svc.IsWindowsService()
	if err != nil {
		return fmt.Errorf("run %s: detect the service manager: %w", name, err)
	}
	if !isSvc {
		return run(ctx)
	}
	h := &handler{ctx: ctx, run: run}
	if err := svc.Run(name, h); err != nil {
		return fmt.Errorf("run %s as a service: %w", name, err)
	}
	return h.err
}

type handler struct {
	ctx context.Context
	run func(context.Context) error
	err error // the node's Run result, read after svc.Run returns
}

// Execute is called by svc.Run on the service's own goroutine.
func (h *handler) Execute(_ []string, reqs <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			// The node ended by itself: a failure lets the recovery actions restart it.
			h.err = err
			if err != nil {
				return true, 1
			}
			return false, 0
		case r := <-reqs:
			switch r.Cmd {
			case svc.Interrogate:
				status <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				// The hint tells the manager how long the node may take.
				status <- svc.Status{State: svc.StopPending, WaitHint: uint32(stopWait / time.Millisecond)}
				cancel()
				h.err = <-done
				return false, 0
			}
		}
	}
}
