package store

import (
	"bufio"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
)

// mappedVlogRSS returns the resident bytes of the value-log mappings under dir.
func mappedVlogRSS(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && len(fields) >= 5 { // a mapping's header line
			in = len(fields) >= 6 && strings.HasPrefix(fields[5], dir+"/") && strings.HasSuffix(fields[5], ".vlog")
			continue
		}
		if in && fields[0] == "Rss:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

func TestMovingChunksDoesNotGrowResidentMemory(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), Options{})
	// Chunks in badger's value log, as stores kept them before packs: an
	// upgraded node still reads those through the mapping. Packs are not
	// mapped at all.
	s.legacy = true
	m := &chunkMaker{base: testChunk(9, 64<<10)}
	const moved = 128 << 20
	var cids []cid.Cid
	for range moved / (64 << 10) {
		c, d := m.next()
		if err := s.Put(ctx, c, d); err != nil {
			t.Fatal(err)
		}
		cids = append(cids, c)
	}
	for _, c := range cids {
		if _, err := s.WriteTo(ctx, c, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	rss := mappedVlogRSS(t, s.dir)
	t.Logf("value-log pages resident after moving %d MiB: %d MiB", 2*moved>>20, rss>>20)
	if rss > 2*trimEvery {
		t.Fatalf("value-log mappings hold %d MiB resident after moving %d MiB; want at most %d MiB", rss>>20, 2*moved>>20, 2*trimEvery>>20)
	}
}
