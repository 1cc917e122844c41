package integration

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
)

// repoFiles lists every file of a repository with its bytes, the publish lock aside.
func repoFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(t *testing.T, before, after map[string]string, what string) {
	t.Helper()
	for p, b := range before {
		if a, ok := after[p]; !ok || a != b {
			t.Errorf("%s changed or removed %s", what, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s added %s", what, p)
		}
	}
}

// TestPublishRefusesAForeignKey: a key the repository's root does not hold signs
// what every node refuses; publish says so, exits 3 and writes nothing.
func TestPublishRefusesAForeignKey(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 1)
	pub.Publish("1.0.0", src)
	foreign := filepath.Join(pub.Dir, "foreign.key")
	mustPM(t, "keygen", "--out", foreign)
	before := repoFiles(t, pub.Repo)

	editTree(t, src, 2)
	r := pm(t, "publish", "--repo", pub.Repo, "--key", foreign, "--channel", "stable", "--version", "1.1.0", src)
	if r.code != 3 || !strings.Contains(r.stderr, "not in trust root") || strings.Contains(r.stdout, "published") {
		t.Fatalf("publish with a foreign key: exit %d (want 3)\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	sameFiles(t, before, repoFiles(t, pub.Repo), "a refused publish")
	mustPM(t, "verify", "--repo", pub.Repo, "--trust", pub.Trust)
}

// TestCoSigning: a root of two keys with threshold 2. One key alone is refused; a
// pending release moves no head while co-signers sign the manifest, then the
// head; the node sees the new release only when the head has both signatures.
func TestCoSigning(t *testing.T) {
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	repoDir, trust := filepath.Join(dir, "repo"), filepath.Join(dir, "trust.json")
	mustPM(t, "keygen", "--out", keyA)
	mustPM(t, "keygen", "--out", keyB)
	mustPM(t, "trust", "init", "--key", keyA, "--key", keyB, "--threshold", "2", "--out", trust, "--repo", repoDir)
	src := filepath.Join(dir, "build")
	makeTree(t, src, 1, 1)
	mustPM(t, "publish", "--repo", repoDir, "--key", keyA, "--key", keyB, "--version", "1.0.0", src)
	seed := newSeed(t, repoDir)
	n := newNode(t, nodeOpts{Name: "n1", Trust: trust, Sources: []string{seed.URL}})
	n.WaitVersion(t, "1.0.0", 60*time.Second)

	editTree(t, src, 2)
	before := repoFiles(t, repoDir)
	r := pm(t, "publish", "--repo", repoDir, "--key", keyA, "--version", "1.1.0", src)
	if r.code != 3 || !strings.Contains(r.stderr, "1 of the 2 signatures") {
		t.Fatalf("publish below the threshold: exit %d (want 3)\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	sameFiles(t, before, repoFiles(t, repoDir), "a publish below the threshold")

	headBytes := func() string {
		b, err := os.ReadFile(filepath.Join(repoDir, repo.HeadPath("stable")))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	head := headBytes()
	stillOld := func(step string) {
		t.Helper()
		if headBytes() != head {
			t.Fatalf("%s: the head moved before the threshold", step)
		}
		if r := n.Update(t); r.code != 0 || !strings.Contains(r.stdout, "up-to-date: running 1.0.0") {
			t.Fatalf("%s: update: exit %d: %s %s", step, r.code, r.stdout, r.stderr)
		}
		mustPM(t, "verify", "--repo", repoDir, "--trust", trust)
	}
	r = mustPM(t, "publish", "--repo", repoDir, "--key", keyA, "--version", "1.1.0", "--pending", src)
	if !strings.Contains(r.stdout, "pending stable 1.1.0") || !strings.Contains(r.stdout, "manifest      signed by 1 of 2") {
		t.Fatalf("publish --pending: %s", r.stdout)
	}
	stillOld("pending")
	r = mustPM(t, "sign", "--repo", repoDir, "--key", keyB)
	if !strings.Contains(r.stdout, "head          signed by 1 of 2") {
		t.Fatalf("sign B: %s", r.stdout)
	}
	stillOld("manifest signed by both")
	r = mustPM(t, "sign", "--repo", repoDir, "--key", keyA)
	if !strings.Contains(r.stdout, "published stable 1.1.0") {
		t.Fatalf("sign A: %s", r.stdout)
	}
	if r := n.Update(t); r.code != 0 || !strings.Contains(r.stdout, "applied") {
		t.Fatalf("update after co-signing: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	n.WaitVersion(t, "1.1.0", 30*time.Second)
	sameTree(t, src, filepath.Join(n.Install, "current"))
	if r := pm(t, "sign", "--repo", repoDir, "--key", keyA); r.code != 3 || !strings.Contains(r.stderr, "no pending release") {
		t.Fatalf("sign with nothing pending: exit %d: %s", r.code, r.stderr)
	}
}

// TestUpdateNamesARefusedHead: the repository lost its root.json, so publish could
// not check the key, and a foreign key signed 1.1.0. The node refuses the head;
// its peer still hands out the head of 1.0.0. update exits 3 naming the refusal
// instead of "up-to-date".
func TestUpdateNamesARefusedHead(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 1)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	siteKey := filepath.Join(pub.Dir, "site.key")
	mustPM(t, "keygen", "--site", "--out", siteKey)
	a := newNode(t, nodeOpts{Name: "a", Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: siteKey})
	b := newNode(t, nodeOpts{Name: "b", Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: siteKey, Join: []string{a.Gossip}})
	a.WaitVersion(t, "1.0.0", 60*time.Second)
	b.WaitVersion(t, "1.0.0", 60*time.Second)
	waitFor(t, 30*time.Second, func() bool { return len(a.Status(t).Peers) >= 2 }, "a to see b")

	if err := os.Remove(filepath.Join(pub.Repo, repo.RootFile)); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(pub.Dir, "foreign.key")
	mustPM(t, "keygen", "--out", foreign)
	editTree(t, src, 2)
	mustPM(t, "publish", "--repo", pub.Repo, "--key", foreign, "--version", "1.1.0", src)

	r := a.Update(t)
	if r.code != 3 || !strings.Contains(r.stdout, "refused") || !strings.Contains(r.stdout, "not in the trust root") {
		t.Fatalf("update with every source's head refused: exit %d (want 3)\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if v := a.Current(); v != "1.0.0" {
		t.Fatalf("node runs %q, want 1.0.0", v)
	}
}

// TestVerifyFlagsAnotherRoot: the repository's root.json is not the root nodes
// pin (--trust): verify names it and exits 3.
func TestVerifyFlagsAnotherRoot(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 1)
	pub.Publish("1.0.0", src)
	mustPM(t, "verify", "--repo", pub.Repo, "--trust", pub.Trust)

	other := filepath.Join(pub.Dir, "other.key")
	mustPM(t, "keygen", "--out", other)
	mustPM(t, "trust", "init", "--key", other, "--repo", pub.Repo)
	r := pm(t, "verify", "--repo", pub.Repo, "--trust", pub.Trust)
	if r.code != 3 || !strings.Contains(r.stdout, "PROBLEM root.json") || !strings.Contains(r.stdout, "different root") {
		t.Fatalf("verify with another root.json: exit %d (want 3)\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// TestVerifyChecksOlderReleases: a flipped byte in an older kept manifest, or in a
// chunk only the older release uses, is found; a stray chunk file is listed.
func TestVerifyChecksOlderReleases(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 2, 1)
	pub.Publish("1.0.0", src)
	editTree(t, src, 4)
	pub.Publish("1.1.0", src)
	mustPM(t, "verify", "--repo", pub.Repo, "--trust", pub.Trust)

	chunksOf := func(seq uint64) map[string]bool {
		data, err := os.ReadFile(filepath.Join(pub.Repo, repo.ManifestPath("stable", seq)))
		if err != nil {
			t.Fatal(err)
		}
		env, err := manifest.DecodeEnvelope(data)
		if err != nil {
			t.Fatal(err)
		}
		var m manifest.Manifest
		if err := json.Unmarshal(env.Payload, &m); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				out[repo.ChunkPath(c.CID)] = true
			}
		}
		return out
	}
	newer := chunksOf(2)
	oldOnly := ""
	for p := range chunksOf(1) {
		if !newer[p] {
			oldOnly = p
			break
		}
	}
	if oldOnly == "" {
		t.Fatal("no chunk only 1.0.0 uses")
	}
	flip := func(rel string) (restore func()) {
		p := filepath.Join(pub.Repo, filepath.FromSlash(rel))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bad := append([]byte(nil), data...)
		bad[len(bad)/2] ^= 1
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct{ file, want string }{
		{repo.ManifestPath("stable", 1), "PROBLEM manifest manifests/stable/1.json"},
		{oldOnly, "of stable 1.0.0"},
	} {
		restore := flip(tc.file)
		r := pm(t, "verify", "--repo", pub.Repo, "--trust", pub.Trust)
		restore()
		if r.code != 3 || !strings.Contains(r.stdout, tc.want) {
			t.Fatalf("verify with a flipped byte in %s: exit %d (want 3), want %q\nstdout: %s\nstderr: %s", tc.file, r.code, tc.want, r.stdout, r.stderr)
		}
	}

	stray := filepath.Join(pub.Repo, "chunks", "zz", "bafkreistray")
	if err := os.MkdirAll(filepath.Dir(stray), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("left over"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustPM(t, "verify", "--repo", pub.Repo, "--trust", pub.Trust)
	if !strings.Contains(r.stdout, "ORPHAN chunks/zz/bafkreistray") || !strings.Contains(r.stdout, "1 orphaned chunk file") {
		t.Fatalf("verify does not list the orphan:\n%s", r.stdout)
	}
}

// TestCrashDuringHealthCheckIsRetried: the node is killed (SIGKILL) while the new
// release's health check runs. After the restart it rolls back, tries the
// release once more, and applies it: a crash is not the release's fault.
func TestCrashDuringHealthCheckIsRetried(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 1)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	n := newNode(t, nodeOpts{Name: "n1", Trust: pub.Trust, Sources: []string{seed.URL}})
	n.WaitVersion(t, "1.0.0", 60*time.Second)

	marks := t.TempDir()
	checking, crashed, pidFile := filepath.Join(marks, "checking"), filepath.Join(marks, "crashed"), filepath.Join(marks, "pid")
	script := "#!/bin/sh\n" +
		"[ -e " + crashed + " ] && exit 0\n" +
		"echo $$ >" + pidFile + "\n" +
		"touch " + checking + "\n" +
		"exec sleep 300\n"
	if err := os.WriteFile(filepath.Join(src, "health.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	pub.Publish("2.0.0", src, "--health-check", "health.sh")
	pm(t, "update", "--api", n.API, "--no-wait")
	waitFor(t, 60*time.Second, func() bool { _, err := os.Stat(checking); return err == nil }, "the health check to start")
	n.Kill()
	// The hook outlives the node in its own process group; a service manager
	// would end it, the test does.
	if b, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := os.WriteFile(crashed, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	n.Restart()
	n.WaitVersion(t, "2.0.0", 60*time.Second)
	for _, rel := range n.Status(t).Releases {
		if rel.State == "bad" {
			t.Errorf("release %s marked bad after one crash: %s", rel.Version, rel.Reason)
		}
	}
	if !n.HasError(t, "tried again") {
		t.Errorf("status does not say the interrupted release is tried again: %+v", n.Status(t).Errors)
	}
}

// TestReleaseRetryClearsABadMark: a release whose health check failed is bad and
// skipped; once the cause is fixed, `release retry` clears the mark and the next
// update applies it.
func TestReleaseRetryClearsABadMark(t *testing.T) {
	pub := newPublisher(t)
	src := filepath.Join(pub.Dir, "build")
	makeTree(t, src, 1, 1)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	n := newNode(t, nodeOpts{Name: "n1", Trust: pub.Trust, Sources: []string{seed.URL}})
	n.WaitVersion(t, "1.0.0", 60*time.Second)

	fixed := filepath.Join(t.TempDir(), "database-up")
	script := "#!/bin/sh\n[ -e " + fixed + " ] || { echo database unreachable >&2; exit 1; }\n"
	if err := os.WriteFile(filepath.Join(src, "health.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	pub.Publish("2.0.0", src, "--health-check", "health.sh")
	if r := n.Update(t); r.code != 3 || !strings.Contains(r.stdout, "rolled-back") {
		t.Fatalf("update to a failing release: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := n.Update(t); r.code != 3 || !strings.Contains(r.stdout, "skipped-bad") {
		t.Fatalf("update of a bad release: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := pm(t, "release", "retry", "1.0.0", "--api", n.API); r.code != 3 || !strings.Contains(r.stderr, "marked bad") {
		t.Fatalf("retry of a good release: exit %d (want 3): %s %s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(fixed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustPM(t, "release", "retry", "2.0.0", "--api", n.API)
	if !strings.Contains(r.stdout, "cleared the bad mark of 2-2.0.0") {
		t.Fatalf("release retry: %s", r.stdout)
	}
	if r := n.Update(t); r.code != 0 || !strings.Contains(r.stdout, "applied") {
		t.Fatalf("update after retry: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	n.WaitVersion(t, "2.0.0", 30*time.Second)
}
