package pipeline

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
	"github.com/patchmesh/patchmesh/manifest"
)

func TestPlanRelease(t *testing.T) {
	c := func(s string) cid.Cid { return chunk.Sum([]byte(s)) }
	ref := func(s string) manifest.ChunkRef { return manifest.ChunkRef{CID: c(s), Size: uint32(len(s))} }
	m := &manifest.Manifest{Files: []manifest.File{
		{Path: "a", Chunks: []manifest.ChunkRef{ref("x"), ref("yy"), ref("x")}},
		{Path: "link", Link: "a"},
		{Path: "b", Chunks: []manifest.ChunkRef{ref("zzz"), ref("yy")}},
		{Path: "empty"},
	}}
	p := planRelease(m)
	var got []cid.Cid
	for _, j := range p.jobs {
		got = append(got, j.c)
	}
	if want := []cid.Cid{c("x"), c("yy"), c("zzz")}; !slices.Equal(got, want) {
		t.Errorf("jobs %v, want the distinct chunks in first-use order %v", got, want)
	}
	if want := []int32{0, 1, 0, 2, 1}; !slices.Equal(p.refs, want) {
		t.Errorf("refs %v, want %v", p.refs, want)
	}
	if p.total != 6 {
		t.Errorf("total %d, want 6 (each distinct chunk once)", p.total)
	}
}

func TestReadiness(t *testing.T) {
	r := newReadiness(3)
	r.mark(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.await(ctx, 1); err != nil {
		t.Fatalf("await of a marked job: %v", err)
	}

	// A wake for another job, left from an abandoned wait, must not release
	// a wait for job 2.
	short, stop := context.WithCancel(ctx)
	stop()
	if err := r.await(short, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("await with a cancelled context: %v", err)
	}
	r.mark(0) // signals the abandoned wait for job 0
	got := make(chan error, 1)
	go func() { got <- r.await(ctx, 2) }()
	select {
	case err := <-got:
		t.Fatalf("await of job 2 returned %v before job 2 was marked", err)
	case <-time.After(50 * time.Millisecond):
	}
	r.mark(2)
	if err := <-got; err != nil {
		t.Fatalf("await of job 2 after mark: %v", err)
	}
}
