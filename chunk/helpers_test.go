package chunk

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// pseudoRandom returns n bytes from splitmix64 seeded with seed. It is written
// out here, not taken from math/rand, so golden data never moves with Go.
func pseudoRandom(seed uint64, n int) []byte {
	out := make([]byte, n+8)
	x := seed
	for i := 0; i < n; i += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		for j := 0; j < 8; j++ {
			out[i+j] = byte(z >> (8 * j))
		}
	}
	return out[:n]
}

// chunkAll cuts r into chunks and returns copies of them.
func chunkAll(tb testing.TB, r io.Reader, p Params) [][]byte {
	tb.Helper()
	c, err := NewChunker(r, p)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for {
		b, err := c.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, bytes.Clone(b))
	}
}

// lengths returns the length of each chunk.
func lengths(chunks [][]byte) []int {
	out := make([]int, len(chunks))
	for i, c := range chunks {
		out[i] = len(c)
	}
	return out
}
