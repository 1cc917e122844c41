package mesh

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/patchmesh/patchmesh/chunk"
)

// BenchmarkLANTransfer moves 1 MiB chunks from one node to another over
// loopback with the chunk protocol (verified), 8 at a time, and reports its
// throughput as a ratio of a plain HTTP download of the same bytes, 8 at a
// time, measured in the same run ("x-http"; the brief asks for at least 0.5).
func BenchmarkLANTransfer(b *testing.B) {
	w := newTestWAN(b)
	cids, total := w.addFixed(b, 32, chunk.MaxSize)
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
