package source

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkSourceRead reads the 3 MiB test file through each kind of source
// and reports the time against a plain net/http download of the same file
// from the same kind of server, measured in the same run (x-plain-http).
func BenchmarkSourceRead(b *testing.B) {
	dir, files := testRepo(b)
	size := int64(len(files[bigPath]))
	httpSrv := serveDir(b, dir)
	ftpSrv := serveFTP(b, dir, "anonymous", "anonymous", nil)
	plain := func(n int) time.Duration {
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		start := time.Now()
		for range n {
			resp, err := client.Get(httpSrv.URL + "/" + bigPath)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return time.Since(start)
	}
	for _, bm := range []struct{ name, url string }{
		{"http", httpSrv.URL},
		{"ftp", "ftp://" + ftpSrv.addr},
		{"folder", dir},
	} {
		b.Run(bm.name, func(b *testing.B) {
			src := mustNew(b, bm.url, DefaultOptions())
			b.SetBytes(size)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				rc, err := src.Open(b.Context(), bigPath, size)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
					b.Fatalf("read %d bytes, %v", n, err)
				}
				rc.Close()
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(elapsed)/float64(plain(b.N)), "x-plain-http")
		})
	}
}
