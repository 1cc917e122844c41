package manifest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/patchmesh/patchmesh/manifest"
)

func TestSafePath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"a", true},
		{"bin/agent", true},
		{"a/b/c.d", true},
		{"..a/b..", true},
		{"a b/ü.txt", true},
		{"../x", false},
		{"/etc/passwd", false},
		{"a/../../b", false},
		{"a/..", false},
		{"..", false},
		{".", false},
		{"a//b", false},
		{"./a", false},
		{"a/./b", false},
		{"a/", false},
		{"a\x00b", false},
		{"", false},
		{`a\..\b`, false},
		{"\xff", false},
		{strings.Repeat("a", 256), false},
		{strings.Repeat("a/", 2100) + "a", false},
	}
	for _, tt := range tests {
		err := manifest.SafePath(tt.path)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, manifest.ErrPath)) {
			t.Errorf("SafePath(%.40q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}

func TestValidate(t *testing.T) {
	link := func(path, target string) manifest.File { return manifest.File{Path: path, Mode: 0o777, Link: target} }
	dir := func(path string, mode uint32) manifest.File {
		return manifest.File{Path: path, Type: manifest.TypeDir, Mode: mode}
	}
	hardlink := func(path, file string, mode uint32) manifest.File {
		return manifest.File{Path: path, Type: manifest.TypeHardlink, Mode: mode, Link: file}
	}
	withFiles := func(files ...manifest.File) func(*manifest.Manifest) {
		return func(m *manifest.Manifest) { m.Files = append(m.Files, files...) }
	}
	cidOf := func(codec uint64, hash uint64) cid.Cid {
		h, err := multihash.Sum([]byte("x"), hash, -1)
		if err != nil {
			t.Fatal(err)
		}
		return cid.NewCidV1(codec, h)
	}
	withChunk := func(c cid.Cid, size uint32) func(*manifest.Manifest) {
		return func(m *manifest.Manifest) {
			f := &m.Files[1]
			f.Chunks = []manifest.ChunkRef{{CID: c, Size: size}}
			f.Size = int64(size)
		}
	}
	v0, err := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*manifest.Manifest)
		want error // nil: valid
	}{
		{"sample", func(*manifest.Manifest) {}, nil},
		{"no files", func(m *manifest.Manifest) { m.Files, m.Hooks = nil, manifest.Hooks{} }, nil},
		{"paths differing in case", withFiles(fileOf("Bin/agent", 0o644, "x")), nil},
		{"symlink to a directory", withFiles(link("etc/bin", "../bin")), nil},
		{"symlink to the root", withFiles(link("top", ".")), nil},
		{"symlink to a missing file inside", withFiles(link("etc/local", "local.d/x.conf")), nil},
		{"symlink through symlink, inside", withFiles(link("d/up", ".."), link("via", "d/up/bin/agent")), nil},
		// Any target a package ships: it is stored, never resolved.
		{"symlink escaping", withFiles(link("x", "../etc/passwd")), nil},
		{"symlink escaping from below", withFiles(link("a/b/x", "../../../x")), nil},
		{"symlink absolute", withFiles(link("x", "/var/spool/cron")), nil},
		{"symlink escaping through a symlink", withFiles(link("d/l", ".."), link("x", "d/l/..")), nil},
		{"symlink loop", withFiles(link("a", "b"), link("b", "a")), nil},
		{"symlink dangling", withFiles(link("x", "no/such/file")), nil},
		{"symlink with backslash", withFiles(link("x", `a\b`)), nil},
		{"symlink target of 4096 bytes", withFiles(link("x", strings.Repeat("a/", 2048))), nil},
		{"empty directory", withFiles(dir("var/empty", 0o755)), nil},
		{"directory with mode and contents", withFiles(dir("bin", 0o750), dir("var", 0o1777), dir("var/lib", 0o2755)), nil},
		{"setuid file", func(m *manifest.Manifest) { m.Files[0].Mode = 0o4755 }, nil},
		{"hard link", withFiles(hardlink("bin/agent2", "bin/agent", 0o755)), nil},
		{"hook is a hard link", func(m *manifest.Manifest) {
			m.Files = append(m.Files, hardlink("hooks/pre.sh", "bin/agent", 0o755))
			m.Hooks.PreActivate = "hooks/pre.sh"
		}, nil},

		{"dot-dot path", withFiles(fileOf("../x", 0o644, "x")), manifest.ErrPath},
		{"absolute path", withFiles(fileOf("/etc/passwd", 0o644, "x")), manifest.ErrPath},
		{"climbing path", withFiles(fileOf("a/../../b", 0o644, "x")), manifest.ErrPath},
		{"empty element", withFiles(fileOf("a//b", 0o644, "x")), manifest.ErrPath},
		{"dot element", withFiles(fileOf("./a", 0o644, "x")), manifest.ErrPath},
		{"NUL in path", withFiles(fileOf("a\x00b", 0o644, "x")), manifest.ErrPath},
		{"empty path", withFiles(fileOf("", 0o644, "x")), manifest.ErrPath},
		{"duplicate path", withFiles(fileOf("bin/agent", 0o644, "x")), manifest.ErrPath},
		{"file inside a file", withFiles(fileOf("bin/agent/x", 0o644, "x")), manifest.ErrPath},
		{"file inside a symlink", withFiles(fileOf("bin/current/x", 0o644, "x")), manifest.ErrPath},
		{"file inside a symlink to a directory", withFiles(link("lib", "/usr/lib"), fileOf("lib/x.so", 0o644, "x")), manifest.ErrPath},
		{"directory inside a symlink", withFiles(link("lib", "/usr/lib"), dir("lib/sub", 0o755)), manifest.ErrPath},
		{"symlink inside a symlink", withFiles(link("lib", "/usr/lib"), link("lib/l", "x")), manifest.ErrPath},
		{"file inside a hard link", withFiles(hardlink("h", "bin/agent", 0o755), fileOf("h/x", 0o644, "x")), manifest.ErrPath},
		{"directory listed as a file too", withFiles(dir("bin/agent", 0o755)), manifest.ErrPath},
		{"symlink with NUL", withFiles(link("x", "a\x00")), manifest.ErrPath},
		{"symlink with size", withFiles(manifest.File{Path: "x", Link: "bin/agent", Size: 3}), manifest.ErrMalformed},
		{"symlink with chunks", withFiles(manifest.File{Path: "x", Link: "bin/agent", Chunks: []manifest.ChunkRef{chunkOf("x")}}), manifest.ErrMalformed},
		{"symlink target not UTF-8", withFiles(link("x", "\xff")), manifest.ErrPath},
		{"symlink target too long", withFiles(link("x", strings.Repeat("a", 4097))), manifest.ErrPath},
		{"directory with size", withFiles(manifest.File{Path: "d", Type: manifest.TypeDir, Mode: 0o755, Size: 1}), manifest.ErrMalformed},
		{"directory with chunks", withFiles(manifest.File{Path: "d", Type: manifest.TypeDir, Mode: 0o755, Chunks: []manifest.ChunkRef{chunkOf("x")}}), manifest.ErrMalformed},
		{"directory with digest", withFiles(manifest.File{Path: "d", Type: manifest.TypeDir, Mode: 0o755, SHA256: fileOf("x", 0, "x").SHA256}), manifest.ErrMalformed},
		{"directory with link", withFiles(manifest.File{Path: "d", Type: manifest.TypeDir, Mode: 0o755, Link: "x"}), manifest.ErrMalformed},
		{"directory mode beyond permissions", withFiles(dir("d", 0o40755)), manifest.ErrMalformed},
		{"unknown type", withFiles(manifest.File{Path: "d", Type: "fifo", Mode: 0o644}), manifest.ErrMalformed},
		{"type symlink", withFiles(manifest.File{Path: "d", Type: "symlink", Mode: 0o777, Link: "x"}), manifest.ErrMalformed},
		{"hard link to nothing", withFiles(hardlink("h", "bin/nothing", 0o755)), manifest.ErrPath},
		{"hard link to a symlink", withFiles(hardlink("h", "bin/current", 0o777)), manifest.ErrPath},
		{"hard link to a hard link", withFiles(hardlink("h", "bin/agent", 0o755), hardlink("h2", "h", 0o755)), manifest.ErrPath},
		{"hard link to a directory", withFiles(dir("d", 0o755), hardlink("h", "d", 0o755)), manifest.ErrPath},
		{"hard link to itself", withFiles(hardlink("h", "h", 0o755)), manifest.ErrPath},
		{"hard link escaping", withFiles(hardlink("h", "../etc/shadow", 0o755)), manifest.ErrPath},
		{"hard link with another mode", withFiles(hardlink("h", "bin/agent", 0o644)), manifest.ErrMalformed},
		{"hard link with chunks", withFiles(manifest.File{Path: "h", Type: manifest.TypeHardlink, Mode: 0o755, Link: "bin/agent", Size: 1, Chunks: []manifest.ChunkRef{chunkOf("x")}}), manifest.ErrMalformed},

		{"mode beyond permissions", func(m *manifest.Manifest) { m.Files[0].Mode = 0o100755 }, manifest.ErrMalformed},
		{"size not the sum of chunks", func(m *manifest.Manifest) { m.Files[0].Size++ }, manifest.ErrMalformed},
		{"negative size", func(m *manifest.Manifest) { m.Files[2].Size = -1 }, manifest.ErrMalformed},
		{"uppercase digest", func(m *manifest.Manifest) { m.Files[0].SHA256 = strings.ToUpper(m.Files[0].SHA256) }, manifest.ErrMalformed},
		{"short digest", func(m *manifest.Manifest) { m.Files[0].SHA256 = "abcd" }, manifest.ErrMalformed},
		{"dag-pb CID", withChunk(cidOf(cid.DagProtobuf, multihash.SHA2_256), 1), manifest.ErrMalformed},
		{"sha2-512 CID", withChunk(cidOf(cid.Raw, multihash.SHA2_512), 1), manifest.ErrMalformed},
		{"identity hash CID", withChunk(cidOf(cid.Raw, multihash.IDENTITY), 1), manifest.ErrMalformed},
		{"CIDv0", withChunk(v0, 1), manifest.ErrMalformed},
		{"undefined CID", withChunk(cid.Undef, 1), manifest.ErrMalformed},
		{"chunk over 1 MiB", withChunk(cidOf(cid.Raw, multihash.SHA2_256), manifest.MaxChunkSize+1), manifest.ErrMalformed},
		{"chunk of exactly 1 MiB", withChunk(cidOf(cid.Raw, multihash.SHA2_256), manifest.MaxChunkSize), nil},
		{"empty chunk", withChunk(cidOf(cid.Raw, multihash.SHA2_256), 0), manifest.ErrMalformed},

		{"sequence 0", func(m *manifest.Manifest) { m.Sequence = 0 }, manifest.ErrMalformed},
		{"no creation time", func(m *manifest.Manifest) { m.Created = time.Time{} }, manifest.ErrMalformed},
		{"expires before created", func(m *manifest.Manifest) { m.Expires = m.Created.Add(-time.Hour) }, manifest.ErrMalformed},
		{"bad channel", func(m *manifest.Manifest) { m.Channel = "../stable" }, manifest.ErrMalformed},
		{"empty version", func(m *manifest.Manifest) { m.Version = "" }, manifest.ErrMalformed},
		{"version with slash", func(m *manifest.Manifest) { m.Version = "1/2" }, manifest.ErrMalformed},
		{"bad replaces glob", func(m *manifest.Manifest) { m.Target.Replaces = []string{"1.["} }, manifest.ErrMalformed},
		{"hook missing", func(m *manifest.Manifest) { m.Hooks.PreActivate = "hooks/pre.sh" }, manifest.ErrMalformed},
		{"hook is a symlink", func(m *manifest.Manifest) { m.Hooks.PreActivate = "bin/current" }, manifest.ErrMalformed},
		{"hook is a directory", func(m *manifest.Manifest) {
			m.Files = append(m.Files, dir("hooks/pre.d", 0o755))
			m.Hooks.PreActivate = "hooks/pre.d"
		}, manifest.ErrMalformed},
		{"hook escaping", func(m *manifest.Manifest) { m.Hooks.PreActivate = "../x.sh" }, manifest.ErrPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleManifest()
			tt.edit(m)
			err := m.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if _, err := m.Marshal(); !errors.Is(err, tt.want) {
				t.Errorf("Marshal of an invalid manifest: %v", err)
			}
		})
	}
}

func TestHeadValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*manifest.Head)
		want error
	}{
		{"sample", func(*manifest.Head) {}, nil},
		{"sequence 0", func(h *manifest.Head) { h.Sequence = 0 }, manifest.ErrMalformed},
		{"manifest path escaping", func(h *manifest.Head) { h.Manifest.Path = "../../etc/passwd" }, manifest.ErrPath},
		{"manifest size 0", func(h *manifest.Head) { h.Manifest.Size = 0 }, manifest.ErrMalformed},
		{"manifest over the cap", func(h *manifest.Head) { h.Manifest.Size = manifest.MaxManifestSize + 1 }, manifest.ErrMalformed},
		{"bad digest", func(h *manifest.Head) { h.Manifest.SHA256 = "zz" }, manifest.ErrMalformed},
		{"expires before issued", func(h *manifest.Head) { h.Expires = h.Issued }, manifest.ErrMalformed},
		{"bad channel", func(h *manifest.Head) { h.Channel = "" }, manifest.ErrMalformed},
		{"compact forms", func(h *manifest.Head) {}, nil},
		{"no compact form", func(h *manifest.Head) { h.Compact = nil }, nil},
		{"compact path escaping", func(h *manifest.Head) { h.Compact[0].Path = "../x.zst" }, manifest.ErrPath},
		{"compact size 0", func(h *manifest.Head) { h.Compact[1].Size = 0 }, manifest.ErrMalformed},
		{"compact against a later manifest", func(h *manifest.Head) { h.Compact[1].From = h.Sequence }, manifest.ErrMalformed},
		{"too many compact forms", func(h *manifest.Head) {
			for range manifest.MaxCompactRefs {
				h.Compact = append(h.Compact, h.Compact[0])
			}
		}, manifest.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sampleHead(t, []byte("manifest envelope"))
			z, d := manifest.NewRef("manifests/stable/7.json.zst", []byte("z")), manifest.NewRef("manifests/stable/7.from-6.zst", []byte("d"))
			h.Compact = []manifest.CompactRef{{Path: z.Path, Size: z.Size, SHA256: z.SHA256}, {From: h.Sequence - 1, Path: d.Path, Size: d.Size, SHA256: d.SHA256}}
			tt.edit(h)
			_, err := h.Marshal()
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTargetCheck(t *testing.T) {
	target := manifest.Target{OS: []string{"linux", "darwin"}, Arch: []string{"amd64"}, Replaces: []string{"1.*", "2.0.*"}}
	tests := []struct {
		name            string
		target          manifest.Target
		goos, arch, cur string
		wantErr         bool
		wantInMessage   string
	}{
		{"fits", target, "linux", "amd64", "1.3.0", false, ""},
		{"fresh install", target, "darwin", "amd64", "", false, ""},
		{"any platform", manifest.Target{}, "plan9", "mips", "0.1", false, ""},
		{"other OS", target, "windows", "amd64", "", true, "windows"},
		{"other arch", target, "linux", "arm64", "", true, "arm64"},
		{"version not replaceable", target, "linux", "amd64", "0.9.1", true, "0.9.1"},
		{"second glob", target, "linux", "amd64", "2.0.7", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.target.Check(tt.goos, tt.arch, tt.cur)
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, manifest.ErrPlatform)) {
				t.Fatalf("got %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantInMessage) {
				t.Errorf("message %q should name %q", err, tt.wantInMessage)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		cmp  int
		ok   bool
	}{
		{"1.4.2", "1.4.10", -1, true},
		{"v2.0.0", "1.9.9", 1, true},
		{"1.0.0", "v1.0.0", 0, true},
		{"1.0.0-rc.1", "1.0.0", -1, true},
		{"1.0.0+build.5", "1.0.0", 0, true},
		{"2024-06-01", "1.0.0", 0, false},
		{"daily", "daily", 0, false},
	}
	for _, tt := range tests {
		cmp, ok := manifest.CompareVersions(tt.a, tt.b)
		if cmp != tt.cmp || ok != tt.ok {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d, %v", tt.a, tt.b, cmp, ok, tt.cmp, tt.ok)
		}
	}
}
