package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node/api"
)

// binary is the patchmesh executable built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "patchmesh-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "patchmesh")
	args := []string{"build", "-o", binary}
	races := filepath.Join(dir, "race")
	if raceEnabled {
		// Every process the tests start writes its race reports beside the
		// binary; any report fails the run, whichever test started it.
		args = append(args, "-race")
		os.Setenv("GORACE", "log_path="+races)
	}
	cmd := exec.Command("go", append(args, "../cmd/patchmesh")...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build patchmesh:", err)
		os.Exit(1)
	}
	code := m.Run()
	reports, _ := filepath.Glob(races + ".*")
	for _, r := range reports {
		b, _ := os.ReadFile(r)
		fmt.Fprintf(os.Stderr, "data race in a patchmesh process (%s):\n%s\n", filepath.Base(r), b)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// result of one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// pm runs the patchmesh CLI and returns its exit code and output.
func pm(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run patchmesh %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// mustPM runs the CLI and fails the test unless it exits 0.
func mustPM(t *testing.T, args ...string) result {
	t.Helper()
	r := pm(t, args...)
	if r.code != 0 {
		t.Fatalf("patchmesh %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// freePort returns a loopback port that is free for TCP and UDP now and that
// no other call in this test binary has returned. Ports come from below the
// kernel's ephemeral range (32768 and up on Linux), so an outgoing connection
// can never take one between the test choosing it and the node binding it;
// asking the kernel for port 0 instead once handed one node the same port for
// its API and its p2p host.
func freePort(t *testing.T) int {
	t.Helper()
	for range portSpan {
		p := portBase + int(nextPort.Add(1))%portSpan
		if portFree(p) {
			return p
		}
	}
	t.Fatal("no free loopback port left below the ephemeral range")
	return 0
}

const (
	portBase = 20000
	portSpan = 12000
)

// nextPort starts at a place chosen by the process id so that test binaries
// running side by side walk different stretches of the range.
var nextPort = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(int64(os.Getpid()*7919) % portSpan)
	return &n
}()

func portFree(p int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(p)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

func freeAddr(t *testing.T) string { return "127.0.0.1:" + strconv.Itoa(freePort(t)) }

// proc is a running patchmesh process whose output goes to a log file that is
// printed when the test fails.
type proc struct {
	t    *testing.T
	bin  string // zero: the patchmesh binary built by TestMain
	name string
	args []string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	mu   sync.Mutex
	exit error
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startProcBin(t, "", name, args...)
}

// startProcBin starts bin, or the patchmesh binary when bin is "".
func startProcBin(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, bin: bin, name: name, args: args, log: filepath.Join(t.TempDir(), name+".log")}
	p.start()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			data, _ := os.ReadFile(p.log)
			if len(data) > 20000 {
				data = data[len(data)-20000:]
			}
			t.Logf("---- log of %s ----\n%s", p.name, data)
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	bin := binary
	if p.bin != "" {
		bin = p.bin
	}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), "NO_PROXY=*")
	if err := p.cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func() {
		err := p.cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exit = err
		p.mu.Unlock()
		close(p.done)
	}()
}

// Kill sends SIGKILL and waits for the process to die.
func (p *proc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to 20 s, then kills.
func (p *proc) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.Kill()
	}
}

// Restart starts the process again with the same arguments.
func (p *proc) Restart() {
	p.t.Helper()
	p.start()
}

// Exited reports whether the process has ended, and how.
func (p *proc) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.exit
	default:
		return false, nil
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publisher holds a signing key, a trust root and a repository folder.
type publisher struct {
	t     *testing.T
	Dir   string
	Repo  string
	Key   string
	Trust string
}

func newPublisher(t *testing.T) *publisher {
	t.Helper()
	dir := t.TempDir()
	p := &publisher{t: t, Dir: dir, Repo: filepath.Join(dir, "repo"), Key: filepath.Join(dir, "release.key"), Trust: filepath.Join(dir, "trust.json")}
	mustPM(t, "keygen", "--out", p.Key)
	mustPM(t, "trust", "init", "--key", p.Key, "--out", p.Trust, "--repo", p.Repo)
	return p
}

// Publish publishes srcDir as version and returns the summary.
func (p *publisher) Publish(version, srcDir string, extra ...string) repo.Summary {
	p.t.Helper()
	args := append([]string{"publish", "--repo", p.Repo, "--key", p.Key, "--channel", "stable", "--version", version, "--json"}, extra...)
	r := mustPM(p.t, append(args, srcDir)...)
	var s repo.Summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		p.t.Fatalf("publish summary: %v\n%s", err, r.stdout)
	}
	return s
}

// seedProc is a running `patchmesh serve`.
type seedProc struct {
	*proc
	URL    string
	APIURL string
}

func newSeed(t *testing.T, repoDir string) *seedProc {
	t.Helper()
	return newSeedAt(t, repoDir, freeAddr(t))
}

// newSeedAt starts a seed serving on addr, with extra flags.
func newSeedAt(t *testing.T, repoDir, addr string, extra ...string) *seedProc {
	t.Helper()
	apiAddr := freeAddr(t)
	p := startProc(t, "seed", append([]string{"serve", "--repo", repoDir, "--listen", addr, "--api", apiAddr}, extra...)...)
	s := &seedProc{proc: p, URL: "http://" + addr, APIURL: "http://" + apiAddr}
	waitFor(t, 20*time.Second, func() bool { _, err := s.served(); return err == nil }, "seed to listen")
	return s
}

func (s *seedProc) served() (repo.StatsSnapshot, error) {
	var st struct {
		Served repo.StatsSnapshot `json:"served"`
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(s.APIURL + "/api/status")
	if err != nil {
		return st.Served, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st.Served, err
}

// Served returns what the seed has served so far.
func (s *seedProc) Served(t *testing.T) repo.StatsSnapshot {
	t.Helper()
	st, err := s.served()
	if err != nil {
		t.Fatalf("seed status: %v", err)
	}
	return st
}

// nodeOpts configure newNode.
type nodeOpts struct {
	Name    string
	Trust   string
	Sources []string
	SiteKey string   // empty: no mesh
	Join    []string // gossip addresses
	Extra   []string // more flags
	Binary  string   // zero: the patchmesh binary built by TestMain
	// CatchUp lets the node check when a site member has a newer release
	// (--site-catch-up). Zero: off, so that a node checks only when its test
	// says so; ignored with Binary.
	CatchUp bool
}

// nodeProc is a running `patchmesh node run`.
type nodeProc struct {
	*proc
	Name    string
	API     string
	Gossip  string
	Data    string
	Install string
}

func newNode(t *testing.T, o nodeOpts) *nodeProc {
	t.Helper()
	if o.Name == "" {
		o.Name = "node"
	}
	dir := t.TempDir()
	n := &nodeProc{Name: o.Name, API: freeAddr(t), Data: filepath.Join(dir, "data"), Install: filepath.Join(dir, "app")}
	args := []string{"node", "run", "--name", o.Name, "--data", n.Data, "--install-dir", n.Install, "--trust", o.Trust,
		"--api", n.API, "--check-interval", "1h", "--log-level", "debug"}
	for _, s := range o.Sources {
		args = append(args, "--source", s)
	}
	if o.SiteKey != "" {
		n.Gossip = freeAddr(t)
		args = append(args, "--site-key", o.SiteKey, "--gossip", n.Gossip, "--p2p", "/ip4/127.0.0.1/tcp/"+strconv.Itoa(freePort(t)))
		for _, j := range o.Join {
			args = append(args, "--join", j)
		}
		if o.Binary == "" {
			args = append(args, "--site-catch-up="+strconv.FormatBool(o.CatchUp))
		}
	}
	args = append(args, o.Extra...)
	n.proc = startProcBin(t, o.Binary, o.Name, args...)
	waitFor(t, 30*time.Second, func() bool { _, err := n.status(); return err == nil }, o.Name+" API to answer")
	return n
}

func (n *nodeProc) status() (*api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return api.NewClient(n.API, "").Status(ctx)
}

// Status returns the node's status through its API.
func (n *nodeProc) Status(t *testing.T) *api.Status {
	t.Helper()
	st, err := n.status()
	if err != nil {
		t.Fatalf("%s status: %v", n.Name, err)
	}
	return st
}

// Current returns the version the node runs, "" when none or unreachable.
func (n *nodeProc) Current() string {
	st, err := n.status()
	if err != nil || st.Current == nil {
		return ""
	}
	return st.Current.Version
}

// WaitVersion waits until the node runs version.
func (n *nodeProc) WaitVersion(t *testing.T, version string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() bool { return n.Current() == version }, n.Name+" to run "+version)
}

// Update runs `patchmesh update` against the node.
func (n *nodeProc) Update(t *testing.T) result {
	t.Helper()
	return pm(t, "update", "--api", n.API)
}

// HasError reports whether the node's recent errors mention all of words.
func (n *nodeProc) HasError(t *testing.T, words ...string) bool {
	t.Helper()
	st, err := n.status()
	if err != nil {
		return false
	}
	for _, e := range st.Errors {
		all := true
		for _, w := range words {
			if !strings.Contains(e.Message, w) {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

// makeTree writes a release tree: a pseudo-random binary of sizeMiB, text files and a link.
func makeTree(t *testing.T, dir string, sizeMiB int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	big := make([]byte, sizeMiB<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	files := map[string][]byte{
		"bin/app":      big,
		"etc/app.conf": []byte("listen = 127.0.0.1:8080\n"),
		"VERSION":      []byte(fmt.Sprintf("seed %d\n", seed)),
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Remove(filepath.Join(dir, "bin/app-link"))
	if err := os.Symlink("app", filepath.Join(dir, "bin/app-link")); err != nil {
		t.Fatal(err)
	}
}

// editTree changes a few scattered bytes of the tree's big file.
func editTree(t *testing.T, dir string, places int) {
	t.Helper()
	p := filepath.Join(dir, "bin/app")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range places {
		off := (i*7919*4096 + 12345) % (len(data) - 64)
		for k := range 64 {
			data[off+k] ^= 0xa5
		}
	}
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// sameTree fails unless every regular file of want has the same bytes under got.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	err := filepath.Walk(want, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		g := filepath.Join(got, rel)
		if info.Mode()&os.ModeSymlink != 0 {
			wl, _ := os.Readlink(p)
			gl, err := os.Readlink(g)
			if err != nil || gl != wl {
				return fmt.Errorf("link %s: got %q (%v), want %q", rel, gl, err, wl)
			}
			return nil
		}
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(g)
		if err != nil {
			return fmt.Errorf("file %s: %v", rel, err)
		}
		if !bytes.Equal(a, b) {
			return fmt.Errorf("file %s differs", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
