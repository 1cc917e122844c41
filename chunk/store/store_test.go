package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

// testChunk returns deterministic pseudo-random bytes of n bytes for seed.
func testChunk(seed, n int) []byte {
	out := make([]byte, n)
	x := uint64(seed)*0x9e3779b97f4a7c15 + 1
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = byte(x)
	}
	return out
}

func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), Options{})
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"small", []byte("hello")},
		{"typical", testChunk(1, 20000)},
		{"largest", testChunk(2, chunk.MaxSize)},
	}
	var wantBytes int64
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := chunk.Sum(tt.data)
			if ok, err := s.Has(ctx, c); err != nil || ok {
				t.Fatalf("Has before Put = %v, %v", ok, err)
			}
			for range 2 { // the second Put is a no-op
				if err := s.Put(ctx, c, tt.data); err != nil {
					t.Fatal(err)
				}
			}
			wantBytes += int64(len(tt.data))
			if n, b := s.Usage(); n != int64(i+1) || b != wantBytes {
				t.Fatalf("Usage = %d chunks %d bytes; want %d, %d", n, b, i+1, wantBytes)
			}
			if ok, err := s.Has(ctx, c); err != nil || !ok {
				t.Fatalf("Has after Put = %v, %v", ok, err)
			}
			got, err := s.Get(ctx, c)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("Get = %d bytes, %v; want the %d bytes put", len(got), err, len(tt.data))
			}
			if n, err := s.Size(ctx, c); err != nil || n != int64(len(tt.data)) {
				t.Fatalf("Size = %d, %v; want %d", n, err, len(tt.data))
			}
			var buf bytes.Buffer
			if n, err := s.WriteTo(ctx, c, &buf); err != nil || n != int64(len(tt.data)) || !bytes.Equal(buf.Bytes(), tt.data) {
				t.Fatalf("WriteTo = %d, %v", n, err)
			}
		})
	}
	c := chunk.Sum(tests[2].data)
	if err := s.Delete(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, c); err != nil {
		t.Fatalf("second Delete: %v; want nil", err)
	}
	if n, b := s.Usage(); n != 3 || b != wantBytes-20000 {
		t.Fatalf("Usage after Delete = %d, %d", n, b)
	}
	if _, err := s.Get(ctx, c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v; want ErrNotFound", err)
	}
	if _, err := s.Size(ctx, c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Size after Delete: %v; want ErrNotFound", err)
	}
	if _, err := s.WriteTo(ctx, c, &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("WriteTo after Delete: %v; want ErrNotFound", err)
	}
	if ok, err := s.Has(ctx, c); err != nil || ok {
		t.Fatalf("Has after Delete = %v, %v", ok, err)
	}
}

func TestPutRefusesBadBytes(t *testing.T) {
	ctx := context.Background()
	good := testChunk(3, 5000)
	flipped := bytes.Clone(good)
	flipped[4321] ^= 0x80
	big := testChunk(4, chunk.MaxSize+1)
	v0, err := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		c    cid.Cid
		data []byte
		want error
	}{
		{"one flipped bit", chunk.Sum(good), flipped, chunk.ErrMismatch},
		{"other chunk's bytes", chunk.Sum(good), testChunk(5, 5000), chunk.ErrMismatch},
		{"too large", chunk.Sum(big), big, chunk.ErrTooLarge},
		{"CIDv0", v0, good, chunk.ErrUnsupported},
	}
	s := openStore(t, t.TempDir(), Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Put(ctx, tt.c, tt.data); !errors.Is(err, tt.want) {
				t.Fatalf("Put = %v; want %v", err, tt.want)
			}
			if ok, _ := s.Has(ctx, tt.c); ok {
				t.Fatal("refused chunk is in the store")
			}
			if n, b := s.Usage(); n != 0 || b != 0 {
				t.Fatalf("Usage = %d, %d after refused Put", n, b)
			}
		})
	}
	var count int
	if err := s.ForEach(ctx, func(cid.Cid, int64) error { count++; return nil }); err != nil || count != 0 {
		t.Fatalf("ForEach found %d chunks (%v); want none", count, err)
	}
}

func TestReopenKeepsChunksAndUsage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	var total int64
	for i := range 50 {
		d := testChunk(100+i, 1000+i*997)
		want = append(want, d)
		total += int64(len(d))
		if err := s.Put(ctx, chunk.Sum(d), d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, chunk.Sum(want[0])); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{})
	if n, b := s.Usage(); n != 49 || b != total-int64(len(want[0])) {
		t.Fatalf("Usage after reopen = %d, %d; want 49, %d", n, b, total-int64(len(want[0])))
	}
	if ok, _ := s.Has(ctx, chunk.Sum(want[0])); ok {
		t.Fatal("deleted chunk is back after reopen")
	}
	for _, d := range want[1:] {
		got, err := s.Get(ctx, chunk.Sum(d))
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("Get after reopen: %v", err)
		}
	}
}

// TestConcurrentPutsCountOnce: Put and PutVerified of the same chunks from
// many goroutines store and count each chunk once.
func TestConcurrentPutsCountOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), Options{})
	var chunks [][]byte
	var total int64
	for i := range 20 {
		d := testChunk(200+i, 3000)
		chunks = append(chunks, d)
		total += int64(len(d))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(chunks))
	for i := range 8 {
		put := s.Put
		if i%2 == 1 {
			put = s.PutVerified // the caller checked the bytes: same result
		}
		wg.Go(func() {
			for _, d := range chunks {
				errs <- put(ctx, chunk.Sum(d), d)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, b := s.Usage(); n != 20 || b != total {
		t.Fatalf("Usage = %d, %d after concurrent Puts; want 20, %d", n, b, total)
	}
}

// TestGroupCommitManyWriters: puts from many goroutines at once, more than
// one group commit holds, are all stored whole, each readable as written.
func TestGroupCommitManyWriters(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), Options{})
	const writers, each = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				d := testChunk(1000+w*each+i, 500+i*37)
				errs <- s.PutVerified(ctx, chunk.Sum(d), d)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for n := range writers * each {
		d := testChunk(1000+n, 500+(n%each)*37)
		total += int64(len(d))
		got, err := s.Get(ctx, chunk.Sum(d))
		if err != nil {
			t.Fatalf("chunk %d: %v", n, err)
		}
		if !bytes.Equal(got, d) {
			t.Fatalf("chunk %d: read back %d bytes differing from the %d put", n, len(got), len(d))
		}
	}
	if n, b := s.Usage(); n != writers*each || b != total {
		t.Fatalf("Usage = %d, %d; want %d, %d", n, b, writers*each, total)
	}
}

func TestMeta(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMeta("seq/stable"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetMeta of missing key: %v; want ErrNotFound", err)
	}
	set := map[string]string{
		"seq/stable":   "41",
		"seq/beta":     "7",
		"release/1.4":  `{"state":"active"}`,
		"seq/stable/x": "nested",
	}
	for k, v := range set {
		set := s.SetMeta
		if strings.HasPrefix(k, "release/") {
			set = s.SetMetaLazy // on disk by Close
		}
		if err := set(k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetMeta("seq/stable", []byte("42")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMeta("seq/beta"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMeta("never/set"); err != nil {
		t.Fatalf("DeleteMeta of a missing key: %v", err)
	}
	if err := s.SetMeta("", []byte("x")); err == nil {
		t.Fatal("SetMeta accepted an empty key")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{})
	got, err := s.GetMeta("seq/stable")
	if err != nil || string(got) != "42" {
		t.Fatalf("GetMeta after reopen = %q, %v; want 42", got, err)
	}
	list, err := s.ListMeta("seq/")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || string(list["seq/stable"]) != "42" || string(list["seq/stable/x"]) != "nested" {
		t.Fatalf("ListMeta(seq/) = %q", list)
	}
	all, err := s.ListMeta("")
	if err != nil || len(all) != 3 || string(all["release/1.4"]) != `{"state":"active"}` {
		t.Fatalf("ListMeta() = %q, %v; want 3 keys, release/1.4 among them", all, err)
	}
	if n, _ := s.Usage(); n != 0 {
		t.Fatalf("meta counted as %d chunks", n)
	}
}

func TestForEach(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), Options{})
	want := map[cid.Cid]int64{}
	for i := range 2*forEachBatch + 17 { // crosses batch edges
		d := testChunk(1000+i, 100+i%300)
		c := chunk.Sum(d)
		want[c] = int64(len(d))
		if err := s.Put(ctx, c, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetMeta("x", []byte("not a chunk")); err != nil {
		t.Fatal(err)
	}
	got := map[cid.Cid]int64{}
	err := s.ForEach(ctx, func(c cid.Cid, size int64) error {
		if _, dup := got[c]; dup {
			t.Fatalf("%s seen twice", c)
		}
		got[c] = size
		return s.Delete(ctx, c) // fn may use the store
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("ForEach saw %d chunks; want %d", len(got), len(want))
	}
	for c, n := range want {
		if got[c] != n {
			t.Fatalf("ForEach size of %s = %d; want %d", c, got[c], n)
		}
	}
	if n, b := s.Usage(); n != 0 || b != 0 {
		t.Fatalf("Usage after deleting all = %d, %d", n, b)
	}

	d := testChunk(5, 10)
	if err := s.Put(ctx, chunk.Sum(d), d); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	if err := s.ForEach(ctx, func(cid.Cid, int64) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("ForEach = %v; want fn's error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.ForEach(cctx, func(cid.Cid, int64) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("ForEach with cancelled ctx = %v", err)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		// Allocated blocks, not length: badger preallocates sparse files.
		fi, err := d.Info()
		if err != nil {
			return err
		}
		total += fi.Sys().(*syscall.Stat_t).Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func TestDeleteAndGCGiveSpaceBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := Options{ValueLogFileSize: 1 << 20, MemTableSize: 1 << 20}
	s := openStore(t, dir, opts)
	var cids []cid.Cid
	for i := range 400 { // 400 x 50 KB = 20 MB over ~20 value-log files
		d := testChunk(5000+i, 50000)
		c := chunk.Sum(d)
		cids = append(cids, c)
		if err := s.Put(ctx, c, d); err != nil {
			t.Fatal(err)
		}
	}
	before := dirSize(t, dir)
	for i, c := range cids {
		if i%10 != 0 {
			if err := s.Delete(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	after := dirSize(t, dir)
	t.Logf("on disk: %d bytes before, %d after deleting 90%% and GC", before, after)
	if after > before/2 {
		t.Errorf("GC gave back too little: %d bytes before, %d after deleting 90%% of chunks", before, after)
	}
	for i, c := range cids {
		ok, err := s.Has(ctx, c)
		if err != nil || ok != (i%10 == 0) {
			t.Fatalf("chunk %d: Has = %v, %v after GC", i, ok, err)
		}
		if ok {
			got, err := s.Get(ctx, c)
			if err != nil || chunk.Verify(c, got) != nil {
				t.Fatalf("chunk %d unreadable after GC: %v", i, err)
			}
		}
	}
}

// childEnv names the store directory when the test binary runs as the
// child of TestKillKeepsStoredChunks.
const childEnv = "PATCHMESH_STORE_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		putForever(dir)
	}
	os.Exit(m.Run())
}

// putForever is the child process: it puts chunks until killed and prints
// each CID once its Put has returned.
func putForever(dir string) {
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		d := testChunk(i, 1000+(i*7919)%60000)
		c := chunk.Sum(d)
		if err := s.Put(context.Background(), c, d); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(c)
	}
}

func TestKillKeepsStoredChunks(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var reported []string
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if len(line) > 6 && line[:6] == "error " {
			t.Fatalf("child: %s", line)
		}
		if c, err := chunk.Parse(line); err == nil {
			reported = append(reported, c.String())
		}
		if len(reported) == 500 && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true // keep reading: lines already printed count too
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("child exited after %d chunks without being killed", len(reported))
	}
	s := openStore(t, dir, Options{})
	ctx := context.Background()
	for _, str := range reported {
		c, _ := chunk.Parse(str)
		got, err := s.Get(ctx, c)
		if err != nil {
			t.Fatalf("chunk %s reported stored before SIGKILL is lost: %v", c, err)
		}
		if err := chunk.Verify(c, got); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.Usage(); n < int64(len(reported)) {
		t.Fatalf("Usage counts %d chunks; the child stored at least %d", n, len(reported))
	}
	t.Logf("%d chunks reported before SIGKILL, %d found after reopen", len(reported), func() int64 { n, _ := s.Usage(); return n }())
}
