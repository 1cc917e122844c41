package install

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Release states, as stored in state.json and reported by [Installer.Releases].
const (
	StateCurrent  = "current"
	StatePrevious = "previous"
	StateKept     = "kept"
	StateBad      = "bad"
)

// ReasonInterrupted is the reason recorded for a release whose health check never
// confirmed because the process stopped between the switch and the confirmation,
// more than MaxInterrupted times in a row.
const ReasonInterrupted = "interrupted before health check confirmed"

// MaxInterrupted is how many crashes during its activation a release is forgiven:
// a crash may be the machine's, not the release's, so it is tried again after the
// restart; one that crashes its node each time is marked bad.
const MaxInterrupted = 1

// Errors callers must tell apart.
var (
	// ErrInvalidName: a release name is not a single safe path element.
	ErrInvalidName = errors.New("invalid release name")
	// ErrNotInstalled: the release has not been staged (or was pruned).
	ErrNotInstalled = errors.New("release not installed")
	// ErrBad: the release is marked bad; see [Installer.IsBad] for why.
	ErrBad = errors.New("release marked bad")
	// ErrNotBad: the release is not marked bad; there is nothing to clear.
	ErrNotBad = errors.New("release not marked bad")
	// ErrNoPrevious: there is no previous release to roll back to.
	ErrNoPrevious = errors.New("no previous release")
	// ErrHookTimeout: a hook ran longer than [Config.HookTimeout] and was killed.
	ErrHookTimeout = errors.New("hook timed out")
)

// Config configures an [Installer]. Only Root is required.
type Config struct {
	// Root holds the layout described in the package documentation. Required.
	Root string
	// Keep is how many old releases are kept besides current and previous.
	// Zero means 2; negative keeps none.
	Keep int
	// HookTimeout bounds each hook run. Zero (or negative) means 2 minutes.
	HookTimeout time.Duration
	// PreActivate is an argv run before the switch, with the new release directory as
	// working directory and PATCHMESH_RELEASE, PATCHMESH_RELEASE_DIR and
	// PATCHMESH_PREVIOUS in its environment. A non-zero exit aborts the apply and marks
	// the release bad. Empty: no hook.
	PreActivate []string
	// HealthCheck is an argv run after the switch, in the same directory and environment.
	// A non-zero exit or a timeout switches back and marks the release bad. Empty: no hook.
	HealthCheck []string
	// Logger receives per-release events. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config for root with the defaults spelled out.
func DefaultConfig(root string) Config {
	return Config{Root: root, Keep: 2, HookTimeout: 2 * time.Minute, Logger: slog.Default()}
}

// Release describes one installed (or once installed and bad) release.
type Release struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	Installed time.Time `json:"installed"`
	Activated time.Time `json:"activated,omitzero"`
}

// Installer manages the releases under one root. Its methods are safe for concurrent
// use; Activate, Rollback, Recover and Prune run one at a time, Stage runs beside them.
// One process at a time may own a root.
type Installer struct {
	cfg  Config
	log  *slog.Logger
	root string

	// applyMu serialises the operations that move links or remove releases; it is held
	// for the length of hook runs, so readers use mu instead.
	applyMu sync.Mutex

	mu       sync.Mutex
	st       state          // guarded by mu
	current  string         // guarded by mu
	previous string         // guarded by mu
	staging  map[string]int // names being staged, guarded by mu
}

// Open prepares root (creating its directories), removes staging garbage left by a crash
// and loads the release state, reconciling it with the links and directories on disk.
// It does not roll back an interrupted activation: call [Installer.Recover] for that.
func Open(cfg Config) (*Installer, error) {
	if cfg.Root == "" {
		return nil, errors.New("open installer: Config.Root is required")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("open installer %s: %w", cfg.Root, err)
	}
	if cfg.Keep == 0 {
		cfg.Keep = 2
	} else if cfg.Keep < 0 {
		cfg.Keep = 0
	}
	if cfg.HookTimeout <= 0 {
		cfg.HookTimeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Root = root
	in := &Installer{cfg: cfg, log: cfg.Logger, root: root, staging: map[string]int{}}
	for _, d := range []string{root, in.releasesDir(), in.stagingDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open installer %s: %w", root, err)
		}
	}
	if err := in.cleanGarbage(); err != nil {
		return nil, err
	}
	if err := in.load(); err != nil {
		return nil, err
	}
	return in, nil
}

// cleanGarbage removes what a crash can leave behind: staging trees and temporary
// links or state files in the root.
func (in *Installer) cleanGarbage() error {
	ents, err := os.ReadDir(in.stagingDir())
	if err != nil {
		return fmt.Errorf("clean staging %s: %w", in.stagingDir(), err)
	}
	for _, e := range ents {
		p := filepath.Join(in.stagingDir(), e.Name())
		in.log.Info("removing staging garbage", "path", p)
		if err := removeTree(p); err != nil {
			return fmt.Errorf("clean staging %s: %w", p, err)
		}
	}
	ents, err = os.ReadDir(in.root)
	if err != nil {
		return fmt.Errorf("clean root %s: %w", in.root, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), tmpMark) {
			if err := os.Remove(filepath.Join(in.root, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("clean root %s: %w", in.root, err)
			}
		}
	}
	return nil
}

// Current returns the name of the running release, "" when none.
func (in *Installer) Current() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.current
}

// Previous returns the name of the release a rollback returns to, "" when none.
func (in *Installer) Previous() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.previous
}

// Releases lists the installed releases, and bad releases whose files were pruned,
// newest installed first.
func (in *Installer) Releases() []Release {
	in.mu.Lock()
	defer in.mu.Unlock()
	recs := slices.Clone(in.st.Releases)
	slices.SortFunc(recs, func(a, b record) int { return compareUint(b.Seq, a.Seq) })
	out := make([]Release, len(recs))
	for i, r := range recs {
		out[i] = r.Release
	}
	return out
}

// IsBad reports whether the release is marked bad, and why.
func (in *Installer) IsBad(name string) (bool, string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if r := in.st.find(name); r != nil && r.State == StateBad {
		return true, r.Reason
	}
	return false, ""
}

// ClearBad forgets that a release is bad, so the caller may apply it again: an
// operator's answer to a failure that was not the release's fault. It returns
// ErrNotBad when the release is not marked bad.
func (in *Installer) ClearBad(name string) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("clear bad mark: %w", err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	r := in.st.find(name)
	if r == nil || r.State != StateBad {
		return fmt.Errorf("clear bad mark of %s: %w", name, ErrNotBad)
	}
	if r.Pruned {
		in.st.remove(name) // nothing of it is left but the mark
	} else {
		r.State, r.Reason, r.Interrupted, r.InterruptedAt = StateKept, "", 0, time.Time{}
		in.st.setRoles(in.current, in.previous)
	}
	if err := in.saveLocked(); err != nil {
		return fmt.Errorf("clear bad mark of %s: %w", name, err)
	}
	in.log.Info("bad mark cleared", "release", name)
	return nil
}

// Dir returns the directory of an installed release, releases/<name> under the root.
func (in *Installer) Dir(name string) string {
	return filepath.Join(in.releasesDir(), name)
}

func (in *Installer) releasesDir() string { return filepath.Join(in.root, "releases") }
func (in *Installer) stagingDir() string  { return filepath.Join(in.root, "staging") }

// installed reports whether releases/<name> is a directory.
func (in *Installer) installed(name string) bool {
	fi, err := os.Lstat(in.Dir(name))
	return err == nil && fi.IsDir()
}

// maxNameLen leaves room for the staging suffix within a 255-byte path element.
const maxNameLen = 200

// validName accepts a single path element that is safe to use as a directory name and
// in a symlink target: no separators, no control characters, no leading dot (the root
// reserves dot names for its temporary files).
func validName(name string) error {
	if name == "" || len(name) > maxNameLen || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%w %q: must be 1-%d bytes and not start with a dot", ErrInvalidName, name, maxNameLen)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == ':' {
			return fmt.Errorf("%w %q: contains %q", ErrInvalidName, name, c)
		}
	}
	return nil
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
