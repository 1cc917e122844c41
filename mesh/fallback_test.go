package mesh

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

// ownedBy returns a random chunk, not on the WAN yet, that m's view gives to owner.
func ownedBy(t *testing.T, m *Mesh, owner string) (cid.Cid, []byte) {
	t.Helper()
	for range 1000 {
		data := make([]byte, 4096)
		_, _ = rand.Read(data)
		c := chunk.Sum(data)
		if m.Owner(c) == owner {
			return c, data
		}
	}
	t.Fatalf("no chunk owned by %s in 1000 tries", owner)
	return cid.Cid{}, nil
}

// With a fallback delay, a member whose chunk's owner fails fast asks the
// owner again rather than fetching from the WAN itself at once; without it, it
// takes over at once (and here fails too, since the WAN lacks the chunk).
func TestFallbackDelay(t *testing.T) {
	w := newTestWAN(t)
	key := siteKey(t)
	nodes := startSite(t, key, w, 2, siteOpts{config: func(i int, cfg *Config) {
		if i == 1 {
			cfg.FallbackDelay = 20 * time.Second
		}
	}})
	owner, asker := nodes[0].m, nodes[1].m
	c, data := ownedBy(t, asker, owner.Name())

	// The chunk reaches the WAN only after the owner failed to fetch it once.
	go func() {
		time.Sleep(1500 * time.Millisecond)
		w.mu.Lock()
		w.chunks[c.String()] = data
		w.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, o, err := asker.Fetch(ctx, c)
	if err != nil {
		t.Fatalf("fetch with a fallback delay: %v", err)
	}
	if o.Peer != owner.Name() {
		t.Errorf("chunk came from %+v, want the owner %s", o, owner.Name())
	}
	if _, _, by := w.served(); by[c.String()][asker.Name()] != 0 {
		t.Errorf("the asker fetched the chunk from the WAN itself: %v", by[c.String()])
	}

	// Without the delay the owner's first failure sends the asker to the WAN,
	// which lacks the chunk too: the fetch fails.
	c2, _ := ownedBy(t, owner, asker.Name())
	if _, o, err := owner.Fetch(ctx, c2); err == nil {
		t.Fatalf("a chunk on no WAN was fetched, from %+v", o)
	}
}
