package repo

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
)

// releaseTree is a small release: binaries, text, an empty file, a duplicate
// file and symlinks to a file and to a directory inside the tree.
// The binaries are size KiB, the text a quarter of that.
func releaseTree(t *testing.T, size int) (string, map[string][]byte) {
	t.Helper()
	src := t.TempDir()
	agent := pseudoRandom(1, size<<10)
	files := map[string][]byte{
		"bin/agent":       agent,
		"bin/agent-copy":  agent,
		"lib/module.so":   pseudoRandom(2, (size/2)<<10),
		"etc/config.txt":  text(3, (size/4)<<10),
		"etc/empty":       {},
		"share/small.txt": []byte("hello\n"),
	}
	writeTree(t, src, files)
	if err := os.Chmod(filepath.Join(src, "bin/agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, "bin/agent", filepath.Join(src, "current"))
	symlink(t, "../lib", filepath.Join(src, "etc/libdir"))
	return src, files
}

func checkRelease(t *testing.T, repoDir string, root *manifest.TrustRoot, version string, want map[string][]byte) *manifest.Manifest {
	t.Helper()
	h, _, m, _, err := LoadRelease(context.Background(), DirReader(repoDir), root, "stable", testNow)
	if err != nil {
		t.Fatalf("load release: %v", err)
	}
	if h.Version != version || m.Version != version {
		t.Fatalf("head names %s, manifest %s; want %s", h.Version, m.Version, version)
	}
	got := assemble(t, repoDir, m)
	if len(got) != len(want) {
		t.Errorf("release has %d files, tree has %d", len(got), len(want))
	}
	for p, data := range want {
		if !bytes.Equal(got[p], data) {
			t.Errorf("file %s: assembled %d bytes differ from the tree's %d", p, len(got[p]), len(data))
		}
	}
	return m
}

func TestPublishTwoVersionsWritesOnlyChangedChunks(t *testing.T) {
	key := newKey(t)
	root := newRoot(t, 1, key)
	repoDir := t.TempDir()
	src, files := releaseTree(t, 512)

	s1 := mustPublish(t, repoDir, src, publishOpts("1.0.0", key))
	var total int64
	for _, d := range files {
		total += int64(len(d))
	}
	agentLen := int64(len(files["bin/agent"]))
	if s1.Files != len(files) || s1.Links != 2 || s1.Bytes != total || s1.Sequence != 1 {
		t.Errorf("v1 summary: %d files, %d links, %d bytes, sequence %d; want %d, 2, %d, 1", s1.Files, s1.Links, s1.Bytes, s1.Sequence, len(files), total)
	}
	if s1.ReusedBytes != 0 || s1.DuplicateBytes != agentLen || s1.NewBytes != total-agentLen {
		t.Errorf("v1 summary: new %d, reused %d, duplicate %d; want new %d, reused 0, duplicate %d (the copied binary)",
			s1.NewBytes, s1.ReusedBytes, s1.DuplicateBytes, total-agentLen, agentLen)
	}
	m1 := checkRelease(t, repoDir, root, "1.0.0", files)
	m1Bytes := readFile(t, filepath.Join(repoDir, ManifestPath("stable", 1)))
	for _, f := range m1.Files {
		switch f.Path {
		case "current":
			if f.Link != "bin/agent" {
				t.Errorf("symlink current -> %q, want bin/agent", f.Link)
			}
		case "etc/libdir":
			if f.Link != "../lib" {
				t.Errorf("symlink etc/libdir -> %q, want ../lib", f.Link)
			}
		case "bin/agent":
			if f.Mode != 0o755 {
				t.Errorf("bin/agent mode %#o, want 0755", f.Mode)
			}
		}
	}

	// v2: a scattered 1% edit of one binary, with insertions that shift later bytes.
	files["bin/agent"] = scatterEdit(files["bin/agent"], 5, 16, 0.01)
	writeTree(t, src, map[string][]byte{"bin/agent": files["bin/agent"]})
	chunksBefore := countChunkFiles(t, repoDir)

	s2 := mustPublish(t, repoDir, src, publishOpts("1.1.0", key))
	if s2.Sequence != 2 || s2.PreviousVersion != "1.0.0" || s2.PreviousSeq != 1 {
		t.Errorf("v2 summary: sequence %d, previous %s/%d; want 2, 1.0.0/1", s2.Sequence, s2.PreviousVersion, s2.PreviousSeq)
	}
	if s2.NewBytes+s2.ReusedBytes+s2.DuplicateBytes != s2.Bytes {
		t.Errorf("v2 summary: new %d + reused %d + duplicate %d != %d bytes", s2.NewBytes, s2.ReusedBytes, s2.DuplicateBytes, s2.Bytes)
	}
	if s2.NewBytes == 0 || s2.NewBytes > s2.Bytes/20 {
		t.Errorf("v2 wrote %d new bytes of %d: want some, and at most 5%% for a 1%% edit of one file", s2.NewBytes, s2.Bytes)
	}
	if s2.ReusedBytes < (s2.Bytes-s2.DuplicateBytes)*9/10 {
		t.Errorf("v2 reused %d bytes of %d: want most of the release", s2.ReusedBytes, s2.Bytes)
	}
	if got := countChunkFiles(t, repoDir); got != chunksBefore+s2.NewChunks+s2.Deltas {
		t.Errorf("repository holds %d chunk files after v2, want %d + %d new chunks + %d deltas", got, chunksBefore, s2.NewChunks, s2.Deltas)
	}
	// The edit is 1% of one file, made of random bytes: its delta against
	// v1 costs about the edited bytes, far less than the new chunks.
	if s2.Deltas == 0 || s2.DeltaOutput != s2.NewBytes || s2.DeltaBytes > s2.NewBytes/4 {
		t.Errorf("v2 deltas: %d objects of %d bytes making %d bytes; want some, making the %d new bytes, at most a quarter of them",
			s2.Deltas, s2.DeltaBytes, s2.DeltaOutput, s2.NewBytes)
	}
	checkRelease(t, repoDir, root, "1.1.0", files)

	// The old release stays intact: manifest 1 untouched, all its chunks present.
	if !bytes.Equal(readFile(t, filepath.Join(repoDir, ManifestPath("stable", 1))), m1Bytes) {
		t.Error("manifest 1 was rewritten by the second publish")
	}
	assemble(t, repoDir, m1)

	rep, err := Verify(context.Background(), repoDir, root, VerifyOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || len(rep.Channels) != 1 || !rep.Channels[0].OK || rep.Channels[0].Version != "1.1.0" {
		t.Fatalf("verify: %+v", rep)
	}
	if rep.Chunks != s2.UniqueChunks+s2.Deltas {
		t.Errorf("verify checked %d chunks, release has %d unique and %d deltas", rep.Chunks, s2.UniqueChunks, s2.Deltas)
	}
}

func countChunkFiles(t *testing.T, repoDir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(repoDir, chunksDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if strings.HasPrefix(d.Name(), ".") {
				t.Errorf("publish left a temporary file %s", p)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPublishRefuses(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name    string
		tree    func(t *testing.T, src string) // changes to the good tree
		opts    func(o *PublishOptions)
		want    error  // errors.Is
		message string // part of the message the user reads
	}{
		{name: "same version", opts: func(o *PublishOptions) { o.Version = "1.0.0" }, want: ErrNotNewer, message: "head is 1.0.0"},
		{name: "lower version", opts: func(o *PublishOptions) { o.Version = "0.9.0" }, want: ErrNotNewer, message: "publish a higher version"},
		{name: "same sequence", opts: func(o *PublishOptions) { o.Sequence = 1 }, want: ErrNotNewer, message: "use a higher --sequence"},
		{name: "same label that is not semver", opts: func(o *PublishOptions) { o.Version = "nightly" }, want: nil, message: ""},
		{
			name: "empty tree", want: ErrEmptyTree, message: "holds no file",
			tree: func(t *testing.T, src string) {
				os.RemoveAll(src)
				os.MkdirAll(filepath.Join(src, "only/dirs"), 0o755)
			},
		},
		{
			name: "tree of symlinks only", want: ErrEmptyTree, message: "holds no file",
			tree: func(t *testing.T, src string) {
				os.RemoveAll(src)
				os.MkdirAll(filepath.Join(src, "d"), 0o755)
				symlink(t, "d", filepath.Join(src, "a"))
			},
		},
		{name: "missing tree", tree: func(t *testing.T, src string) { os.RemoveAll(src) }, want: ErrBadTree, message: "no such file"},
		{
			// Tests run as root, for whom chmod 000 does not make a file unreadable;
			// a FIFO cannot be read as a file by anyone (opening it would block).
			name: "fifo", want: ErrBadTree, message: "named pipe",
			tree: func(t *testing.T, src string) {
				mkfifo(t, filepath.Join(src, "etc/pipe"))
			},
		},
		{
			name: "socket", want: ErrBadTree, message: "socket",
			tree: func(t *testing.T, src string) {
				l, err := net.Listen("unix", filepath.Join(src, "run.sock"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
			},
		},
		{
			name: "symlink target not UTF-8", want: ErrBadTree, message: "not valid UTF-8",
			tree: func(t *testing.T, src string) { symlink(t, "\xff", filepath.Join(src, "etc/bad")) },
		},
		{
			name: "backslash in a name", want: ErrBadTree, message: "unsafe path",
			tree: func(t *testing.T, src string) { writeTree(t, src, map[string][]byte{`etc/a\b`: []byte("x")}) },
		},
		{
			name: "name that is not UTF-8", want: ErrBadTree, message: "unsafe path",
			tree: func(t *testing.T, src string) { writeTree(t, src, map[string][]byte{"etc/\xff\xfe": []byte("x")}) },
		},
		{name: "hook that is not a file of the release", opts: func(o *PublishOptions) { o.Hooks.HealthCheck = "bin/missing" }, message: "not a file of the release"},
		{name: "hook that is a symlink", opts: func(o *PublishOptions) { o.Hooks.PreActivate = "current" }, message: "not a file of the release"},
		{name: "bad channel", opts: func(o *PublishOptions) { o.Channel = "../stable" }, message: "channel"},
		{name: "bad version", opts: func(o *PublishOptions) { o.Version = "1.0 beta" }, message: "version"},
		{name: "no key", opts: func(o *PublishOptions) { o.Keys = nil }, message: "no signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repoDir := t.TempDir()
			src, _ := releaseTree(t, 16)
			mustPublish(t, repoDir, src, publishOpts("1.0.0", key))
			head := readFile(t, filepath.Join(repoDir, HeadPath("stable")))
			if tt.tree != nil {
				tt.tree(t, src)
			}
			opts := publishOpts("2.0.0", key)
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, err := Publish(context.Background(), repoDir, src, opts)
			if tt.want == nil && tt.message == "" {
				if err != nil {
					t.Fatalf("publish: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("publish succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %q does not wrap %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not say %q", err, tt.message)
			}
			if !bytes.Equal(readFile(t, filepath.Join(repoDir, HeadPath("stable"))), head) {
				t.Error("a refused publish changed the channel head")
			}
			if _, err := os.Stat(filepath.Join(repoDir, ManifestPath("stable", 2))); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused publish wrote a manifest (%v)", err)
			}
		})
	}
}

func TestPublishSequences(t *testing.T) {
	key := newKey(t)
	root := newRoot(t, 1, key)
	repoDir := t.TempDir()
	src, _ := releaseTree(t, 16)
	opts := publishOpts("1.0.0", key)
	opts.Sequence = 10
	if s := mustPublish(t, repoDir, src, opts); s.Sequence != 10 {
		t.Fatalf("explicit sequence 10 published as %d", s.Sequence)
	}
	// Version labels that are not semver have no order: the sequence decides.
	if s := mustPublish(t, repoDir, src, publishOpts("nightly-b", key)); s.Sequence != 11 {
		t.Fatalf("next publish got sequence %d, want 11", s.Sequence)
	}
	opts = publishOpts("nightly-a", key)
	opts.Sequence = 5
	if _, err := Publish(context.Background(), repoDir, src, opts); !errors.Is(err, ErrNotNewer) {
		t.Fatalf("sequence 5 after 11: %v, want ErrNotNewer", err)
	}
	h, _, _, _, err := LoadRelease(context.Background(), DirReader(repoDir), root, "stable", testNow)
	if err != nil || h.Sequence != 11 || h.Version != "nightly-b" {
		t.Fatalf("head after refusals: %+v, %v", h, err)
	}
}

func TestPublishLockRefusesConcurrentPublish(t *testing.T) {
	key := newKey(t)
	repoDir := t.TempDir()
	src, _ := releaseTree(t, 16)
	unlock, err := lockRepo(repoDir) // another publisher, holding the lock
	if err != nil {
		t.Fatal(err)
	}
	_, err = Publish(context.Background(), repoDir, src, publishOpts("1.0.0", key))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another publish is running") {
		t.Fatalf("publish while locked: %v, want ErrLocked", err)
	}
	if _, err := os.Stat(filepath.Join(repoDir, HeadPath("stable"))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a publish refused by the lock wrote a head")
	}
	unlock()
	mustPublish(t, repoDir, src, publishOpts("1.0.0", key))
}

func TestPublishCrashBeforeHeadKeepsOldRelease(t *testing.T) {
	key := newKey(t)
	root := newRoot(t, 1, key)
	repoDir := t.TempDir()
	src, files := releaseTree(t, 16)
	mustPublish(t, repoDir, src, publishOpts("1.0.0", key))
	headPath := filepath.Join(repoDir, HeadPath("stable"))
	oldHead := readFile(t, headPath)

	// A crash between manifest and head: chunks and manifest 2 on disk, head still 1.
	edited := map[string][]byte{"etc/config.txt": text(9, 4<<10)}
	writeTree(t, src, edited)
	mustPublish(t, repoDir, src, publishOpts("1.1.0", key))
	orphan := readFile(t, filepath.Join(repoDir, ManifestPath("stable", 2)))
	if err := WriteFileAtomic(headPath, oldHead, 0o644); err != nil {
		t.Fatal(err)
	}

	checkRelease(t, repoDir, root, "1.0.0", files)
	rep, err := Verify(context.Background(), repoDir, root, VerifyOptions{Now: testNow})
	if err != nil || len(rep.Problems) != 0 || rep.Channels[0].Version != "1.0.0" {
		t.Fatalf("verify after the crash: %+v, %v", rep, err)
	}

	// The publisher retries; the orphan manifest is never rewritten, since a
	// cache may hold it as immutable, so the retry takes the next sequence.
	s, err := Publish(context.Background(), repoDir, src, publishOpts("1.1.0", key))
	if err != nil {
		t.Fatalf("publish after the crash: %v", err)
	}
	if s.Sequence != 3 || s.NewChunks != 0 {
		t.Errorf("retry: sequence %d, %d new chunks; want 3 and none (the crashed publish wrote them)", s.Sequence, s.NewChunks)
	}
	if !bytes.Equal(readFile(t, filepath.Join(repoDir, ManifestPath("stable", 2))), orphan) {
		t.Error("the retry rewrote the orphan manifest 2")
	}
	files["etc/config.txt"] = edited["etc/config.txt"]
	checkRelease(t, repoDir, root, "1.1.0", files)

	// An explicit sequence naming the orphan is refused the same way.
	opts := publishOpts("1.2.0", key)
	opts.Sequence = 2
	if _, err := Publish(context.Background(), repoDir, src, opts); !errors.Is(err, ErrNotNewer) {
		t.Errorf("explicit sequence 2: %v, want ErrNotNewer", err)
	}
}

func TestPublishProgressAndCancel(t *testing.T) {
	key := newKey(t)
	src, files := releaseTree(t, 16)
	var total int64
	for _, d := range files {
		total += int64(len(d))
	}
	var last Progress
	calls := 0
	opts := publishOpts("1.0.0", key)
	opts.Progress = func(p Progress) { last = p; calls++ }
	mustPublish(t, t.TempDir(), src, opts)
	if calls == 0 || last.Bytes != total || last.BytesTotal != total {
		t.Errorf("progress: %d calls, last %+v; want bytes %d of %d", calls, last, total, total)
	}

	ctx, cancel := context.WithCancel(context.Background())
	repoDir := t.TempDir()
	opts.Progress = func(Progress) { cancel() }
	if _, err := Publish(ctx, repoDir, src, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled publish: %v", err)
	}
	if _, err := os.Stat(filepath.Join(repoDir, HeadPath("stable"))); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a cancelled publish wrote a head")
	}
}

func TestPublishFileChangingWhileRead(t *testing.T) {
	// A file that grows between the scan and the read is refused, not published
	// with a size that does not match its chunks.
	key := newKey(t)
	src, _ := releaseTree(t, 16)
	opts := publishOpts("1.0.0", key)
	grown := false
	opts.Progress = func(p Progress) {
		if !grown {
			grown = true
			f, err := os.OpenFile(filepath.Join(src, "share/small.txt"), os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				f.Write(bytes.Repeat([]byte("x"), 100))
				f.Close()
			}
		}
	}
	_, err := Publish(context.Background(), t.TempDir(), src, opts)
	if err == nil || !strings.Contains(err.Error(), "changed while it was read") {
		t.Fatalf("publish of a growing file: %v", err)
	}
}

func TestPublishRewritesATruncatedChunk(t *testing.T) {
	// A chunk file cut short (a disk filled up, a copy interrupted) is written
	// again by the next publish instead of being counted as present.
	key := newKey(t)
	root := newRoot(t, 1, key)
	repoDir := t.TempDir()
	src, files := releaseTree(t, 16)
	mustPublish(t, repoDir, src, publishOpts("1.0.0", key))
	_, _, m, _, err := LoadRelease(context.Background(), DirReader(repoDir), root, "stable", testNow)
	if err != nil {
		t.Fatal(err)
	}
	ref := m.Files[0].Chunks[0]
	if err := os.Truncate(filepath.Join(repoDir, ChunkPath(ref.CID)), int64(ref.Size/2)); err != nil {
		t.Fatal(err)
	}
	s := mustPublish(t, repoDir, src, publishOpts("1.0.1", key))
	if s.NewChunks != 1 || s.NewBytes != int64(ref.Size) {
		t.Errorf("republish wrote %d chunks (%d bytes), want the truncated one (%d bytes)", s.NewChunks, s.NewBytes, ref.Size)
	}
	checkRelease(t, repoDir, root, "1.0.1", files)
}

// TestPublishAnyTree publishes what package managers ship: symlinks to anywhere,
// empty and restricted directories, setuid and setgid files, hard links.
func TestPublishAnyTree(t *testing.T) {
	key := newKey(t)
	root := newRoot(t, 1, key)
	repoDir := t.TempDir()
	src, files := releaseTree(t, 16)
	for _, d := range []string{"var/spool/empty", "var/lib/private", "run"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	chmod := func(name string, mode fs.FileMode) {
		t.Helper()
		if err := os.Chmod(filepath.Join(src, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	chmod("var/lib/private", 0o750)
	chmod("run", 0o755|fs.ModeSticky)
	chmod("bin/agent", 0o755|fs.ModeSetuid)
	chmod("lib/module.so", 0o644|fs.ModeSetgid)
	symlink(t, "/var/spool/agent", filepath.Join(src, "etc/spool"))
	symlink(t, "../../outside", filepath.Join(src, "etc/up"))
	symlink(t, "nowhere", filepath.Join(src, "bin/gone"))
	symlink(t, "b", filepath.Join(src, "loop-a"))
	symlink(t, "loop-a", filepath.Join(src, "b"))
	if err := os.Link(filepath.Join(src, "etc/config.txt"), filepath.Join(src, "share/config.txt")); err != nil {
		t.Fatal(err)
	}

	s := mustPublish(t, repoDir, src, publishOpts("1.0.0", key))
	if s.Links != 7 || s.Hardlinks != 1 || s.Dirs != 3 || s.Files != len(files) {
		t.Errorf("summary: %d files, %d links, %d hard links, %d dirs; want %d, 7, 1, 3", s.Files, s.Links, s.Hardlinks, s.Dirs, len(files))
	}
	m := checkRelease(t, repoDir, root, "1.0.0", files)
	want := map[string]manifest.File{
		"etc/spool":        {Path: "etc/spool", Mode: 0o777, Link: "/var/spool/agent"},
		"etc/up":           {Path: "etc/up", Mode: 0o777, Link: "../../outside"},
		"bin/gone":         {Path: "bin/gone", Mode: 0o777, Link: "nowhere"},
		"loop-a":           {Path: "loop-a", Mode: 0o777, Link: "b"},
		"var/spool/empty":  {Path: "var/spool/empty", Type: manifest.TypeDir, Mode: 0o755},
		"var/lib/private":  {Path: "var/lib/private", Type: manifest.TypeDir, Mode: 0o750},
		"run":              {Path: "run", Type: manifest.TypeDir, Mode: 0o1755},
		"share/config.txt": {Path: "share/config.txt", Type: manifest.TypeHardlink, Mode: 0o644, Link: "etc/config.txt"},
	}
	for _, f := range m.Files {
		switch f.Path {
		case "bin/agent":
			if f.Mode != 0o4755 {
				t.Errorf("bin/agent mode %#o, want 0o4755 (setuid)", f.Mode)
			}
		case "lib/module.so":
			if f.Mode != 0o2644 {
				t.Errorf("lib/module.so mode %#o, want 0o2644 (setgid)", f.Mode)
			}
		case "bin", "var", "var/spool", "var/lib", "etc":
			t.Errorf("directory %s listed though it is neither empty nor other than 0755", f.Path)
		}
		if w, ok := want[f.Path]; ok {
			f.Chunks = nil
			if f.Path != w.Path || f.Type != w.Type || f.Mode != w.Mode || f.Link != w.Link || f.Size != 0 || f.SHA256 != "" {
				t.Errorf("entry %+v, want %+v", f, w)
			}
			delete(want, f.Path)
		}
	}
	if len(want) > 0 {
		t.Errorf("entries missing from the manifest: %v", want)
	}
	for i := 1; i < len(m.Files); i++ {
		if m.Files[i-1].Path >= m.Files[i].Path {
			t.Errorf("entries not sorted by path: %q before %q", m.Files[i-1].Path, m.Files[i].Path)
		}
	}
}

// TestPublishFileOver4GiB publishes a sparse file past 4 GiB: only chunk sizes are
// 32-bit; a file's size, offsets and counts are int64 all the way. It reads and
// hashes 4 GiB (half a minute), so it runs only with PATCHMESH_BIG_TESTS=1;
// manifest.TestFileOver4GiB checks the manifest's side of the arithmetic always.
func TestPublishFileOver4GiB(t *testing.T) {
	if os.Getenv("PATCHMESH_BIG_TESTS") == "" {
		t.Skip("reads 4 GiB; set PATCHMESH_BIG_TESTS=1 to run")
	}
	key := newKey(t)
	root := newRoot(t, 1, key)
	repoDir, src := t.TempDir(), t.TempDir()
	const size = 4<<30 + 5
	f, err := os.Create(filepath.Join(src, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail!"), size-5); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Zeros cut at the minimum chunk size; at the default 4 KiB a 4 GiB file of
	// them needs a manifest over the 64 MiB cap, so this one uses large chunks.
	opts := publishOpts("1.0.0", key)
	opts.Params = chunk.Params{Min: 256 << 10, Avg: 512 << 10, Max: 1 << 20}
	s := mustPublish(t, repoDir, src, opts)
	if s.Bytes != size {
		t.Errorf("summary: %d bytes, want %d", s.Bytes, size)
	}
	_, _, m, _, err := LoadRelease(context.Background(), DirReader(repoDir), root, "stable", testNow)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, c := range m.Files[0].Chunks {
		sum += int64(c.Size)
	}
	if m.Files[0].Size != size || sum != size || m.TotalSize() != size {
		t.Errorf("manifest: size %d, chunks sum to %d, total %d; want %d", m.Files[0].Size, sum, m.TotalSize(), size)
	}
}
