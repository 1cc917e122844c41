package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// script returns an argv running testdata/<name> with args.
func script(t *testing.T, name string, args ...string) []string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"/bin/sh", p}, args...)
}

func open(t *testing.T, cfg Config) *Installer {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	in, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return in
}

// stage installs a release holding VERSION (its name), bin/tool (0755) and
// data/b.txt ("complete <name>").
func stage(t *testing.T, in *Installer, name string) {
	t.Helper()
	err := in.Stage(context.Background(), name, func(ctx context.Context, dir string) error {
		return writeRelease(dir, name)
	})
	if err != nil {
		t.Fatalf("Stage %s: %v", name, err)
	}
}

func writeRelease(dir, name string) error {
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte(name), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "tool"), []byte("#!/bin/sh\necho "+name+"\n"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "data", "b.txt"), []byte("complete "+name), 0o644)
}

func activate(t *testing.T, in *Installer, name string, opts ActivateOptions) {
	t.Helper()
	if err := in.Activate(context.Background(), name, opts); err != nil {
		t.Fatalf("Activate %s: %v", name, err)
	}
}

// onDisk reads what a user of the root sees: where the links point and the running VERSION.
func onDisk(t *testing.T, root string) (current, previous, version string) {
	t.Helper()
	current, _ = os.Readlink(filepath.Join(root, "current"))
	previous, _ = os.Readlink(filepath.Join(root, "previous"))
	b, err := os.ReadFile(filepath.Join(root, "current", "VERSION"))
	if err == nil {
		version = string(b)
	}
	return current, previous, version
}

func wantLinks(t *testing.T, in *Installer, current, previous string) {
	t.Helper()
	rel := func(n string) string {
		if n == "" {
			return ""
		}
		return "releases/" + n
	}
	cur, prev, ver := onDisk(t, in.root)
	if cur != rel(current) || prev != rel(previous) || ver != current {
		t.Fatalf("on disk: current -> %q (VERSION %q), previous -> %q; want current %q, previous %q", cur, ver, prev, current, previous)
	}
	if in.Current() != current || in.Previous() != previous {
		t.Fatalf("Current() = %q, Previous() = %q; want %q, %q", in.Current(), in.Previous(), current, previous)
	}
	if _, err := os.Stat(filepath.Join(in.root, pendingFile)); err == nil {
		t.Fatalf("%s left behind", pendingFile)
	}
}

func states(in *Installer) map[string]string {
	m := map[string]string{}
	for _, r := range in.Releases() {
		m[r.Name] = r.State
	}
	return m
}

func TestStageAndActivate(t *testing.T) {
	in := open(t, Config{})
	out := filepath.Join(t.TempDir(), "hooks.log")
	in.cfg.PreActivate = script(t, "record.sh", out, "pre")
	in.cfg.HealthCheck = script(t, "record.sh", out, "health")

	stage(t, in, "1.0.0")
	stage(t, in, "1.1.0")
	if got := in.Current(); got != "" {
		t.Fatalf("Current() before any activation = %q", got)
	}

	// Staged files are durable and read-only, modes otherwise as written.
	for path, want := range map[string]os.FileMode{"bin/tool": 0o555, "VERSION": 0o444, "data/b.txt": 0o444} {
		fi, err := os.Stat(filepath.Join(in.Dir("1.0.0"), path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}

	activate(t, in, "1.0.0", ActivateOptions{Env: []string{"PATCHMESH_TEST_EXTRA=first"}})
	wantLinks(t, in, "1.0.0", "")
	activate(t, in, "1.1.0", ActivateOptions{
		Env:         []string{"PATCHMESH_TEST_EXTRA=second"},
		HealthCheck: script(t, "record.sh", out, "release-health"),
	})
	wantLinks(t, in, "1.1.0", "1.0.0")

	if got, want := states(in), map[string]string{"1.0.0": StatePrevious, "1.1.0": StateCurrent}; !mapsEqual(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	rels := in.Releases()
	if rels[0].Name != "1.1.0" || rels[0].Activated.IsZero() {
		t.Errorf("Releases()[0] = %+v, want 1.1.0 activated (newest first)", rels[0])
	}

	// What each hook saw, in order.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	dir1, _ := filepath.EvalSymlinks(in.Dir("1.0.0"))
	dir2, _ := filepath.EvalSymlinks(in.Dir("1.1.0"))
	want := strings.Join([]string{
		"hook=pre", "release=1.0.0", "dir=" + in.Dir("1.0.0"), "previous=", "extra=first", "pwd=" + dir1, "current=",
		"hook=health", "release=1.0.0", "dir=" + in.Dir("1.0.0"), "previous=", "extra=first", "pwd=" + dir1, "current=releases/1.0.0",
		"hook=pre", "release=1.1.0", "dir=" + in.Dir("1.1.0"), "previous=1.0.0", "extra=second", "pwd=" + dir2, "current=releases/1.0.0",
		"hook=health", "release=1.1.0", "dir=" + in.Dir("1.1.0"), "previous=1.0.0", "extra=second", "pwd=" + dir2, "current=releases/1.1.0",
		"hook=release-health", "release=1.1.0", "dir=" + in.Dir("1.1.0"), "previous=1.0.0", "extra=second", "pwd=" + dir2, "current=releases/1.1.0",
	}, "\n") + "\n"
	if string(b) != want {
		t.Errorf("hooks saw:\n%s\nwant:\n%s", b, want)
	}

	// State survives a restart.
	in2 := open(t, Config{Root: in.root})
	wantLinks(t, in2, "1.1.0", "1.0.0")
	if got := states(in2); !mapsEqual(got, states(in)) {
		t.Errorf("after reopen states %v, want %v", got, states(in))
	}
	// Activating the current release again changes nothing.
	activate(t, in2, "1.1.0", ActivateOptions{})
	wantLinks(t, in2, "1.1.0", "1.0.0")
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestHookFailureRollsBack(t *testing.T) {
	tests := []struct {
		name        string
		pre, health []string // config hooks: testdata script, args (PIDFILE, MOVED: temp paths)
		optsHealth  []string
		wantHook    string
		wantExit    int
		wantIs      error
		wantReason  string
	}{
		{
			name:       "health check fails",
			health:     []string{"fail.sh", "3", "database unreachable on port 5432"},
			wantHook:   HookHealthCheck,
			wantExit:   3,
			wantReason: "database unreachable on port 5432",
		},
		{
			name:       "release health check fails",
			optsHealth: []string{"fail.sh", "4", "release says no"},
			wantHook:   HookHealthCheck,
			wantExit:   4,
			wantReason: "release says no",
		},
		{
			name:       "pre-activate fails",
			pre:        []string{"fail.sh", "2", "schema migration refused"},
			health:     []string{"record.sh", "MOVED", "health"},
			wantHook:   HookPreActivate,
			wantExit:   2,
			wantReason: "schema migration refused",
		},
		{
			name:       "health check hangs",
			health:     []string{"hang.sh", "PIDFILE"},
			wantHook:   HookHealthCheck,
			wantExit:   -1,
			wantIs:     ErrHookTimeout,
			wantReason: "hook timed out",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			pidfile := filepath.Join(tmp, "pid")
			moved := filepath.Join(tmp, "moved")
			argv := func(a []string) []string {
				if len(a) == 0 {
					return nil
				}
				args := slices.Clone(a[1:])
				for i, s := range args {
					args[i] = strings.NewReplacer("PIDFILE", pidfile, "MOVED", moved).Replace(s)
				}
				return script(t, a[0], args...)
			}
			in := open(t, Config{HookTimeout: time.Second})
			stage(t, in, "r1")
			stage(t, in, "r2")
			stage(t, in, "r3")
			activate(t, in, "r1", ActivateOptions{})
			activate(t, in, "r2", ActivateOptions{})
			in.cfg.PreActivate = argv(tt.pre)
			in.cfg.HealthCheck = argv(tt.health)
			opts := ActivateOptions{HealthCheck: argv(tt.optsHealth)}

			err := in.Activate(context.Background(), "r3", opts)
			var he *HookError
			if !errors.As(err, &he) {
				t.Fatalf("Activate r3 = %v, want a *HookError", err)
			}
			if he.Hook != tt.wantHook || he.ExitCode != tt.wantExit {
				t.Errorf("HookError hook %q exit %d, want %q exit %d", he.Hook, he.ExitCode, tt.wantHook, tt.wantExit)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v, want errors.Is %v", err, tt.wantIs)
			}
			// Back where we were, with the same previous.
			wantLinks(t, in, "r2", "r1")
			bad, reason := in.IsBad("r3")
			if !bad || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("IsBad(r3) = %v, %q; want bad with %q", bad, reason, tt.wantReason)
			}
			if got := states(in); got["r3"] != StateBad || got["r2"] != StateCurrent || got["r1"] != StatePrevious {
				t.Errorf("states %v", got)
			}
			if _, err := os.Stat(moved); err == nil {
				t.Errorf("health check ran although pre-activate failed")
			}
			// A bad release is refused, until forced.
			if err := in.Activate(context.Background(), "r3", ActivateOptions{}); !errors.Is(err, ErrBad) {
				t.Errorf("Activate bad r3 = %v, want ErrBad", err)
			}
			// The mark survives a restart.
			if bad, _ := open(t, Config{Root: in.root}).IsBad("r3"); !bad {
				t.Errorf("IsBad(r3) after reopen = false")
			}
			if tt.name == "health check hangs" {
				wantDead(t, pidfile)
			}
		})
	}
}

// wantDead checks that the process whose pid is in file was killed with its hook.
func wantDead(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("hook never wrote its child's pid: %v", err)
	}
	pid := strings.TrimSpace(string(b))
	// A killed orphan is reaped by init, which may take a moment; zombies count as dead.
	for range 200 {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("hook's child %s still running after the hook was killed", pid)
}

func TestForceClearsBad(t *testing.T) {
	in := open(t, Config{})
	stage(t, in, "r1")
	stage(t, in, "r2")
	activate(t, in, "r1", ActivateOptions{})
	err := in.Activate(context.Background(), "r2", ActivateOptions{HealthCheck: script(t, "fail.sh", "1", "flaky")})
	if err == nil {
		t.Fatal("Activate with failing health check succeeded")
	}
	activate(t, in, "r2", ActivateOptions{Force: true})
	wantLinks(t, in, "r2", "r1")
	if bad, _ := in.IsBad("r2"); bad {
		t.Error("r2 still bad after a forced, healthy activation")
	}
}

func TestHookOutputBounded(t *testing.T) {
	in := open(t, Config{HealthCheck: script(t, "noisy.sh")})
	stage(t, in, "r1")
	err := in.Activate(context.Background(), "r1", ActivateOptions{})
	var he *HookError
	if !errors.As(err, &he) {
		t.Fatalf("Activate = %v, want *HookError", err)
	}
	if len(he.Output) > maxHookOutput || !strings.HasSuffix(he.Output, "TAIL-MARKER\n") {
		t.Errorf("Output is %d bytes ending %q; want at most %d ending with the marker", len(he.Output), he.Output[max(0, len(he.Output)-20):], maxHookOutput)
	}
	if !strings.Contains(err.Error(), "TAIL-MARKER") {
		t.Errorf("error %q does not show the hook's last line", err)
	}
	// First activation: nothing to go back to, so nothing is current.
	wantLinks(t, in, "", "")
	if _, err := os.Lstat(filepath.Join(in.root, "current")); err == nil {
		t.Error("current link exists after the only release failed its health check")
	}
}

func TestHookCancelled(t *testing.T) {
	in := open(t, Config{})
	stage(t, in, "r1")
	stage(t, in, "r2")
	activate(t, in, "r1", ActivateOptions{})
	pidfile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- in.Activate(ctx, "r2", ActivateOptions{HealthCheck: script(t, "hang.sh", pidfile)}) }()
	waitFile(t, pidfile)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Activate = %v, want context.Canceled", err)
	}
	wantLinks(t, in, "r1", "")
	// A shutdown is not the release's fault.
	if bad, _ := in.IsBad("r2"); bad {
		t.Error("r2 marked bad after a cancelled health check")
	}
	wantDead(t, pidfile)
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	for range 3000 {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", p)
}

func TestRollbackByHand(t *testing.T) {
	in := open(t, Config{})
	for _, n := range []string{"r1", "r2", "r3"} {
		stage(t, in, n)
		activate(t, in, n, ActivateOptions{})
	}
	wantLinks(t, in, "r3", "r2")

	steps := []struct {
		reason       string
		wantTo       string
		wantPrevious string
		wantErr      error
	}{
		{reason: "users report crashes", wantTo: "r2", wantPrevious: "r1"},
		{reason: "", wantTo: "r1", wantPrevious: ""},
		{reason: "again", wantErr: ErrNoPrevious},
	}
	for i, s := range steps {
		from := in.Current()
		to, err := in.Rollback(context.Background(), s.reason)
		if s.wantErr != nil {
			if !errors.Is(err, s.wantErr) {
				t.Fatalf("step %d: Rollback = %q, %v; want %v", i, to, err, s.wantErr)
			}
			wantLinks(t, in, from, "")
			continue
		}
		if err != nil || to != s.wantTo {
			t.Fatalf("step %d: Rollback = %q, %v; want %q", i, to, err, s.wantTo)
		}
		wantLinks(t, in, s.wantTo, s.wantPrevious)
		bad, reason := in.IsBad(from)
		if !bad || (s.reason != "" && reason != s.reason) {
			t.Errorf("step %d: IsBad(%s) = %v, %q; want bad, %q", i, from, bad, reason, s.reason)
		}
	}
}

func TestStageFailureLeavesNoTrace(t *testing.T) {
	errWriter := errors.New("chunk source gone")
	tests := []struct {
		name   string
		write  func(ctx context.Context, dir string) error
		cancel bool
		want   error
	}{
		{
			name: "writer error after some files",
			write: func(ctx context.Context, dir string) error {
				if err := writeRelease(dir, "r1"); err != nil {
					return err
				}
				return errWriter
			},
			want: errWriter,
		},
		{
			name: "context cancelled while writing",
			write: func(ctx context.Context, dir string) error {
				if err := writeRelease(dir, "r1"); err != nil {
					return err
				}
				<-ctx.Done()
				return nil // a sloppy writer; Stage must still notice
			},
			cancel: true,
			want:   context.Canceled,
		},
		{
			name: "writer leaves a read-only directory",
			write: func(ctx context.Context, dir string) error {
				if err := writeRelease(dir, "r1"); err != nil {
					return err
				}
				if err := os.Chmod(filepath.Join(dir, "data"), 0o500); err != nil {
					return err
				}
				return errWriter
			},
			want: errWriter,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := open(t, Config{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				time.AfterFunc(0, cancel)
			}
			err := in.Stage(ctx, "r1", tt.write)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Stage = %v, want %v", err, tt.want)
			}
			for _, d := range []string{"releases", "staging"} {
				ents, _ := os.ReadDir(filepath.Join(in.root, d))
				if len(ents) != 0 {
					t.Errorf("%s/ holds %v after a failed stage", d, ents)
				}
			}
			if rels := in.Releases(); len(rels) != 0 {
				t.Errorf("Releases() = %v after a failed stage", rels)
			}
			if err := in.Activate(context.Background(), "r1", ActivateOptions{}); !errors.Is(err, ErrNotInstalled) {
				t.Errorf("Activate = %v, want ErrNotInstalled", err)
			}
		})
	}
}

func TestStageNames(t *testing.T) {
	in := open(t, Config{})
	for _, name := range []string{"", ".", "..", "a/b", `a\b`, ".hidden", "a\nb", strings.Repeat("x", 201)} {
		called := false
		err := in.Stage(context.Background(), name, func(context.Context, string) error { called = true; return nil })
		if !errors.Is(err, ErrInvalidName) || called {
			t.Errorf("Stage(%q) = %v (writer called %v), want ErrInvalidName", name, err, called)
		}
	}
	stage(t, in, "1.4.2+build.7_linux-amd64")
	calls := 0
	if err := in.Stage(context.Background(), "1.4.2+build.7_linux-amd64", func(context.Context, string) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("re-Stage = %v with %d writer calls; want nil and none", err, calls)
	}
}

func TestOpenRemovesGarbage(t *testing.T) {
	root := t.TempDir()
	in := open(t, Config{Root: root})
	stage(t, in, "r1")
	activate(t, in, "r1", ActivateOptions{})
	// What a crash leaves: a half-written staging tree (one dir unwritable), a
	// temporary link and a temporary state file.
	junk := filepath.Join(root, "staging", "r2.123456")
	if err := writeRelease(junk, "r2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(junk, "data"), 0o500); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("releases/r2", filepath.Join(root, ".current"+tmpMark+"X")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, ".state.json"+tmpMark+"Y"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}

	in = open(t, Config{Root: root})
	wantLinks(t, in, "r1", "")
	ents, _ := os.ReadDir(filepath.Join(root, "staging"))
	if len(ents) != 0 {
		t.Errorf("staging/ holds %v after Open", ents)
	}
	ents, _ = os.ReadDir(root)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"current", "releases", "staging", "state.json"}; !slices.Equal(names, want) {
		t.Errorf("root holds %v, want %v", names, want)
	}
}

func TestPrune(t *testing.T) {
	// r1..r4 activated in turn with r3 failing its health check, r5 and r6 staged only:
	// current r4, previous r2, others r1 (good), r3 (bad), r5, r6 (good, newer).
	tests := []struct {
		keep        int
		wantRemoved []string
	}{
		{keep: 1, wantRemoved: []string{"r5", "r1", "r3"}},
		{keep: 0, wantRemoved: []string{"r1", "r3"}}, // zero means 2
		{keep: 3, wantRemoved: []string{"r3"}},       // bad ones go first
		{keep: 4, wantRemoved: nil},
		{keep: -1, wantRemoved: []string{"r6", "r5", "r1", "r3"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("keep=", tt.keep), func(t *testing.T) {
			in := open(t, Config{Keep: tt.keep})
			for _, n := range []string{"r1", "r2", "r3", "r4", "r5", "r6"} {
				stage(t, in, n)
			}
			activate(t, in, "r1", ActivateOptions{})
			activate(t, in, "r2", ActivateOptions{})
			if err := in.Activate(context.Background(), "r3", ActivateOptions{HealthCheck: script(t, "fail.sh", "1", "no")}); err == nil {
				t.Fatal("r3 activated despite failing health check")
			}
			activate(t, in, "r4", ActivateOptions{})

			removed, err := in.Prune()
			if err != nil {
				t.Fatalf("Prune: %v", err)
			}
			if !slices.Equal(removed, tt.wantRemoved) {
				t.Errorf("Prune removed %v, want %v", removed, tt.wantRemoved)
			}
			for _, n := range []string{"r1", "r2", "r3", "r4", "r5", "r6"} {
				_, err := os.Stat(in.Dir(n))
				if gone := slices.Contains(tt.wantRemoved, n); gone != (err != nil) {
					t.Errorf("%s on disk: %v, want removed %v", n, err == nil, gone)
				}
			}
			wantLinks(t, in, "r4", "r2")
			if bad, _ := in.IsBad("r3"); !bad {
				t.Error("r3 no longer bad after prune")
			}
			if again, err := in.Prune(); err != nil || len(again) != 0 {
				t.Errorf("second Prune removed %v, %v; want nothing", again, err)
			}
			// Pruned good releases are forgotten; the bad one is remembered across restarts.
			in2 := open(t, Config{Root: in.root, Keep: tt.keep})
			if bad, _ := in2.IsBad("r3"); !bad {
				t.Error("r3 no longer bad after prune and reopen")
			}
			for _, r := range in2.Releases() {
				if r.Name != "r3" && slices.Contains(tt.wantRemoved, r.Name) {
					t.Errorf("pruned %s still listed: %+v", r.Name, r)
				}
			}
		})
	}
}

func TestPruneDuringStage(t *testing.T) {
	in := open(t, Config{Keep: -1})
	stage(t, in, "r1")
	stage(t, in, "r2")
	activate(t, in, "r1", ActivateOptions{})
	var removed []string
	err := in.Stage(context.Background(), "r3", func(ctx context.Context, dir string) error {
		if err := writeRelease(dir, "r3"); err != nil {
			return err
		}
		var err error
		removed, err = in.Prune()
		return err
	})
	if err != nil {
		t.Fatalf("Stage with a Prune inside: %v", err)
	}
	if !slices.Equal(removed, []string{"r2"}) {
		t.Errorf("Prune during stage removed %v, want [r2]", removed)
	}
	activate(t, in, "r3", ActivateOptions{})
	wantLinks(t, in, "r3", "r1")
}

// TestReaderNeverSeesPartialRelease resolves `current` in a loop, as a service reading
// its files would, while releases are switched, rolled back and failed underneath it.
func TestReaderNeverSeesPartialRelease(t *testing.T) {
	in := open(t, Config{})
	const n = 12
	names := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("r%02d", i)
		names[name] = true
		stage(t, in, name)
	}
	activate(t, in, "r00", ActivateOptions{})

	done := make(chan struct{})
	result := make(chan error, 1)
	seen := map[string]bool{}
	go func() {
		result <- func() error {
			for i := 0; i < 1_000_000; i++ {
				select {
				case <-done:
					if i == 0 {
						return errors.New("reader never ran")
					}
					return nil
				default:
				}
				target, err := os.Readlink(filepath.Join(in.root, "current"))
				if err != nil {
					return fmt.Errorf("iteration %d: current missing: %w", i, err)
				}
				v, err := os.ReadFile(filepath.Join(in.root, "current", "VERSION"))
				if err != nil || !names[string(v)] {
					return fmt.Errorf("iteration %d: VERSION %q, %v", i, v, err)
				}
				b, err := os.ReadFile(filepath.Join(in.root, "current", "data", "b.txt"))
				if err != nil || !strings.HasPrefix(string(b), "complete ") || !names[strings.TrimPrefix(string(b), "complete ")] {
					return fmt.Errorf("iteration %d: data/b.txt %q, %v", i, b, err)
				}
				seen[target] = true
			}
			return errors.New("reader ran out of iterations before the activations finished")
		}()
	}()

	fail := script(t, "fail.sh", "1", "unhealthy")
	for i := 1; i < n; i++ {
		name := fmt.Sprintf("r%02d", i)
		switch i % 4 {
		case 3:
			if err := in.Activate(context.Background(), name, ActivateOptions{HealthCheck: fail}); err == nil {
				t.Errorf("%s activated despite failing health check", name)
			}
		case 2:
			activate(t, in, name, ActivateOptions{})
			if _, err := in.Rollback(context.Background(), "test"); err != nil {
				t.Errorf("Rollback: %v", err)
			}
		default:
			activate(t, in, name, ActivateOptions{})
		}
	}
	close(done)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	t.Logf("reader saw %d distinct targets", len(seen))
}

func TestMisconfiguredHookDoesNotCondemnRelease(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		opts   ActivateOptions
		bad    bool
		wantIn string
	}{
		{name: "config pre-activate missing", cfg: Config{PreActivate: []string{"/nonexistent/pre"}}, wantIn: "/nonexistent/pre"},
		{name: "config health check missing", cfg: Config{HealthCheck: []string{"/nonexistent/check"}}, wantIn: "/nonexistent/check"},
		{name: "release health check missing", opts: ActivateOptions{HealthCheck: []string{"./hooks/check"}}, bad: true, wantIn: "./hooks/check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := open(t, tt.cfg)
			stage(t, in, "r1")
			stage(t, in, "r2")
			in.cfg.PreActivate, in.cfg.HealthCheck = nil, nil
			activate(t, in, "r1", ActivateOptions{})
			in.cfg.PreActivate, in.cfg.HealthCheck = tt.cfg.PreActivate, tt.cfg.HealthCheck

			err := in.Activate(context.Background(), "r2", tt.opts)
			var he *HookError
			if !errors.As(err, &he) || he.ExitCode != -1 || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("Activate = %v, want a *HookError naming %s", err, tt.wantIn)
			}
			wantLinks(t, in, "r1", "")
			if bad, _ := in.IsBad("r2"); bad != tt.bad {
				t.Errorf("IsBad(r2) = %v, want %v", bad, tt.bad)
			}
		})
	}
}

// TestSealDoesNotFollowLinks stages a release holding links to a file and a folder
// outside it: seal must neither chmod nor open what they point at, and must keep the
// setuid, setgid and sticky bits of the release's own files.
func TestSealDoesNotFollowLinks(t *testing.T) {
	in := open(t, Config{})
	outside := t.TempDir()
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(outside)
	if err != nil {
		t.Fatal(err)
	}
	err = in.Stage(context.Background(), "r1", func(ctx context.Context, dir string) error {
		if err := writeRelease(dir, "r1"); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(dir, "bin", "tool"), 0o755|fs.ModeSetuid|fs.ModeSetgid); err != nil {
			return err
		}
		if err := os.Symlink(secret, filepath.Join(dir, "shadow")); err != nil {
			return err
		}
		return os.Symlink(outside, filepath.Join(dir, "data", "outside"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(secret); err != nil || fi.Mode() != 0o640 {
		t.Errorf("the file a release links to was changed: %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(outside); err != nil || fi.Mode() != before.Mode() {
		t.Errorf("the folder a release links to was changed: %v, %v", fi.Mode(), err)
	}
	fi, err := os.Lstat(filepath.Join(in.Dir("r1"), "bin", "tool"))
	if want := 0o555 | fs.ModeSetuid | fs.ModeSetgid; err != nil || fi.Mode() != want {
		t.Errorf("sealed bin/tool: mode %v (%v), want %v", fi.Mode(), err, want)
	}
	if fi, err := os.Lstat(filepath.Join(in.Dir("r1"), "shadow")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("sealed link: %v, %v", fi.Mode(), err)
	}
	// Pruning removes the links, not their targets.
	if err := removeTree(in.Dir("r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Errorf("removing the release removed what it links to: %v", err)
	}
}

func TestClearBad(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, in *Installer)
		clear   string
		want    error
		listed  bool // r2 still listed after
	}{
		{name: "a bad release", prepare: func(t *testing.T, in *Installer) { in.markBad("r2", "health check failed") }, clear: "r2", listed: true},
		{name: "a good release", clear: "r2", want: ErrNotBad, listed: true},
		{name: "an unknown release", clear: "r9", want: ErrNotBad, listed: true},
		{name: "a bad invalid name", clear: "../r2", want: ErrInvalidName, listed: true},
		{
			name: "a bad release whose files are gone",
			prepare: func(t *testing.T, in *Installer) {
				in.markBad("r2", "health check failed")
				if err := removeTree(in.Dir("r2")); err != nil {
					t.Fatal(err)
				}
			},
			clear: "r2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := open(t, Config{})
			stage(t, in, "r1")
			stage(t, in, "r2")
			activate(t, in, "r1", ActivateOptions{})
			if tt.prepare != nil {
				tt.prepare(t, in)
			}
			in = open(t, Config{Root: in.root})
			err := in.ClearBad(tt.clear)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("ClearBad(%q) = %v, want %v", tt.clear, err, tt.want)
			}
			in = open(t, Config{Root: in.root})
			if bad, why := in.IsBad("r2"); bad {
				t.Fatalf("r2 still bad: %s", why)
			}
			listed := false
			for _, r := range in.Releases() {
				listed = listed || r.Name == "r2"
			}
			if listed != tt.listed {
				t.Fatalf("r2 listed %v, want %v", listed, tt.listed)
			}
			if tt.listed {
				activate(t, in, "r2", ActivateOptions{})
			}
		})
	}
}
