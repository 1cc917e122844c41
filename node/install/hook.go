package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Hook names, as reported in [HookError.Hook].
const (
	HookPreActivate = "pre-activate"
	HookHealthCheck = "health-check"
)

const (
	// maxHookOutput is how much of a hook's combined output is kept: the tail.
	maxHookOutput = 4 << 10
	// outputDrain bounds the wait for a hook's output after its process group is
	// killed, for descendants that left the group and still hold the pipe.
	outputDrain = 2 * time.Second
)

// HookError reports a hook that failed, timed out or could not start. Activate returns
// it (match with errors.As) after any rollback it caused.
type HookError struct {
	Hook     string   // HookPreActivate or HookHealthCheck
	Argv     []string // the command that failed
	ExitCode int      // -1 when it did not exit on its own (killed, timed out, not started)
	Output   string   // last 4 KiB of combined stdout and stderr
	Err      error    // the cause: ErrHookTimeout, a context error, or the exec error

	started bool // the process ran; false when it could not be started at all
}

func (e *HookError) Error() string {
	msg := fmt.Sprintf("%s hook %s: %v", e.Hook, strings.Join(e.Argv, " "), e.Err)
	if last := lastLine(e.Output); last != "" {
		msg += ": " + last
	}
	return msg
}

func (e *HookError) Unwrap() error { return e.Err }

// reason is what state.json records for a release this hook failed: the whole kept output.
func (e *HookError) reason() string {
	s := fmt.Sprintf("%s hook %s failed: %v", e.Hook, strings.Join(e.Argv, " "), e.Err)
	if out := strings.TrimSpace(e.Output); out != "" {
		s += "\n" + out
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = "…" + s[len(s)-200:]
	}
	return s
}

// hookEnv is the environment of a hook for release name, switching from previous.
func (in *Installer) hookEnv(name, previous string, extra []string) []string {
	env := append(os.Environ(),
		"PATCHMESH_RELEASE="+name,
		"PATCHMESH_RELEASE_DIR="+in.Dir(name),
		"PATCHMESH_PREVIOUS="+previous,
	)
	return append(env, extra...)
}

// runHook runs argv in dir with env, bounded by HookTimeout. On timeout or cancellation
// it kills the hook's whole process group, so a hook that forks cannot outlive it.
// It returns nil when the hook exits zero.
func (in *Installer) runHook(ctx context.Context, hook string, argv []string, dir string, env []string) *HookError {
	he := &HookError{Hook: hook, Argv: argv, ExitCode: -1}
	hctx, cancel := context.WithTimeout(ctx, in.cfg.HookTimeout)
	defer cancel()

	cmd := exec.CommandContext(hctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	// An *os.File as stdout makes the child write straight into the pipe, so Wait
	// returns when the child exits, not when every descendant closes its copy.
	r, w, err := os.Pipe()
	if err != nil {
		he.Err = err
		return he
	}
	cmd.Stdout, cmd.Stderr = w, w
	setProcessGroup(cmd)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		he.Err = err
		return he
	}
	w.Close()
	he.started = true
	out := &tail{max: maxHookOutput}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, r)
	}()
	waitErr := cmd.Wait()
	killGroup(cmd) // descendants left behind by a hook that exited
	select {
	case <-copied:
	case <-time.After(outputDrain):
		r.Close() // unblocks the copy
		<-copied
	}
	r.Close()
	in.log.Debug("hook finished", "hook", hook, "argv", argv, "duration", time.Since(start), "err", waitErr)
	if waitErr == nil {
		return nil
	}
	he.Output = out.String()
	he.ExitCode = cmd.ProcessState.ExitCode()
	switch {
	case ctx.Err() != nil:
		he.Err = ctx.Err()
	case errors.Is(hctx.Err(), context.DeadlineExceeded):
		he.Err = fmt.Errorf("%w after %s", ErrHookTimeout, in.cfg.HookTimeout)
	default:
		he.Err = waitErr
	}
	return he
}

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	if len(t.buf) > t.max {
		return string(t.buf[len(t.buf)-t.max:])
	}
	return string(t.buf)
}
