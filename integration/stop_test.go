package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopBound is how long a node may take to end after SIGTERM, whatever it
// was doing: the node promises 10 s; the rest is for a busy test machine.
const stopBound = 15 * time.Second

// stopWithin sends SIGTERM and fails the test unless the process ends
// within stopBound; it returns the process's exit error.
func stopWithin(t *testing.T, p *proc) error {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
		t.Logf("%s ended %s after SIGTERM", p.name, time.Since(start).Round(time.Millisecond))
		_, err := p.Exited()
		return err
	case <-time.After(stopBound):
		p.Kill()
		t.Fatalf("%s still ran %s after SIGTERM", p.name, stopBound)
		return nil
	}
}

// slowFetch starts a node fetching a 32 MiB release from a slow repository
// and returns once a part of it is stored.
func slowFetch(t *testing.T, name string, extra ...string) (*nodeProc, *countingRepo) {
	t.Helper()
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 32, 31)
	pub.Publish("1.0.0", src)
	cr := newCountingRepo(t, pub.Repo)
	cr.delay.Store(int64(30 * time.Millisecond))
	n := newNode(t, nodeOpts{Name: name, Trust: pub.Trust, Sources: []string{cr.URL}, Extra: append([]string{"--concurrency", "4", "--max-concurrency", "4"}, extra...)})
	waitFor(t, 60*time.Second, func() bool {
		st, err := n.status()
		return err == nil && st.Progress != nil && st.Progress.ChunksDone > 20
	}, "the fetch to be under way")
	return n, cr
}

// TestNodeStopsMidFetch: SIGTERM in the middle of a fetch ends the node.
func TestNodeStopsMidFetch(t *testing.T) {
	n, _ := slowFetch(t, "stop-fetch")
	if err := stopWithin(t, n.proc); err != nil {
		t.Errorf("a stop mid-fetch is a clean exit, got %v", err)
	}
}

// TestNodeStopsWhenDataRemoved removes a node's data folder in the middle of
// a fetch: the node reports the broken store at once, refuses to store more,
// and SIGTERM still ends it, though badger can never flush there again.
func TestNodeStopsWhenDataRemoved(t *testing.T) {
	n, _ := slowFetch(t, "stop-gone")
	if err := os.RemoveAll(n.Data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool { return n.HasError(t, "chunk store failed", n.Data) }, "the node to report its data folder gone")
	stillRunning(t, n)
	_ = stopWithin(t, n.proc)
}

// TestNodeStopsMidApply: SIGTERM while the health check of a release runs
// ends the node, and the hook with it.
func TestNodeStopsMidApply(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 32)
	marker := filepath.Join(t.TempDir(), "checking")
	hook := fmt.Sprintf("#!/bin/sh\ntouch %s\nsleep 120\n", marker)
	if err := os.WriteFile(filepath.Join(src, "health.sh"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	pub.Publish("1.0.0", src, "--health-check", "health.sh")
	n := newNode(t, nodeOpts{Name: "stop-apply", Trust: pub.Trust, Sources: []string{"file://" + pub.Repo}})
	waitFor(t, 60*time.Second, func() bool { _, err := os.Stat(marker); return err == nil }, "the health check to run")
	_ = stopWithin(t, n.proc)
}

// TestNodeStopsWithSiteGone: a node whose site members all died without a
// word ends on SIGTERM.
func TestNodeStopsWithSiteGone(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 33)
	pub.Publish("1.0.0", src)
	key := filepath.Join(pub.Dir, "site.key")
	mustPM(t, "keygen", "--site", "--out", key)
	nodes := site(t, pub, key, 3, []string{"file://" + pub.Repo})
	for _, nd := range nodes[1:] {
		nd.Kill()
	}
	_ = stopWithin(t, nodes[0].proc)
}

// netns is a network namespace the test made.
type netns string

func (ns netns) run(t *testing.T, args ...string) {
	t.Helper()
	cmd := append([]string{"netns", "exec", string(ns)}, args...)
	if out, err := exec.Command("ip", cmd...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(cmd, " "), err, out)
	}
}

// twoNamespaces makes two network namespaces joined by a veth pair, a at
// 10.x.y.1 and b at 10.x.y.2, or skips the test with the reason.
func twoNamespaces(t *testing.T) (a, b netns, ipA, ipB, linkA string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make network namespaces")
	}
	id := os.Getpid() % 50000
	a, b = netns(fmt.Sprintf("pm%da", id)), netns(fmt.Sprintf("pm%db", id))
	for _, ns := range []netns{a, b} {
		if out, err := exec.Command("ip", "netns", "add", string(ns)).CombinedOutput(); err != nil {
			t.Skipf("cannot make a network namespace (%v: %s)", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", string(ns)).Run() })
	}
	linkA, linkB := fmt.Sprintf("pm%dx", id), fmt.Sprintf("pm%dy", id)
	net := fmt.Sprintf("10.%d.%d", 100+id/256%100, id%256)
	ipA, ipB = net+".1", net+".2"
	if out, err := exec.Command("ip", "link", "add", linkA, "netns", string(a), "type", "veth", "peer", "name", linkB, "netns", string(b)).CombinedOutput(); err != nil {
		t.Skipf("cannot make a veth pair (%v: %s)", err, out)
	}
	for _, s := range []struct {
		ns   netns
		link string
		ip   string
	}{{a, linkA, ipA}, {b, linkB, ipB}} {
		s.ns.run(t, "ip", "addr", "add", s.ip+"/24", "dev", s.link)
		s.ns.run(t, "ip", "link", "set", s.link, "up")
		s.ns.run(t, "ip", "link", "set", "lo", "up")
	}
	return a, b, ipA, ipB, linkA
}

// startIn starts patchmesh with args inside network namespace ns.
func startIn(t *testing.T, ns netns, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, log: filepath.Join(t.TempDir(), name+".log")}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", string(ns), binary}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
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
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			data, _ := os.ReadFile(p.log)
			t.Logf("---- log of %s ----\n%s", name, data)
		}
	})
	return p
}

// logHas reports whether p's log holds s.
func (p *proc) logHas(s string) bool {
	data, _ := os.ReadFile(p.log)
	return strings.Contains(string(data), s)
}

// TestNodeStopsWithInterfaceRemoved runs two nodes of a site in two network
// namespaces joined by a slow veth pair, b fetching a release from a, the
// site's distribution point; removes the interface under them mid-fetch,
// and stops them: each ends within the bound.
func TestNodeStopsWithInterfaceRemoved(t *testing.T) {
	a, b, ipA, ipB, linkA := twoNamespaces(t)
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 16, 34)
	pub.Publish("1.0.0", src)
	key := filepath.Join(pub.Dir, "site.key")
	mustPM(t, "keygen", "--site", "--out", key)
	// About 7 s for the release to cross: the link goes in the middle.
	a.run(t, "tc", "qdisc", "add", "dev", linkA, "root", "tbf", "rate", "20mbit", "burst", "32kbit", "latency", "400ms")
	start := func(ns netns, name, ip string, extra ...string) *proc {
		dir := t.TempDir()
		args := []string{"node", "run", "--name", name, "--data", filepath.Join(dir, "data"), "--install-dir", filepath.Join(dir, "app"),
			"--trust", pub.Trust, "--source", "file://" + pub.Repo, "--api", "127.0.0.1:7780", "--check-interval", "1h",
			"--site-key", key, "--gossip", ip + ":7946", "--p2p", "/ip4/" + ip + "/tcp/4001", "--log-level", "debug"}
		return startIn(t, ns, name, append(args, extra...)...)
	}
	na := start(a, "ns-a", ipA, "--role", "dp")
	nb := start(b, "ns-b", ipB, "--join", ipA+":7946")
	waitFor(t, 60*time.Second, func() bool { return nb.logHas("member joined") && nb.logHas("chunk stored") }, "ns-b to fetch from ns-a")
	time.Sleep(time.Second)
	if nb.logHas("release fetched") {
		t.Log("ns-b fetched the whole release before the link went")
	}
	a.run(t, "ip", "link", "del", linkA)
	for _, p := range []*proc{na, nb} {
		if done, err := p.Exited(); done {
			t.Fatalf("%s ended when its interface went: %v", p.name, err)
		}
	}
	for _, p := range []*proc{na, nb} {
		_ = stopWithin(t, p)
	}
}

// mountExt4 mounts a fresh ext4 file system of size bytes that turns
// read-only on its first error, as a data disk does after an I/O error, and
// returns the mount point and the name of its device under /sys/fs/ext4.
// It skips the test, with the reason, where this process may not mount.
func mountExt4(t *testing.T, size int64) (dir, dev string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a loop ext4 file system")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", img).CombinedOutput(); err != nil {
		t.Skipf("cannot make an ext4 file system (%v: %s)", err, out)
	}
	dir = t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", img, dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a loop ext4 file system (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	out, err := exec.Command("findmnt", "-n", "-o", "SOURCE", dir).Output()
	if err != nil {
		t.Fatalf("findmnt %s: %v", dir, err)
	}
	return dir, filepath.Base(strings.TrimSpace(string(out)))
}

// TestNodeStopsWhenDataTurnsReadOnly: the data disk turns read-only in the
// middle of a fetch, as ext4 does after an I/O error: the node reports its
// store failed, keeps its API, and SIGTERM ends it within the bound, though
// badger can never flush there again.
func TestNodeStopsWhenDataTurnsReadOnly(t *testing.T) {
	mnt, dev := mountExt4(t, 256<<20)
	trigger := filepath.Join("/sys/fs/ext4", dev, "trigger_fs_error")
	if _, err := os.Stat(trigger); err != nil {
		t.Skipf("this kernel cannot turn an ext4 read-only on demand (%v)", err)
	}
	data := filepath.Join(mnt, "data")
	n, _ := slowFetch(t, "stop-ro", "--data", data)
	if err := os.WriteFile(trigger, []byte("patchmesh test: the disk failed"), 0o200); err != nil {
		t.Fatalf("turn %s read-only: %v", mnt, err)
	}
	waitFor(t, 20*time.Second, func() bool { return n.HasError(t, "chunk store failed", data) }, "the node to report its data disk read-only")
	stillRunning(t, n)
	_ = stopWithin(t, n.proc)
}
