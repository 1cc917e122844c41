package install

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/patchmesh/patchmesh/chunk/fsutil"
)

const (
	stateFile   = "state.json"
	pendingFile = "pending.json"
	linkCurrent = "current"
	linkPrev    = "previous"
	// tmpMark is in the name of every temporary file in the root, so Open can tell
	// crash leftovers from anything else.
	tmpMark = ".tmp-"
	// maxStateSize bounds state.json and pending.json before parsing.
	maxStateSize = 16 << 20
	// maxPrunedBad bounds how many bad releases are remembered after their files are gone.
	maxPrunedBad = 100
)

// record is a Release as stored in state.json.
type record struct {
	Release
	// Seq orders releases by installation; times can tie or jump.
	Seq uint64 `json:"seq"`
	// Pruned: the files are gone; the record stays because the release is bad.
	Pruned bool `json:"pruned,omitempty"`
	// Interrupted counts the activations a crash cut short, and InterruptedAt
	// names the last by its start, so a crash inside Recover counts it once.
	// A confirmed activation resets them.
	Interrupted   int       `json:"interrupted,omitempty"`
	InterruptedAt time.Time `json:"interrupted_at,omitzero"`
}

type state struct {
	Version  int      `json:"version"`
	Seq      uint64   `json:"seq"`
	Releases []record `json:"releases"`
}

func (s *state) find(name string) *record {
	for i := range s.Releases {
		if s.Releases[i].Name == name {
			return &s.Releases[i]
		}
	}
	return nil
}

func (s *state) remove(name string) {
	s.Releases = slices.DeleteFunc(s.Releases, func(r record) bool { return r.Name == name })
}

// add returns the record for name, creating it as kept if it does not exist.
func (s *state) add(name string, installed time.Time) *record {
	if r := s.find(name); r != nil {
		return r
	}
	s.Seq++
	s.Releases = append(s.Releases, record{Release: Release{Name: name, State: StateKept, Installed: installed}, Seq: s.Seq})
	return &s.Releases[len(s.Releases)-1]
}

// markBad marks name bad with reason, keeping the first reason if it is already bad.
func (s *state) markBad(name, reason string) {
	r := s.add(name, time.Now())
	if r.State == StateBad {
		return
	}
	r.State, r.Reason = StateBad, reason
}

// setRoles brings the current/previous/kept states in line with the links. Bad stays bad.
func (s *state) setRoles(current, previous string) {
	for i := range s.Releases {
		r := &s.Releases[i]
		if r.State == StateBad {
			continue
		}
		switch r.Name {
		case current:
			r.State = StateCurrent
		case previous:
			r.State = StatePrevious
		default:
			r.State = StateKept
		}
	}
}

// load reads state.json and reconciles it with disk, where the links and release
// directories are the truth: state.json may lag them by one crash.
func (in *Installer) load() error {
	var st state
	b, err := readBounded(filepath.Join(in.root, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("load state %s: %w", in.root, err)
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			// Written by rename, so this is disk damage; keep the file for a person
			// and rebuild from the directories rather than refuse to start.
			in.log.Error("state file unreadable, rebuilding from releases", "path", filepath.Join(in.root, stateFile), "err", err)
			_ = os.Rename(filepath.Join(in.root, stateFile), filepath.Join(in.root, stateFile+".corrupt"))
			st = state{}
		}
	}
	st.Version = 1

	ents, err := os.ReadDir(in.releasesDir())
	if err != nil {
		return fmt.Errorf("load state %s: %w", in.root, err)
	}
	present := map[string]bool{}
	for _, e := range ents {
		if !e.IsDir() || validName(e.Name()) != nil {
			continue
		}
		present[e.Name()] = true
		if st.find(e.Name()) == nil {
			installed := time.Now()
			if fi, err := e.Info(); err == nil {
				installed = fi.ModTime()
			}
			st.add(e.Name(), installed)
		}
	}
	st.Releases = slices.DeleteFunc(st.Releases, func(r record) bool {
		if present[r.Name] {
			return false
		}
		// Files gone: remember only that it was bad.
		return r.State != StateBad
	})
	for i := range st.Releases {
		st.Releases[i].Pruned = !present[st.Releases[i].Name]
	}
	// Sort by Seq so that the oldest pruned-bad records are the ones dropped.
	slices.SortFunc(st.Releases, func(a, b record) int { return compareUint(a.Seq, b.Seq) })

	in.current = in.readLink(linkCurrent)
	in.previous = in.readLink(linkPrev)
	if in.previous == in.current {
		in.previous = ""
	}
	st.setRoles(in.current, in.previous)
	in.st = st
	return in.saveLocked()
}

// readLink returns the release a root link points at, "" when it is missing or does not
// point at an installed release.
func (in *Installer) readLink(link string) string {
	target, err := os.Readlink(filepath.Join(in.root, link))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			in.log.Warn("unreadable link", "link", link, "err", err)
		}
		return ""
	}
	name, ok := strings.CutPrefix(filepath.ToSlash(target), "releases/")
	if !ok || validName(name) != nil || !in.installed(name) {
		in.log.Warn("link does not point at an installed release", "link", link, "target", target)
		return ""
	}
	return name
}

// saveLocked writes state.json atomically. Caller holds mu (or is Open).
func (in *Installer) saveLocked() error {
	b, err := json.MarshalIndent(in.st, "", "  ")
	if err != nil {
		return fmt.Errorf("save state %s: %w", in.root, err)
	}
	if err := writeFileAtomic(in.root, stateFile, b); err != nil {
		return fmt.Errorf("save state %s: %w", in.root, err)
	}
	return nil
}

// setLink points root/link at releases/<name> atomically: a symlink under a temporary
// name renamed over the old one, so the link exists at every moment.
func (in *Installer) setLink(link, name string) error {
	tmp := filepath.Join(in.root, "."+link+tmpMark+rand.Text())
	if err := os.Symlink(filepath.Join("releases", name), tmp); err != nil {
		return fmt.Errorf("switch %s to %s: %w", link, name, err)
	}
	if err := os.Rename(tmp, filepath.Join(in.root, link)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("switch %s to %s: %w", link, name, err)
	}
	if err := fsutil.SyncDir(in.root); err != nil {
		return fmt.Errorf("switch %s to %s: %w", link, name, err)
	}
	return nil
}

// pointLink sets link to name, or removes it when name is "".
func (in *Installer) pointLink(link, name string) error {
	if name != "" {
		return in.setLink(link, name)
	}
	if err := os.Remove(filepath.Join(in.root, link)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s link: %w", link, err)
	}
	if err := fsutil.SyncDir(in.root); err != nil {
		return fmt.Errorf("remove %s link: %w", link, err)
	}
	return nil
}

// writeFileAtomic writes dir/name so that a reader or a crash sees the old
// content or the new, never a mix. Its temporary file is named after name, so
// recovery can clean it up.
func writeFileAtomic(dir, name string, b []byte) error {
	return fsutil.WriteFile(filepath.Join(dir, name), b, 0o644, "."+name+tmpMark+"*")
}

// removeFileSynced removes dir/name (absent is fine) and makes the removal durable.
func removeFileSynced(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return fsutil.SyncDir(dir)
}

func readBounded(path string) ([]byte, error) {
	return fsutil.ReadFile(path, maxStateSize)
}

// removeTree removes path even when the writer left directories without write permission.
// Neither RemoveAll nor WalkDir follows a symlink (a link is removed, not what it points
// at), and only what WalkDir saw as a directory is chmod'ed.
func removeTree(path string) error {
	if err := os.RemoveAll(path); err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}
