package mesh

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"
)

// mapDocs is a Docs of fixed documents.
type mapDocs map[string][]byte

func (d mapDocs) ReadDoc(_ context.Context, p string) ([]byte, error) {
	b, ok := d[p]
	if !ok {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	return b, nil
}

// TestFetchDoc: a member gets a signed document from the peers that hold it,
// those holding the newest release first, within its size bound; paths that are
// not documents are refused before anything is sent.
func TestFetchDoc(t *testing.T) {
	w := newTestWAN(t)
	head1, head2 := []byte(`{"head":1}`), []byte(`{"head":2}`)
	nodes := startSite(t, siteKey(t), w, 3, siteOpts{config: func(i int, cfg *Config) {
		switch i {
		case 1:
			cfg.Delegate = &testDelegate{docs: mapDocs{"channels/stable/head.json": head1}}
		case 2:
			cfg.Delegate = &testDelegate{docs: mapDocs{"channels/stable/head.json": head2, "manifests/stable/2.json": make([]byte, 4096)}}
		}
	}, mesh: func(i int, m *Mesh) {
		if i == 2 {
			m.SetHolding(2)
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	asker := nodes[0].m
	waitFor := func(cond func() bool) {
		deadline := time.Now().Add(20 * time.Second)
		for !cond() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Holding is gossiped: wait until the asker sees node-2 hold 2.
	waitFor(func() bool {
		for _, mb := range asker.Members() {
			if mb.Name == "node-2" && mb.Holding == 2 {
				return true
			}
		}
		return false
	})

	got, from, err := asker.FetchDoc(ctx, "channels/stable/head.json", 1<<10)
	if err != nil || string(got) != string(head2) || from != "node-2" {
		t.Fatalf("head: got %q from %s (%v), want node-2's newer head", got, from, err)
	}
	if _, _, err := asker.FetchDoc(ctx, "manifests/stable/2.json", 1024); err == nil {
		t.Error("a 4096-byte document was accepted under a 1024-byte bound")
	}
	if _, _, err := asker.FetchDoc(ctx, "manifests/stable/9.json", 1<<20); !errors.Is(err, ErrNoDoc) {
		t.Errorf("missing document: got %v, want ErrNoDoc", err)
	}
	for _, p := range []string{"chunks/ab/bafkrei", "../etc/passwd.json", "/root.json", "a/../b.json", "head"} {
		if _, _, err := asker.FetchDoc(ctx, p, 1<<20); err == nil || errors.Is(err, ErrNoDoc) {
			t.Errorf("path %q: got %v, want a refusal before asking anyone", p, err)
		}
	}
}
