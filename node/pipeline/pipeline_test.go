package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/chunk/delta"
	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/node/source"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkFile fails the test unless dir/p holds data with mode.
func checkFile(t *testing.T, dir, p string, data []byte, mode fs.FileMode) {
	t.Helper()
	name := filepath.Join(dir, filepath.FromSlash(p))
	got, err := os.ReadFile(name)
	if err != nil {
		t.Errorf("read %s: %v", p, err)
		return
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s: %d bytes on disk differ from the release's %d", p, len(got), len(data))
	}
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
	}
}

func TestRunFetchesOnlyMissingChunks(t *testing.T) {
	a, b := randomBytes(1, 5500), randomBytes(2, 3000)
	tests := []struct {
		name        string
		concurrency int
		held        func(i int) bool // which of the release's chunks the store holds
		owned       func(i int) bool
	}{
		{"empty store", 4, func(int) bool { return false }, nil},
		{"every other chunk held", 4, func(i int) bool { return i%2 == 0 }, nil},
		{"all held", 4, func(int) bool { return true }, nil},
		{"concurrency 1, owned lane", 1, func(i int) bool { return i == 3 }, func(i int) bool { return i%3 == 0 }},
		{"owned lane", 8, func(i int) bool { return i < 2 }, func(i int) bool { return i%2 == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := make(map[cid.Cid][]byte)
			m := &manifest.Manifest{Files: []manifest.File{
				regular("a", 0o644, a, chunks),
				regular("b", 0o755, b, chunks),
				regular("a-again", 0o600, a, chunks), // the same chunks, fetched once
			}}
			st := newMemStore(t)
			src := newFakeSource(st, chunks)
			plan := planRelease(m)
			index := make(map[cid.Cid]int)
			var heldBytes, fetchBytes int64
			for i, j := range plan.jobs {
				index[j.c] = i
				if tt.held(i) {
					st.m[j.c] = chunks[j.c]
					heldBytes += j.size
				} else {
					fetchBytes += j.size
				}
			}
			opts := Options{Concurrency: tt.concurrency}
			if tt.owned != nil {
				opts.Owned = func(c cid.Cid) bool { return tt.owned(index[c]) }
			}
			var progress atomic.Int64
			opts.Progress = func(chunks int, _ int64) { progress.Add(int64(chunks)) }
			var fetched *Result
			opts.Fetched = func(r Result) error { fetched = &r; return nil }

			dir := t.TempDir()
			res, err := New(st, src, opts).Run(testContext(t), m, dir)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			for i, j := range plan.jobs {
				want := 1
				if tt.held(i) {
					want = 0
				}
				if got := src.callsFor(j.c); got != want {
					t.Errorf("chunk %d fetched %d times, want %d", i, got, want)
				}
				if got := st.hasCalls(j.c); got != 1 {
					t.Errorf("store asked %d times whether it has chunk %d, want once", got, i)
				}
			}
			if want := (Result{FromWAN: fetchBytes, FromLocal: heldBytes}); res != want {
				t.Errorf("result %+v, want %+v", res, want)
			}
			if fetched == nil || *fetched != res {
				t.Errorf("Fetched told %+v, want %+v", fetched, res)
			}
			if got := progress.Load(); got != int64(len(plan.jobs)) {
				t.Errorf("progress told of %d chunks, want %d", got, len(plan.jobs))
			}
			checkFile(t, dir, "a", a, 0o644)
			checkFile(t, dir, "b", b, 0o755)
			checkFile(t, dir, "a-again", a, 0o600)
		})
	}
}

func TestRunCountsOrigins(t *testing.T) {
	data := randomBytes(3, 4000)
	tests := []struct {
		name   string
		origin chunk.Origin
		claim  chunk.Origin // what the mesh noted for the chunks it stored
		held   bool
		want   func(size int64) Result
	}{
		{"from a peer", chunk.Origin{Peer: "n2"}, chunk.Origin{}, false, func(s int64) Result { return Result{FromLAN: s} }},
		{"from the WAN", chunk.Origin{WAN: true}, chunk.Origin{}, false, func(s int64) Result { return Result{FromWAN: s} }},
		{"stored meanwhile for a peer", chunk.Origin{}, chunk.Origin{WAN: true}, false, func(s int64) Result { return Result{FromWAN: s} }},
		{"held, stored earlier for a peer", chunk.Origin{}, chunk.Origin{Peer: "n3"}, true, func(s int64) Result { return Result{FromLAN: s} }},
		{"held", chunk.Origin{}, chunk.Origin{}, true, func(s int64) Result { return Result{FromLocal: s} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := make(map[cid.Cid][]byte)
			m := &manifest.Manifest{Files: []manifest.File{regular("f", 0o644, data, chunks)}}
			st := newMemStore(t)
			if tt.held {
				for c, d := range chunks {
					st.m[c] = d
				}
			}
			src := newFakeSource(st, chunks)
			src.origin = tt.origin
			var mu sync.Mutex
			claimed := make(map[cid.Cid]bool)
			opts := Options{Claim: func(c cid.Cid) (chunk.Origin, bool) {
				mu.Lock()
				defer mu.Unlock()
				if tt.claim == (chunk.Origin{}) || claimed[c] {
					return chunk.Origin{}, false
				}
				claimed[c] = true
				return tt.claim, true
			}}
			res, err := New(st, src, opts).Run(testContext(t), m, "")
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.want(int64(len(data))); res != want {
				t.Errorf("result %+v, want %+v", res, want)
			}
		})
	}
}

func TestRunAssemblesTreeExactly(t *testing.T) {
	chunks := make(map[cid.Cid][]byte)
	app, conf, same := randomBytes(4, 7321), []byte("key = value\n"), bytes.Repeat([]byte("x"), 3*testChunkSize)
	m := &manifest.Manifest{Files: []manifest.File{
		{Path: "etc", Type: manifest.TypeDir, Mode: 0o750},
		{Path: "bin", Type: manifest.TypeDir, Mode: 0o755},
		regular("bin/app", 0o755, app, chunks),
		regular("etc/app.conf", 0o640, conf, chunks),
		regular("share/doc/repeated", 0o444, same, chunks), // one chunk, three times
		regular("empty", 0o600, nil, chunks),
		regular("bin/suid", 0o4755, conf, chunks),
		{Path: "bin/app-link", Type: manifest.TypeHardlink, Link: "bin/app"},
		{Path: "current", Link: "bin/app"},
	}}
	st := newMemStore(t)
	dir := t.TempDir()
	if _, err := New(st, newFakeSource(st, chunks), Options{Concurrency: 2}).Run(testContext(t), m, dir); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkFile(t, dir, "bin/app", app, 0o755)
	checkFile(t, dir, "bin/app-link", app, 0o755)
	checkFile(t, dir, "etc/app.conf", conf, 0o640)
	checkFile(t, dir, "share/doc/repeated", same, 0o444)
	checkFile(t, dir, "empty", nil, 0o600)
	checkFile(t, dir, "bin/suid", conf, 0o755|fs.ModeSetuid)
	for p, mode := range map[string]fs.FileMode{"etc": 0o750, "bin": 0o755, "share": 0o755, "share/doc": 0o755} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if want := fs.ModeDir | mode; fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "current")); err != nil || target != "bin/app" {
		t.Errorf("symlink current: %q, %v; want bin/app", target, err)
	}
	a, _ := os.Stat(filepath.Join(dir, "bin/app"))
	b, _ := os.Stat(filepath.Join(dir, "bin/app-link"))
	if !os.SameFile(a, b) {
		t.Error("bin/app-link is not a hard link of bin/app")
	}
	entries := 0
	_ = filepath.WalkDir(dir, func(string, fs.DirEntry, error) error { entries++; return nil })
	if want := len(m.Files) + 3; entries != want { // and the root, share, share/doc
		t.Errorf("%d entries in the staging folder, want %d", entries, want)
	}
}

// TestRunHandsOffFetched: the assembly writes the chunks this run fetched as
// the fetch handed them over, without reading them back from the store, as
// far as the handoff's bound allows; past it, and for a chunk's later uses,
// it reads the store. The tree is exact either way.
func TestRunHandsOffFetched(t *testing.T) {
	chunks := make(map[cid.Cid][]byte)
	app, lib := randomBytes(6, 9500), randomBytes(7, 4200)
	m := &manifest.Manifest{Files: []manifest.File{
		regular("bin/app", 0o755, app, chunks),     // 10 chunks
		regular("lib/lib.so", 0o644, lib, chunks),  // 5 chunks
		regular("lib/copy.so", 0o644, lib, chunks), // the same 5 again
	}}
	refs := 10 + 5 + 5
	tests := []struct {
		name      string
		limit     int64
		wantReads func(int) bool // of the store, by the assembly
	}{
		{"default bound", handoffBytes, func(n int) bool { return n == 5 }}, // lib's second use
		{"no room", 0, func(n int) bool { return n == refs }},
		// The first three fetched are kept whatever the timing; how many
		// more depends on how closely the assembly follows.
		{"room for three", 3 * testChunkSize, func(n int) bool { return n >= 5 && n <= refs-3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemStore(t)
			src := newFakeSource(st, chunks)
			p := New(st, src, Options{Concurrency: 1})
			p.handoffLimit = tt.limit
			dir := t.TempDir()
			if _, err := p.Run(testContext(t), m, dir); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := src.total(); got != len(chunks) {
				t.Errorf("%d fetches, want each of the %d chunks once", got, len(chunks))
			}
			if !tt.wantReads(st.writes) {
				t.Errorf("the assembly read %d chunks of %d from the store", st.writes, refs)
			}
			checkFile(t, dir, "bin/app", app, 0o755)
			checkFile(t, dir, "lib/lib.so", lib, 0o644)
			checkFile(t, dir, "lib/copy.so", lib, 0o644)
		})
	}
}

func TestHandoffBound(t *testing.T) {
	h := newHandoff(2500)
	a, b, c := randomBytes(1, 1000), randomBytes(2, 1000), randomBytes(3, 1000)
	h.keep(0, a)
	h.keep(1, b)
	h.keep(2, c) // no room
	h.keep(0, c) // held already
	if got, ok := h.take(0); !ok || !bytes.Equal(got, a) {
		t.Errorf("take(0) = %d bytes, %v; want the first kept", len(got), ok)
	}
	if _, ok := h.take(0); ok {
		t.Error("take(0) again found bytes; a take forgets them")
	}
	if _, ok := h.take(2); ok {
		t.Error("job 2 was kept past the bound")
	}
	h.keep(2, c) // room again
	for i, want := range map[int][]byte{1: b, 2: c} {
		if got, ok := h.take(i); !ok || !bytes.Equal(got, want) {
			t.Errorf("take(%d) = %d bytes, %v; want what was kept", i, len(got), ok)
		}
	}
	var none *handoff // a run that does not assemble
	none.keep(0, a)
	if _, ok := none.take(0); ok {
		t.Error("a nil handoff returned bytes")
	}
}

// TestRunRefetchesCollected: a chunk collected between its fetch and the
// assembly is fetched again rather than failing the release.
func TestRunRefetchesCollected(t *testing.T) {
	chunks := make(map[cid.Cid][]byte)
	data := randomBytes(5, 2500)
	m := &manifest.Manifest{Files: []manifest.File{regular("f", 0o644, data, chunks)}}
	st := newMemStore(t)
	lost := m.Files[0].Chunks[1].CID
	for c, d := range chunks {
		st.m[c] = d
	}
	st.lose[lost] = true
	src := newFakeSource(st, chunks)
	dir := t.TempDir()
	if _, err := New(st, src, Options{}).Run(testContext(t), m, dir); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := src.total(); got != 1 || src.callsFor(lost) != 1 {
		t.Errorf("%d fetches, want the collected chunk once", got)
	}
	checkFile(t, dir, "f", data, 0o644)
}

func TestRunFetchFails(t *testing.T) {
	boom := errors.New("boom")
	chunks := make(map[cid.Cid][]byte)
	m := &manifest.Manifest{Files: []manifest.File{regular("f", 0o644, randomBytes(6, 3000), chunks)}}
	st := newMemStore(t)
	src := newFakeSource(st, chunks)
	src.fail = boom
	fetched := false
	_, err := New(st, src, Options{Fetched: func(Result) error { fetched = true; return nil }}).Run(testContext(t), m, t.TempDir())
	var fe *FetchError
	if !errors.As(err, &fe) || !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want a *FetchError wrapping the source's error", err)
	}
	if fetched {
		t.Error("Fetched called after a failed fetch")
	}
}

// deltaRelease is a release whose file "app" has a delta. The delta's base is
// old, a file of an earlier release, or, when sibling, the release's own file
// "lib", listed before "app".
type deltaRelease struct {
	m       *manifest.Manifest
	chunks  map[cid.Cid][]byte // of the release, and the delta object
	app     []byte
	base    *manifest.File
	baseRaw map[cid.Cid][]byte // chunks of the old base
	object  cid.Cid
}

func newDeltaRelease(t *testing.T, sibling bool, object string) *deltaRelease {
	t.Helper()
	old := randomBytes(7, 6000)
	app := edited(old, 17, 700)
	d := &deltaRelease{chunks: make(map[cid.Cid][]byte), baseRaw: make(map[cid.Cid][]byte), app: app}
	var files []manifest.File
	if sibling {
		lib := regular("lib", 0o644, old, d.chunks)
		files = append(files, lib)
		d.base = &lib
	} else {
		base := regular("old/app", 0o755, old, d.baseRaw)
		d.base = &base
	}
	appFile := regular("app", 0o755, app, d.chunks)
	files = append(files, appFile)
	var obj []byte
	switch object {
	case "good":
		var err error
		if obj, err = delta.Encode(delta.Fast, old, app, nil); err != nil {
			t.Fatal(err)
		}
	case "lie": // decodes, to bytes that are not the chunks it names
		var err error
		if obj, err = delta.Encode(delta.Fast, old, edited(app, 3, 500), nil); err != nil {
			t.Fatal(err)
		}
	case "garbage":
		obj = randomBytes(8, 300)
	}
	d.object = chunk.Sum(obj)
	d.chunks[d.object] = obj
	d.m = &manifest.Manifest{Files: files, Deltas: []manifest.Delta{{
		Object: manifest.ChunkRef{CID: d.object, Size: uint32(len(obj))},
		Path:   "app",
		Runs:   []manifest.Run{{First: 0, Count: len(appFile.Chunks)}},
		Bases:  []manifest.BaseRange{{SHA256: d.base.SHA256, Offset: 0, Size: d.base.Size}},
	}}}
	return d
}

func TestRunDeltas(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		sibling     bool   // the base is the release's earlier file "lib"
		hold        bool   // the node holds the old base
		object      string // "good", "lie" or "garbage"
		wantDelta   bool   // app's chunks come from the delta, none fetched
		wantRefused bool   // a verify failure is reported
	}{
		{"held base", 4, false, true, "good", true, false},
		{"base not held", 4, false, false, "good", false, false},
		{"delta does not decode", 4, false, true, "garbage", false, true},
		{"delta lies", 4, false, true, "lie", false, true},
		{"base earlier in the release, concurrency 1", 1, true, false, "good", true, false},
		{"base earlier in the release, concurrency 2", 2, true, false, "good", true, false},
		{"base earlier in the release, lies", 2, true, false, "lie", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeltaRelease(t, tt.sibling, tt.object)
			st := newMemStore(t)
			opts := Options{Concurrency: tt.concurrency}
			if tt.hold {
				for c, b := range d.baseRaw {
					st.m[c] = b
				}
				opts.Bases = map[string]*manifest.File{d.base.SHA256: d.base}
			}
			var refused atomic.Int32
			opts.VerifyFailed = func(string) { refused.Add(1) }
			src := newFakeSource(st, d.chunks)
			dir := t.TempDir()
			res, err := New(st, src, opts).Run(testContext(t), d.m, dir)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			appFile := d.m.Files[len(d.m.Files)-1]
			fetched := 0
			for _, c := range appFile.Chunks {
				fetched += src.callsFor(c.CID)
			}
			if tt.wantDelta {
				if fetched != 0 {
					t.Errorf("%d of app's chunks fetched, want none: the delta makes them", fetched)
				}
				if res.Rebuilt != int64(len(d.app)) {
					t.Errorf("rebuilt %d bytes, want %d", res.Rebuilt, len(d.app))
				}
			} else {
				if fetched != len(appFile.Chunks) {
					t.Errorf("%d of app's %d chunks fetched, want each once", fetched, len(appFile.Chunks))
				}
				if res.Rebuilt != 0 {
					t.Errorf("rebuilt %d bytes, want none", res.Rebuilt)
				}
			}
			if got, want := src.callsFor(d.object) > 0, tt.hold || tt.sibling; got != want {
				t.Errorf("delta fetched: %v, want %v", got, want)
			}
			if got := refused.Load() > 0; got != tt.wantRefused {
				t.Errorf("verify failure reported: %v, want %v", got, tt.wantRefused)
			}
			checkFile(t, dir, "app", d.app, 0o755)
			for _, f := range d.m.Files {
				for _, c := range f.Chunks {
					if n := st.hasCalls(c.CID); n != 1 {
						t.Errorf("store asked %d times whether it has chunk %s of %s, want once", n, c.CID, f.Path)
					}
				}
			}
			for _, c := range appFile.Chunks {
				if got, _ := st.Get(context.Background(), c.CID); !bytes.Equal(got, d.chunks[c.CID]) {
					t.Errorf("chunk %s stored as %d bytes not matching it", c.CID, len(got))
				}
			}
		})
	}
}

// TestRunDeltaChunksHeld: a delta whose chunks are all stored is not fetched.
func TestRunDeltaChunksHeld(t *testing.T) {
	d := newDeltaRelease(t, false, "good")
	st := newMemStore(t)
	for c, b := range d.baseRaw {
		st.m[c] = b
	}
	for _, c := range d.m.Files[0].Chunks {
		st.m[c.CID] = d.chunks[c.CID]
	}
	src := newFakeSource(st, d.chunks)
	opts := Options{Bases: map[string]*manifest.File{d.base.SHA256: d.base}}
	if _, err := New(st, src, opts).Run(testContext(t), d.m, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if n := src.total(); n != 0 {
		t.Errorf("%d fetches, want none", n)
	}
}

// TestRunCancel: cancelling a Run stops every goroutine it started, be it
// waiting on a stalled source or a delta awaiting its base.
func TestRunCancel(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) (*manifest.Manifest, *fakeSource, *memStore, Options)
	}{
		{"stalled source", func(t *testing.T) (*manifest.Manifest, *fakeSource, *memStore, Options) {
			chunks := make(map[cid.Cid][]byte)
			m := &manifest.Manifest{Files: []manifest.File{regular("f", 0o644, randomBytes(9, 20000), chunks)}}
			st := newMemStore(t)
			src := newFakeSource(st, chunks)
			src.stall = func(cid.Cid) bool { return true }
			return m, src, st, Options{Concurrency: 4}
		}},
		{"delta awaiting its base", func(t *testing.T) (*manifest.Manifest, *fakeSource, *memStore, Options) {
			d := newDeltaRelease(t, true, "good")
			st := newMemStore(t)
			src := newFakeSource(st, d.chunks)
			lib := make(map[cid.Cid]bool)
			for _, c := range d.m.Files[0].Chunks {
				lib[c.CID] = true
			}
			src.stall = func(c cid.Cid) bool { return lib[c] }
			return d.m, src, st, Options{Concurrency: 2}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			m, src, st, opts := tt.setup(t)
			ctx, cancel := context.WithCancel(testContext(t))
			done := make(chan error, 1)
			go func() {
				_, err := New(st, src, opts).Run(ctx, m, t.TempDir())
				done <- err
			}()
			<-src.started
			time.Sleep(20 * time.Millisecond)
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run: %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			if n := src.inflight.Load(); n != 0 {
				t.Errorf("%d fetches still running after Run returned", n)
			}
			deadline := time.Now().Add(2 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				t.Errorf("%d goroutines after Run, %d before", n, before)
			}
		})
	}
}

func TestRetry(t *testing.T) {
	data := []byte("chunk")
	c := chunk.Sum(data)
	boom := errors.New("peer went away")
	tests := []struct {
		name      string
		errs      []error // returned by the first attempts, in order
		wantCalls int
		wantErr   error
	}{
		{"first attempt", nil, 1, nil},
		{"after two failures", []error{boom, boom}, 3, nil},
		{"gives up", []error{boom, boom, boom, boom}, retryAttempts, boom},
		{"not found is not asked again", []error{source.ErrNotFound}, 1, source.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			src := sourceFunc(func(context.Context, cid.Cid) ([]byte, chunk.Origin, error) {
				calls++
				if calls <= len(tt.errs) {
					return nil, chunk.Origin{}, tt.errs[calls-1]
				}
				return data, chunk.Origin{Peer: "n1"}, nil
			})
			got, o, err := Retry(src, time.Millisecond, nil).Fetch(testContext(t), c)
			if !errors.Is(err, tt.wantErr) || (err == nil && (!bytes.Equal(got, data) || o.Peer != "n1")) {
				t.Errorf("Fetch: %q, %+v, %v; want %v", got, o, err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Errorf("%d attempts, want %d", calls, tt.wantCalls)
			}
		})
	}
}

type sourceFunc func(context.Context, cid.Cid) ([]byte, chunk.Origin, error)

func (f sourceFunc) Fetch(ctx context.Context, c cid.Cid) ([]byte, chunk.Origin, error) {
	return f(ctx, c)
}
