package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlocks returns the shell blocks of README.md marked "<!-- by-hand N",
// in order.
func readmeBlocks(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, m := range regexp.MustCompile("(?s)<!-- by-hand ([0-9]+)[^\n]*-->\n```sh\n(.*?)```").FindAllSubmatch(b, -1) {
		if n, _ := strconv.Atoi(string(m[1])); n != i+1 {
			t.Fatalf("README block marked by-hand %s is block %d", m[1], i+1)
		}
		out = append(out, string(m[2]))
	}
	return out
}

// TestReadmeByHand runs the README's "by hand" section as a user would paste
// it, in an empty folder with the binary on PATH: a seed and three nodes as
// background jobs, then the status commands, then a second release, which
// the two nodes not asked catch up with by themselves. Only the
// loopback ports change, to free ones, so that runs side by side do not meet.
func TestReadmeByHand(t *testing.T) {
	blocks := readmeBlocks(t)
	if len(blocks) != 3 {
		t.Fatalf("README has %d by-hand blocks, want 3", len(blocks))
	}
	ports := map[string]string{}
	addr := regexp.MustCompile(`127\.0\.0\.1:([0-9]+)`)
	for i, b := range blocks {
		blocks[i] = addr.ReplaceAllStringFunc(b, func(a string) string {
			if ports[a] == "" {
				ports[a] = freeAddr(t)
			}
			return ports[a]
		})
	}
	api := func(port string) string { return ports["127.0.0.1:"+port] }

	dir := t.TempDir()
	env := append(os.Environ(), "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"), "NO_PROXY=*", "no_proxy=*")
	run := func(block string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-e", "-c", block)
		cmd.Dir, cmd.Env = dir, env
		// Its own process group: the jobs it leaves running are stopped
		// with it at the end.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pgid := cmd.Process.Pid
		t.Cleanup(func() { stopGroup(t, pgid, dir) })
		if err := cmd.Wait(); err != nil {
			t.Fatalf("README block failed: %v\n%s\n---- output ----\n%s", err, block, out.String())
		}
		return out.String()
	}

	run(blocks[0])
	nodes := []*nodeProc{{Name: "node-1", API: api("8791")}, {Name: "node-2", API: api("8792")}, {Name: "node-3", API: api("8793")}}
	for _, n := range nodes {
		n.WaitVersion(t, "1.0.0", 90*time.Second)
	}
	out := run(blocks[1])
	for _, want := range []string{"current     1.0.0", "2 of 2 peer(s) alive", "hello, 1.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("the status block does not say %q:\n%s", want, out)
		}
	}
	// The site view comes from gossip: every member is in it.
	for _, n := range nodes {
		if !regexp.MustCompile(`(?m)^` + n.Name + `\s+alive`).MatchString(out) {
			t.Errorf("status --site does not list %s alive:\n%s", n.Name, out)
		}
	}
	out = run(blocks[2])
	for _, want := range []string{"applied: 1.1.0 is now current", "hello, 1.1.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("the update block does not say %q:\n%s", want, out)
		}
	}
	// The other two catch up with the site without being asked.
	for _, n := range nodes {
		n.WaitVersion(t, "1.1.0", 60*time.Second)
		got, err := os.ReadFile(filepath.Join(dir, n.Name, "app", "current", "hello.txt"))
		if err != nil || string(got) != "hello, 1.1.0\n" {
			t.Errorf("%s's installed hello.txt is %q (%v), want the second release", n.Name, got, err)
		}
	}
}

// stopGroup ends the process group pgid: SIGTERM, as the README's kill does,
// then SIGKILL for what is left after a bound. The logs the jobs wrote in dir
// are shown when the test failed.
func stopGroup(t *testing.T, pgid int, dir string) {
	if syscall.Kill(-pgid, syscall.SIGTERM) != nil {
		return // the group is gone: nothing was left running
	}
	deadline := time.Now().Add(20 * time.Second)
	for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if t.Failed() {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("---- %s ----\n%s", filepath.Base(l), b)
		}
	}
}
