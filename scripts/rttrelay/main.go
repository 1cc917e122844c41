// Command rttrelay relays TCP connections from a loopback address to another,
// holding every byte for a fixed delay in each direction: a far link's round
// trip where netem is not at hand. scripts/bench-rtt.sh puts it between a node
// and its seed.
//
//	rttrelay -listen 127.0.0.1:PORT -to 127.0.0.1:PORT -rtt 50ms
//
// Bandwidth is not limited; only latency is added. Bytes read at once are
// sent together after the delay, so a relayed stream keeps its pace.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept on")
	to := flag.String("to", "", "address to relay to")
	rtt := flag.Duration("rtt", 50*time.Millisecond, "round trip added: half each way")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rttrelay:", err)
		os.Exit(1)
	}
	fmt.Println(l.Addr())
	if err := serve(ctx, l, *to, *rtt/2); err != nil {
		fmt.Fprintln(os.Stderr, "rttrelay:", err)
		os.Exit(1)
	}
}

// serve relays each connection l accepts to the address to, delaying each
// direction by oneway, until ctx ends.
func serve(ctx context.Context, l net.Listener, to string, oneway time.Duration) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			relay(ctx, c, to, oneway)
		}()
	}
}

// relay joins c to a new connection to the address to, both ways delayed.
func relay(ctx context.Context, c net.Conn, to string, oneway time.Duration) {
	defer c.Close()
	d := net.Dialer{Timeout: 10 * time.Second}
	s, err := d.DialContext(ctx, "tcp", to)
	if err != nil {
		return
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); s.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		delayCopy(s, c, oneway)
		close(done)
	}()
	delayCopy(c, s, oneway)
	<-done
}

type piece struct {
	b  []byte
	at time.Time
}

// delayCopy copies src to dst, each read's bytes written oneway after they
// were read, and then closes dst's writing half (or all of it), so that the
// end of the stream is relayed too.
func delayCopy(dst, src net.Conn, oneway time.Duration) {
	pieces := make(chan piece, 1024)
	go func() {
		defer close(pieces)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				pieces <- piece{b[:n], time.Now().Add(oneway)}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for p := range pieces {
		if failed {
			continue // drain, so the reader ends
		}
		time.Sleep(time.Until(p.at))
		if _, err := dst.Write(p.b); err != nil {
			failed = true
			src.Close()
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && !failed {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}
