//go:build unix

package install

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Environment of the helper process that TestCrashBeforeConfirm kills.
const (
	helperEnv        = "PATCHMESH_INSTALL_TEST_HELPER"
	helperRootEnv    = "PATCHMESH_INSTALL_TEST_ROOT"
	helperReleaseEnv = "PATCHMESH_INSTALL_TEST_RELEASE"
	helperPidfileEnv = "PATCHMESH_INSTALL_TEST_PIDFILE"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "activate" {
		os.Exit(helperActivate())
	}
	os.Exit(m.Run())
}

// helperActivate is a node that activates a release whose health check hangs; the
// test kills it while the check runs.
func helperActivate() int {
	hang, err := filepath.Abs(filepath.Join("testdata", "hang.sh"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	in, err := Open(Config{Root: os.Getenv(helperRootEnv), HealthCheck: []string{"/bin/sh", hang, os.Getenv(helperPidfileEnv)}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err = in.Activate(context.Background(), os.Getenv(helperReleaseEnv), ActivateOptions{})
	fmt.Fprintln(os.Stderr, "helper: Activate returned before being killed:", err)
	return 3
}

// TestCrashBeforeConfirm kills (SIGKILL) a process in the middle of a health check,
// then starts again on the same root as a restarted node would.
func TestCrashBeforeConfirm(t *testing.T) {
	tests := []struct {
		name         string
		before       []string // activated before the crash
		wantCurrent  string
		wantPrevious string
	}{
		{name: "back to previous", before: []string{"r1", "r2"}, wantCurrent: "r2", wantPrevious: "r1"},
		{name: "first install", before: nil, wantCurrent: "", wantPrevious: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			pidfile := filepath.Join(t.TempDir(), "pid")
			in := open(t, Config{Root: root})
			for _, n := range []string{"r1", "r2", "r3"} {
				stage(t, in, n)
			}
			for _, n := range tt.before {
				activate(t, in, n, ActivateOptions{})
			}

			crash := func() {
				t.Helper()
				os.Remove(pidfile)
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), helperEnv+"=activate", helperRootEnv+"="+root,
					helperReleaseEnv+"=r3", helperPidfileEnv+"="+pidfile)
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// The health check outlives the killed node (its own process group);
				// a service manager would kill it, here the test does.
				killCheck := func() {
					if b, err := os.ReadFile(pidfile + ".leader"); err == nil {
						if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
							_ = syscall.Kill(-pid, syscall.SIGKILL)
						}
					}
				}
				t.Cleanup(func() {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					killCheck()
				})
				waitFile(t, pidfile)

				// The crash window: switched, not confirmed.
				if cur, _, ver := onDisk(t, root); cur != "releases/r3" || ver != "r3" {
					t.Fatalf("during health check current -> %q (VERSION %q), want r3", cur, ver)
				}
				if _, err := os.Stat(filepath.Join(root, pendingFile)); err != nil {
					t.Fatalf("no marker during health check: %v", err)
				}
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				if err := cmd.Wait(); err == nil {
					t.Fatal("helper exited cleanly; it should have been killed")
				}
				killCheck()
			}

			// The first crash may be the machine's: rolled back, not bad.
			crash()
			in = open(t, Config{Root: root})
			if got := in.Current(); got != "r3" {
				t.Errorf("before Recover Current() = %q, want r3 (what the link says)", got)
			}
			got, err := in.Recover(context.Background())
			if err != nil || got != "r3" {
				t.Fatalf("Recover = %q, %v; want r3", got, err)
			}
			wantLinks(t, in, tt.wantCurrent, tt.wantPrevious)
			if bad, reason := in.IsBad("r3"); bad {
				t.Errorf("r3 bad (%q) after one interrupted activation; want it tried again", reason)
			}
			if got, err := in.Recover(context.Background()); err != nil || got != "" {
				t.Errorf("second Recover = %q, %v; want nothing to do", got, err)
			}

			// The second in a row is the release's: bad.
			crash()
			in = open(t, Config{Root: root})
			if got, err := in.Recover(context.Background()); err != nil || got != "r3" {
				t.Fatalf("Recover after the second crash = %q, %v; want r3", got, err)
			}
			wantLinks(t, in, tt.wantCurrent, tt.wantPrevious)
			if bad, reason := in.IsBad("r3"); !bad || !strings.HasPrefix(reason, ReasonInterrupted) {
				t.Errorf("IsBad(r3) = %v, %q; want %q", bad, reason, ReasonInterrupted)
			}
			in = open(t, Config{Root: root})
			wantLinks(t, in, tt.wantCurrent, tt.wantPrevious)
			if bad, _ := in.IsBad("r3"); !bad {
				t.Error("r3 not bad after reopen")
			}
			if err := in.ClearBad("r3"); err != nil {
				t.Fatal(err)
			}
			activate(t, in, "r3", ActivateOptions{})
			wantLinks(t, in, "r3", tt.wantCurrent)
		})
	}
}

// TestActivateRecoversFirst: a caller that forgets Recover still gets a consistent switch.
func TestActivateRecoversFirst(t *testing.T) {
	in := open(t, Config{})
	for _, n := range []string{"r1", "r2", "r3"} {
		stage(t, in, n)
	}
	activate(t, in, "r1", ActivateOptions{})
	// Leave the root as a crash during r2's health check would: marker written, links switched.
	if err := writeFileAtomic(in.root, pendingFile, []byte(`{"release":"r2","previous":"r1","previous_previous":""}`)); err != nil {
		t.Fatal(err)
	}
	if err := in.switchTo("r2", "r1"); err != nil {
		t.Fatal(err)
	}
	in = open(t, Config{Root: in.root})
	activate(t, in, "r3", ActivateOptions{})
	wantLinks(t, in, "r3", "r1")
	if bad, reason := in.IsBad("r2"); bad {
		t.Errorf("IsBad(r2) = %v, %q; want it to be tried again", bad, reason)
	}
}
