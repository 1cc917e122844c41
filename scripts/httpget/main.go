// Command httpget fetches every URL listed in a file, many at once, with Go's
// net/http client, and throws the bodies away. scripts/bench-node.sh runs it
// beside curl on the same chunk files: what Go's HTTP stack alone costs, so
// that the rest of a node's time is its own (verify, store, assemble).
//
//	httpget -list FILE [-parallel N]
//
// FILE holds one URL per line. Every answer must be 200 with the whole body
// its Content-Length announced; httpget prints the bytes and the count.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

func main() {
	list := flag.String("list", "", "file of URLs, one per line")
	parallel := flag.Int("parallel", 16, "requests at once, each on a connection of its own")
	flag.Parse()
	bytes, n, err := run(context.Background(), *list, *parallel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpget:", err)
		os.Exit(1)
	}
	fmt.Printf("%d bytes in %d responses\n", bytes, n)
}

// run fetches the URLs listed in the file list, parallel at once, and
// returns the bytes of their bodies and how many there were.
func run(ctx context.Context, list string, parallel int) (int64, int, error) {
	urls, err := readList(list)
	if err != nil {
		return 0, 0, err
	}
	// As a node's source: kept-alive connections, at least one per request
	// at once, and no transparent gzip.
	tr := &http.Transport{MaxIdleConnsPerHost: max(parallel, 1), DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	defer tr.CloseIdleConnections()

	var next, bytes atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range max(parallel, 1) {
		g.Go(func() error {
			// As large as a chunk can be, as a node reads a body whole.
			buf := make([]byte, 1<<20)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(urls)) {
					return nil
				}
				n, err := get(ctx, client, urls[i], buf)
				if err != nil {
					return err
				}
				bytes.Add(n)
			}
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	return bytes.Load(), len(urls), nil
}

// get fetches u and returns the length of its body, read through buf.
func get(ctx context.Context, client *http.Client, u string, buf []byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("get %s: %s", u, resp.Status)
	}
	// The wrappers make CopyBuffer read into buf, not io.Discard's own.
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{resp.Body}, buf)
	if err != nil {
		return n, fmt.Errorf("get %s: %w", u, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("get %s: %d bytes, announced %d", u, n, resp.ContentLength)
	}
	return n, nil
}

func readList(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var urls []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			urls = append(urls, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(urls) == 0 {
		return nil, errors.New("no URLs in " + name)
	}
	return urls, nil
}
