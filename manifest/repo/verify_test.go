package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
)

// rewriteEnvelope decodes the envelope file at name, lets edit change it and writes it back.
func rewriteEnvelope(t *testing.T, name string, edit func(env *manifest.Envelope)) []byte {
	t.Helper()
	env, err := manifest.DecodeEnvelope(readFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	edit(env)
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func flipByte(t *testing.T, name string, at func(size int) int) {
	t.Helper()
	data := readFile(t, name)
	data[at(len(data))] ^= 0x01
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyNamesWhatIsWrong(t *testing.T) {
	key, other, second := newKey(t), newKey(t), newKey(t)
	type fixture struct {
		repoDir string
		m       *manifest.Manifest
		key     manifest.PrivateKey
	}
	headFile := func(f fixture) string { return filepath.Join(f.repoDir, HeadPath("stable")) }
	manifestFile := func(f fixture) string { return filepath.Join(f.repoDir, ManifestPath("stable", 1)) }
	chunkFile := func(f fixture) string {
		return filepath.Join(f.repoDir, ChunkPath(f.m.Files[0].Chunks[0].CID))
	}
	// repoint makes the head name the manifest file as it now is, signed by the
	// publisher: what a broken publisher, not a broken mirror, would serve.
	repoint := func(t *testing.T, f fixture, menv []byte) {
		h, err := ReadHeadUnverified(f.repoDir, "stable")
		if err != nil {
			t.Fatal(err)
		}
		h.Manifest = manifest.NewRef(h.Manifest.Path, menv)
		if err := WriteHead(f.repoDir, h, f.key); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		publish func(o *PublishOptions) // changes to the publish
		root    *manifest.TrustRoot     // zero: key alone, threshold 1
		now     time.Time               // zero: testNow
		tamper  func(t *testing.T, f fixture)
		load    []error // LoadRelease fails with one of these (nil: it succeeds)
		object  string  // the problem's object names this
		message string  // and its message says this
	}{
		{
			name:   "one flipped byte in a chunk",
			tamper: func(t *testing.T, f fixture) { flipByte(t, chunkFile(f), func(n int) int { return n / 2 }) },
			object: "chunk ", message: "do not match",
		},
		{
			name:   "a missing chunk",
			tamper: func(t *testing.T, f fixture) { os.Remove(chunkFile(f)) },
			object: "chunk ", message: "no such file",
		},
		{
			name: "a truncated chunk",
			tamper: func(t *testing.T, f fixture) {
				os.Truncate(chunkFile(f), int64(f.m.Files[0].Chunks[0].Size-1))
			},
			object: "chunk ", message: "do not match",
		},
		{
			name:   "one flipped byte in the manifest",
			tamper: func(t *testing.T, f fixture) { flipByte(t, manifestFile(f), func(n int) int { return n / 2 }) },
			load:   []error{manifest.ErrMismatch}, object: "channel stable", message: "differs from the head's",
		},
		{
			name: "one flipped byte in the manifest's payload, head re-pointed",
			tamper: func(t *testing.T, f fixture) {
				menv := rewriteEnvelope(t, manifestFile(f), func(env *manifest.Envelope) { env.Payload[len(env.Payload)/2] ^= 1 })
				repoint(t, f, menv)
			},
			load: []error{manifest.ErrSignature}, object: "channel stable", message: "bad signature",
		},
		{
			name: "one flipped byte in the manifest's signature, head re-pointed",
			tamper: func(t *testing.T, f fixture) {
				menv := rewriteEnvelope(t, manifestFile(f), func(env *manifest.Envelope) { env.Signatures[0].Sig[7] ^= 1 })
				repoint(t, f, menv)
			},
			load: []error{manifest.ErrSignature}, object: "channel stable", message: "bad signature",
		},
		{
			name: "one flipped byte in the head",
			tamper: func(t *testing.T, f fixture) {
				rewriteEnvelope(t, headFile(f), func(env *manifest.Envelope) { env.Payload[len(env.Payload)/2] ^= 1 })
			},
			load: []error{manifest.ErrSignature}, object: "channel stable", message: "bad signature",
		},
		{
			name: "one flipped byte in the head's signature",
			tamper: func(t *testing.T, f fixture) {
				rewriteEnvelope(t, headFile(f), func(env *manifest.Envelope) { env.Signatures[0].Sig[0] ^= 1 })
			},
			load: []error{manifest.ErrSignature}, object: "channel stable", message: "bad signature",
		},
		{
			name:   "a head that is not JSON",
			tamper: func(t *testing.T, f fixture) { flipByte(t, headFile(f), func(int) int { return 0 }) },
			load:   []error{manifest.ErrMalformed}, object: "channel stable", message: "malformed",
		},
		{
			name: "an oversized head",
			tamper: func(t *testing.T, f fixture) {
				os.WriteFile(headFile(f), bytes.Repeat([]byte(" "), manifest.MaxHeadSize+1), 0o644)
			},
			load: []error{manifest.ErrTooLarge}, object: "channel stable", message: "larger than",
		},
		{
			name:   "a missing manifest",
			tamper: func(t *testing.T, f fixture) { os.Remove(manifestFile(f)) },
			load:   []error{fs.ErrNotExist}, object: "channel stable", message: "no such file",
		},
		{
			name: "a wrong trust root", root: newRoot(t, 1, other),
			load: []error{manifest.ErrUnknownKey, manifest.ErrThreshold}, object: "channel stable", message: "signature",
		},
		{
			name: "below-threshold signatures", root: newRoot(t, 2, key, second),
			load: []error{manifest.ErrThreshold}, object: "channel stable", message: "not enough valid signatures",
		},
		{
			name: "threshold met by two keys", root: newRoot(t, 2, key, second),
			publish: func(o *PublishOptions) { o.Keys = []manifest.PrivateKey{key, second} },
		},
		{
			name:    "an expired head",
			publish: func(o *PublishOptions) { o.HeadTTL = time.Hour },
			now:     testNow.Add(2 * time.Hour),
			load:    []error{manifest.ErrExpired}, object: "channel stable", message: "expired",
		},
		{
			name:    "a head published with a clock in the past",
			publish: func(o *PublishOptions) { o.Now = func() time.Time { return testNow.Add(-30 * 24 * time.Hour) } },
			load:    []error{manifest.ErrExpired}, object: "channel stable", message: "check this machine's clock",
		},
		{
			name:    "an expired manifest behind a fresh head",
			publish: func(o *PublishOptions) { o.ManifestTTL = time.Hour; o.HeadTTL = 48 * time.Hour },
			now:     testNow.Add(2 * time.Hour),
			load:    []error{manifest.ErrExpired}, object: "channel stable", message: "expired",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repoDir := t.TempDir()
			src, _ := releaseTree(t, 16)
			opts := publishOpts("1.0.0", key)
			if tt.publish != nil {
				tt.publish(&opts)
			}
			mustPublish(t, repoDir, src, opts)
			root := tt.root
			if root == nil {
				root = newRoot(t, 1, key)
			}
			now := tt.now
			if now.IsZero() {
				now = testNow
			}
			// Read the manifest with the publisher's own root, before any damage.
			_, _, m, _, err := LoadRelease(context.Background(), DirReader(repoDir), newRoot(t, 1, opts.Keys[0]), "stable", opts.Now())
			if err != nil {
				t.Fatal(err)
			}
			if tt.tamper != nil {
				tt.tamper(t, fixture{repoDir: repoDir, m: m, key: key})
			}

			_, _, _, _, err = LoadRelease(context.Background(), DirReader(repoDir), root, "stable", now)
			switch {
			case len(tt.load) == 0 && err != nil:
				t.Errorf("load release: %v", err)
			case len(tt.load) > 0 && err == nil:
				t.Errorf("load release succeeded, want %v", tt.load)
			case len(tt.load) > 0 && !isAny(err, tt.load):
				t.Errorf("load release: %v, want one of %v", err, tt.load)
			}

			rep, err := Verify(context.Background(), repoDir, root, VerifyOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if tt.object == "" {
				if len(rep.Problems) != 0 || !rep.Channels[0].OK {
					t.Fatalf("verify of a good repository: %+v", rep.Problems)
				}
				return
			}
			if len(rep.Channels) != 1 || rep.Channels[0].OK {
				t.Errorf("verify reports channels %+v, want stable not OK", rep.Channels)
			}
			if len(rep.Problems) != 1 {
				t.Fatalf("verify found %d problems, want 1: %+v", len(rep.Problems), rep.Problems)
			}
			p := rep.Problems[0]
			if !strings.Contains(p.Object, tt.object) || !strings.Contains(p.Error, tt.message) {
				t.Errorf("problem %q: %q; want object %q saying %q", p.Object, p.Error, tt.object, tt.message)
			}
			if tt.object == "chunk " && !strings.Contains(p.Object, m.Files[0].Chunks[0].CID.String()) {
				t.Errorf("problem %q does not name the damaged chunk", p.Object)
			}
		})
	}
}

func isAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func TestVerifyEveryChannel(t *testing.T) {
	key := newKey(t)
	root := newRoot(t, 1, key)
	repoDir := t.TempDir()
	src, _ := releaseTree(t, 16)
	for _, ch := range []string{"stable", "beta"} {
		opts := publishOpts("1.0.0", key)
		opts.Channel = ch
		mustPublish(t, repoDir, src, opts)
	}
	os.Remove(filepath.Join(repoDir, HeadPath("beta")))

	rep, err := Verify(context.Background(), repoDir, root, VerifyOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Channels) != 2 || rep.Channels[0].Channel != "beta" || rep.Channels[0].OK || !rep.Channels[1].OK {
		t.Fatalf("channels %+v: want beta broken, stable OK", rep.Channels)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Object != "channel beta" {
		t.Fatalf("problems %+v: want the missing head of beta", rep.Problems)
	}

	rep, err = Verify(context.Background(), repoDir, root, VerifyOptions{Now: testNow, Channels: []string{"stable"}})
	if err != nil || len(rep.Problems) != 0 || len(rep.Channels) != 1 {
		t.Fatalf("verify of stable only: %+v, %v", rep, err)
	}

	rep, err = Verify(context.Background(), t.TempDir(), root, VerifyOptions{Now: testNow})
	if err != nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Error, "no channel") {
		t.Fatalf("verify of an empty folder: %+v, %v", rep, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, repoDir, root, VerifyOptions{Now: testNow}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled verify: %v", err)
	}
}

func TestDirReaderStaysInside(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"a/b.json": []byte("{}")})
	read := DirReader(filepath.Join(dir, "a"))
	if _, err := read(context.Background(), "b.json", 10); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../a/b.json", "/etc/passwd", "./b.json", ""} {
		if _, err := read(context.Background(), p, 10); !errors.Is(err, manifest.ErrPath) {
			t.Errorf("read %q: %v, want ErrPath", p, err)
		}
	}
	if _, err := read(context.Background(), "b.json", 1); !errors.Is(err, manifest.ErrTooLarge) {
		t.Errorf("read over the cap: %v, want ErrTooLarge", err)
	}
	if _, err := read(context.Background(), "missing.json", 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read of a missing file: %v, want fs.ErrNotExist", err)
	}
}
