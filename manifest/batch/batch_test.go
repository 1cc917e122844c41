package batch

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHeader(&buf, Found, 19_000); err != nil {
		t.Fatal(err)
	}
	if err := WriteHeader(&buf, Missing, 0); err != nil {
		t.Fatal(err)
	}
	st, n, err := ReadHeader(&buf, 1<<20)
	if err != nil || st != Found || n != 19_000 {
		t.Fatalf("first header: %d %d %v, want found, 19000", st, n, err)
	}
	st, n, err = ReadHeader(&buf, 1<<20)
	if err != nil || st != Missing || n != 0 {
		t.Fatalf("second header: %d %d %v, want missing, 0", st, n, err)
	}
	if _, _, err := ReadHeader(&buf, 1<<20); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestReadHeaderRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"unknown status", []byte{7, 0, 0, 0, 0, 0, 0, 0, 1}, ErrFormat},
		{"missing with a length", []byte{Missing, 0, 0, 0, 0, 0, 0, 0, 1}, ErrFormat},
		{"over the bound", []byte{Found, 0, 0, 0, 0, 0, 0x10, 0, 1}, ErrFormat},
		{"over the bound by far", []byte{Found, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrFormat},
		{"cut short", []byte{Found, 0, 0}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadHeader(bytes.NewReader(tt.in), 1<<20)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadHeader(% x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}
