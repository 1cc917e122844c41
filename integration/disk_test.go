package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes for the test, or skips the test,
// with the reason, where this process may not mount.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs as a full disk")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s): the full-disk test needs it", err, out)
	}
	// Registered after TempDir's own cleanup, so it runs before it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// resizeTmpfs gives the tmpfs at dir a new size.
func resizeTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+strconv.FormatInt(size, 10), dir).CombinedOutput(); err != nil {
		t.Fatalf("resize tmpfs %s: %v: %s", dir, err, out)
	}
}

// fillDisk writes a file under dir until its file system is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	// The last pages of a tmpfs go to a smaller write.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	return p
}

// stillRunning fails the test if the node process has ended.
func stillRunning(t *testing.T, n *nodeProc) {
	t.Helper()
	if done, err := n.Exited(); done {
		t.Fatalf("%s ended: %v", n.Name, err)
	}
}

// TestNodeFullDisk runs a node whose data folder is a 40 MiB tmpfs and
// asks it for a 64 MiB release: the check fails with a "no space" message
// naming the folder and the bytes, and the node keeps running. Restarted
// on a disk filled to the last byte, it starts and serves its API; when
// space returns it fetches and applies the release by itself.
func TestNodeFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, 40<<20)
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 64, 21)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	data := filepath.Join(mnt, "data")
	n := newNode(t, nodeOpts{Name: "full", Trust: pub.Trust, Sources: []string{seed.URL}, Extra: []string{"--data", data}})

	r := n.Update(t)
	out := r.stdout + r.stderr
	if r.code == 0 || !strings.Contains(out, "no space") || !strings.Contains(out, data) || !strings.Contains(out, "release 1.0.0 needs ") {
		t.Fatalf("update on a full disk: exit %d, want a failure saying no space in %s and the bytes needed:\n%s", r.code, data, out)
	}
	t.Logf("update on a full disk: exit %d: %s", r.code, strings.TrimSpace(out))
	stillRunning(t, n)
	if !n.HasError(t, "no space", data) {
		t.Errorf("status errors do not report the full disk: %+v", n.Status(t).Errors)
	}

	// Filled to the last byte, a restarted node opens its store read-only.
	filler := fillDisk(t, mnt)
	n.Stop()
	n.Restart()
	waitFor(t, 30*time.Second, func() bool { _, err := n.status(); return err == nil }, "the node's API on a full disk")
	r = n.Update(t)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "no space") {
		t.Fatalf("update on a disk full to the last byte: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	time.Sleep(2 * time.Second) // a fault in badger's own goroutines would end the process
	stillRunning(t, n)

	// Space returns: the node's retry applies the release with no help.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	resizeTmpfs(t, mnt, 256<<20)
	n.WaitVersion(t, "1.0.0", 3*time.Minute)
	sameTree(t, src, filepath.Join(n.Install, "current"))
}

// TestNodeDiskFillsMidFetch fills the data folder's disk while a node
// fetches a release: the check fails with "no space" instead of the
// process dying in badger's memory-mapped write, the node keeps serving its
// API, stops within the bound, and once space is back applies the release.
func TestNodeDiskFillsMidFetch(t *testing.T) {
	mnt := mountTmpfs(t, 112<<20)
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 64, 22)
	pub.Publish("1.0.0", src)
	cr := newCountingRepo(t, pub.Repo)
	cr.delay.Store(int64(20 * time.Millisecond))
	data := filepath.Join(mnt, "data")
	n := newNode(t, nodeOpts{Name: "fills", Trust: pub.Trust, Sources: []string{cr.URL},
		Extra: []string{"--data", data, "--concurrency", "4", "--max-concurrency", "4"}})
	waitFor(t, 60*time.Second, func() bool {
		st, err := n.status()
		return err == nil && st.Progress != nil && st.Progress.ChunksDone > st.Progress.ChunksTotal/5
	}, "a fifth of the chunks")
	filler := fillDisk(t, mnt)
	cr.delay.Store(0)
	waitFor(t, 60*time.Second, func() bool { return n.HasError(t, "no space") }, "the node to report the full disk")
	stillRunning(t, n)
	r := n.Update(t)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "no space") {
		t.Errorf("update on a full disk: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	stillRunning(t, n)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r = n.Update(t)
	if r.code != 0 {
		t.Fatalf("update once space is back: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	n.WaitVersion(t, "1.0.0", 30*time.Second)
	sameTree(t, src, filepath.Join(n.Install, "current"))
}
