package store

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/patchmesh/patchmesh/chunk"
)

// TestStoreShutBelowReserve: a store whose disk is below the reserve does
// not open badger, and refuses every call with ErrNoSpace instead.
func TestStoreShutBelowReserve(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, Options{Reserve: 1 << 62})
	data := testChunk(1, 5000)
	c := chunk.Sum(data)
	if err := s.Put(ctx, c, data); !errors.Is(err, ErrNoSpace) {
		t.Errorf("put on a shut store: %v, want ErrNoSpace", err)
	}
	if _, err := s.Get(ctx, c); !errors.Is(err, ErrNoSpace) {
		t.Errorf("get on a shut store: %v, want ErrNoSpace", err)
	}
	if err := s.SetMeta("k", []byte("v")); !errors.Is(err, ErrNoSpace) {
		t.Errorf("set meta on a shut store: %v, want ErrNoSpace", err)
	}
	if err := s.Recover(); !errors.Is(err, ErrNoSpace) {
		t.Errorf("recover with no space: %v, want ErrNoSpace", err)
	}
	if err := s.Writable(); !errors.Is(err, ErrNoSpace) {
		t.Errorf("writable: %v, want ErrNoSpace", err)
	}
}

// TestStoreFolderRemoved removes the store's folder under it: Probe
// reports it, writes fail at once, and Close returns, where badger's own
// close would retry its flush forever.
func TestStoreFolderRemoved(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		data := testChunk(i, 30000)
		if err := s.Put(ctx, chunk.Sum(data), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Probe(); err != nil {
		t.Fatalf("probe of a healthy store: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Probe(); !errors.Is(err, ErrFailed) {
		t.Fatalf("probe after the folder went: %v, want ErrFailed", err)
	}
	data := testChunk(99, 30000)
	if err := s.Put(ctx, chunk.Sum(data), data); !errors.Is(err, ErrFailed) {
		t.Errorf("put after the folder went: %v, want ErrFailed", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("close of a store whose folder went reported nothing")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("close of a store whose folder went did not return")
	}
}
