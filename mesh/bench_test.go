package mesh

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

// BenchmarkLANTransfer moves chunks from one node to another over loopback
// with the chunk protocol (verified, and checked by the serving store), 8 at
// a time, and reports its throughput as a ratio of a plain HTTP download of
// the same bytes from memory, 8 at a time, measured in the same run
// ("x-http"; the brief asks for at least 0.7). Chunks of chunk.MaxSize, and
// of 19 KiB, the mean chunk of real releases (scripts/bench-node.sh).
func BenchmarkLANTransfer(b *testing.B) {
	for _, bc := range []struct {
		name    string
		n, size int
	}{
		{"1MiB", 32, chunk.MaxSize},
		{"19KiB", 1600, 19 << 10},
	} {
		b.Run(bc.name, func(b *testing.B) { benchLANTransfer(b, bc.n, bc.size) })
	}
}

func benchLANTransfer(b *testing.B, n, size int) {
	w := newTestWAN(b)
	cids, total := w.addFixed(b, n, size)
	nodes := startSite(b, siteKey(b), w, 2, siteOpts{})
	src, dst := nodes[0], nodes[1]
	ctx := context.Background()
	for _, c := range cids {
		data, _, err := wanClient{url: w.srv.URL}.FetchChunk(ctx, c)
		if err != nil {
			b.Fatal(err)
		}
		if err := src.st.Put(ctx, c, data); err != nil {
			b.Fatal(err)
		}
	}
	const par = 8
	run := func(get func(cid.Cid) error) time.Duration {
		start := time.Now()
		ch := make(chan cid.Cid)
		var wg sync.WaitGroup
		for range par {
			wg.Go(func() {
				for c := range ch {
					if err := get(c); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for _, c := range cids {
			ch <- c
		}
		close(ch)
		wg.Wait()
		return time.Since(start)
	}
	var meshTime, httpTime time.Duration
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		meshTime += run(func(c cid.Cid) error {
			_, err := dst.m.request(ctx, src.m.pid, c, flagStore)
			return err
		})
		httpTime += run(func(c cid.Cid) error {
			_, _, err := wanClient{url: w.srv.URL}.FetchChunk(ctx, c)
			return err
		})
	}
	b.ReportMetric(float64(httpTime)/float64(meshTime), "x-http")
	b.ReportMetric(float64(total)*float64(b.N)/meshTime.Seconds()/(1<<20), "MiB/s-mesh")
	b.ReportMetric(float64(total)*float64(b.N)/httpTime.Seconds()/(1<<20), "MiB/s-http")
}
