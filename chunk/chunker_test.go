package chunk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenParams are pinned: a repository published with them must cut the same
// way forever. DefaultParams is among them.
var goldenParams = []Params{
	DefaultParams(),
	{Min: 8 << 10, Avg: 32 << 10, Max: 128 << 10},
	{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10},
}

func TestGoldenBoundaries(t *testing.T) {
	if DefaultParams() != (Params{Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10}) {
		t.Fatalf("DefaultParams changed to %+v: every published chunk would change name", DefaultParams())
	}
	data := pseudoRandom(42, 4<<20)
	for _, p := range goldenParams {
		t.Run(name(p), func(t *testing.T) {
			var got strings.Builder
			off := 0
			for _, c := range chunkAll(t, bytes.NewReader(data), p) {
				fmt.Fprintf(&got, "%d %d %s\n", off, len(c), Sum(c))
				off += len(c)
			}
			path := filepath.Join("testdata", "golden-"+name(p)+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("boundaries differ from %s: chunking changed, every published CID would change\n%s", path, firstDiff(got.String(), string(want)))
			}
		})
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d: got %q want %q", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("got %d lines, want %d", len(g), len(w))
}

func TestInsertionShiftsNoLaterChunk(t *testing.T) {
	p := DefaultParams()
	old := pseudoRandom(7, 2<<20)
	tests := []struct {
		name   string
		edited []byte
	}{
		{"insert 1 byte at 100", slices.Concat(old[:100], []byte{0xAA}, old[100:])},
		{"insert 5000 bytes at 30000", slices.Concat(old[:30000], pseudoRandom(8, 5000), old[30000:])},
		{"delete 777 bytes at 100000", slices.Concat(old[:100000], old[100777:])},
		{"overwrite 10 bytes at 200000", slices.Concat(old[:200000], make([]byte, 10), old[200010:])},
	}
	oldChunks := chunkAll(t, bytes.NewReader(old), p)
	have := map[[32]byte]bool{}
	for _, c := range oldChunks {
		have[sha256.Sum256(c)] = true
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newChunks := chunkAll(t, bytes.NewReader(tt.edited), p)
			fresh, freshBytes := 0, 0
			for _, c := range newChunks {
				if !have[sha256.Sum256(c)] {
					fresh++
					freshBytes += len(c)
				}
			}
			// The edit touches the chunk it lands in and, rarely, the next few;
			// everything after is shared with the old version.
			if fresh > 4 || freshBytes > 4*p.Max {
				t.Errorf("%d new chunks (%d bytes) of %d after one local edit; want at most 4", fresh, freshBytes, len(newChunks))
			}
			if !bytes.Equal(newChunks[len(newChunks)-1], oldChunks[len(oldChunks)-1]) {
				t.Error("last chunk changed after an edit near the start")
			}
		})
	}
}

func TestChunkSizesWithinBounds(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		data []byte
	}{
		{"default random", DefaultParams(), pseudoRandom(9, 3<<20)},
		{"default zeros", DefaultParams(), make([]byte, 1<<20+123)},
		{"small random", Params{Min: 64, Avg: 256, Max: 1024}, pseudoRandom(10, 1<<20)},
		{"max is MaxSize", Params{Min: 1 << 10, Avg: 1 << 18, Max: MaxSize}, make([]byte, 3*MaxSize+5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := chunkAll(t, bytes.NewReader(tt.data), tt.p)
			for i, c := range chunks {
				last := i == len(chunks)-1
				if len(c) > tt.p.Max || len(c) == 0 || (!last && len(c) < tt.p.Min) {
					t.Fatalf("chunk %d of %d has %d bytes; want %d..%d", i, len(chunks), len(c), tt.p.Min, tt.p.Max)
				}
			}
			if got := bytes.Join(chunks, nil); !bytes.Equal(got, tt.data) {
				t.Fatal("chunks do not concatenate to the input")
			}
		})
	}
}

func TestSmallInputs(t *testing.T) {
	p := DefaultParams()
	tests := []struct {
		name string
		data []byte
		want int
	}{
		{"empty", nil, 0},
		{"one byte", []byte{1}, 1},
		{"below Min", pseudoRandom(11, p.Min-1), 1},
		{"exactly Min", pseudoRandom(12, p.Min), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewChunker(bytes.NewReader(tt.data), p)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for {
				b, err := c.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, bytes.Clone(b))
			}
			if len(got) != tt.want || !bytes.Equal(bytes.Join(got, nil), tt.data) {
				t.Fatalf("got %d chunks %v; want %d chunk(s) equal to the input", len(got), lengths(got), tt.want)
			}
			if _, err := c.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("Next after the end: %v; want io.EOF again", err)
			}
		})
	}
}

func TestShortReadsGiveSameBoundaries(t *testing.T) {
	data := pseudoRandom(13, 1<<20+4321)
	p := Params{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10}
	want := lengths(chunkAll(t, bytes.NewReader(data), p))
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"one byte", iotest.OneByteReader(bytes.NewReader(data))},
		{"half", iotest.HalfReader(bytes.NewReader(data))},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader(data))},
		{"odd sizes", &sizedReader{data: data, sizes: []int{1, 7, 4096, 333, 65536, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lengths(chunkAll(t, tt.r, p)); !slices.Equal(got, want) {
				t.Fatalf("boundaries differ with short reads:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// sizedReader returns reads of the given sizes in turn.
type sizedReader struct {
	data  []byte
	sizes []int
	i     int
}

func (r *sizedReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), r.sizes[r.i%len(r.sizes)])
	r.i++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func TestReadErrorIsReturned(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(pseudoRandom(14, 100<<10)), iotest.ErrReader(boom))
	c, err := NewChunker(r, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err := c.Next()
		if errors.Is(err, boom) {
			return
		}
		if err != nil {
			t.Fatalf("Next: %v; want %v", err, boom)
		}
	}
}

func TestStuckReaderFails(t *testing.T) {
	c, err := NewChunker(stuckReader{}, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("Next on a reader that returns nothing: %v; want io.ErrNoProgress", err)
	}
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		p  Params
		ok bool
	}{
		{Params{}, true},
		{DefaultParams(), true},
		{Params{Min: 64, Avg: 128, Max: 256}, true},
		{Params{Min: 1 << 10, Avg: 1 << 18, Max: MaxSize}, true},
		{Params{Min: 32, Avg: 128, Max: 256}, false},
		{Params{Min: 4096, Avg: 4096, Max: 8192}, false},
		{Params{Min: 4096, Avg: 10000, Max: 65536}, false},
		{Params{Min: 4096, Avg: 16384, Max: 16384}, false},
		{Params{Min: 4096, Avg: 16384, Max: MaxSize + 1}, false},
		{Params{Min: -1, Avg: 16384, Max: 65536}, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.p), func(t *testing.T) {
			err := tt.p.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate: %v; want ok=%v", err, tt.ok)
			}
			_, err = NewChunker(bytes.NewReader(nil), tt.p)
			if (err == nil) != tt.ok {
				t.Fatalf("NewChunker: %v; want ok=%v", err, tt.ok)
			}
		})
	}
}

// FuzzChunker checks that boundaries never depend on how the input is read,
// that every chunk is within bounds, and that the chunks add up to the input.
func FuzzChunker(f *testing.F) {
	f.Add([]byte("hello"), uint8(1), uint8(3))
	f.Add(pseudoRandom(15, 5000), uint8(7), uint8(200))
	f.Fuzz(func(t *testing.T, data []byte, a, b uint8) {
		p := Params{Min: 64, Avg: 256, Max: 1024}
		want := chunkAll(t, bytes.NewReader(data), p)
		r := &sizedReader{data: data, sizes: []int{int(a), int(b), 1}}
		got := chunkAll(t, r, p)
		if !slices.Equal(lengths(got), lengths(want)) {
			t.Fatalf("read sizes %d,%d changed boundaries: %v vs %v", a, b, lengths(got), lengths(want))
		}
		for i, c := range got {
			if len(c) > p.Max || len(c) == 0 || (i < len(got)-1 && len(c) < p.Min) {
				t.Fatalf("chunk %d has %d bytes", i, len(c))
			}
		}
		if !bytes.Equal(bytes.Join(got, nil), data) {
			t.Fatal("chunks do not concatenate to the input")
		}
	})
}
