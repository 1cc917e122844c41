// Package demo runs patchmesh end to end on one machine: a seed and a site of
// nodes on loopback, each with its own folders, a published release spreading
// through the site, and a second version that costs only its changed bytes.
package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/repo"
	"github.com/patchmesh/patchmesh/node"
	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/seed"
)

// Options of a demo run. The zero value of each field is documented.
type Options struct {
	Dir   string // working folder; zero: a new temporary folder, removed at the end
	Nodes int    // nodes in the site; zero: 4
	// SizeMiB of the sample release; zero: 32.
	SizeMiB int
	// Exit after both releases reached every node instead of running until ctx ends.
	Exit   bool
	Logger *slog.Logger // zero: discard
}

// Run runs the demo, writing what happens for people to out.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	if opts.Nodes <= 0 {
		opts.Nodes = 4
	}
	if opts.SizeMiB <= 0 {
		opts.SizeMiB = 32
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "patchmesh-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	fmt.Fprintf(out, "patchmesh demo in %s\n", dir)

	// Publisher side: a key, a trust root, a release.
	key, err := manifest.GenerateKey()
	if err != nil {
		return err
	}
	root, err := manifest.NewTrustRoot(1, key.Public())
	if err != nil {
		return err
	}
	rootEnv, err := root.Sign(key)
	if err != nil {
		return err
	}
	trust := filepath.Join(dir, "trust.json")
	repoDir := filepath.Join(dir, "repo")
	for _, p := range []string{trust, filepath.Join(repoDir, repo.RootFile), filepath.Join(repoDir, filepath.FromSlash(repo.RootPath(1)))} {
		if err := repo.WriteFileAtomic(p, rootEnv, 0o644); err != nil {
			return err
		}
	}
	// Every way out stops the seed and the nodes before the folder they use
	// is removed (deferred above, so run after this).
	ctx, cancel := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(ctx)
	defer func() {
		cancel()
		_ = g.Wait()
	}()
	sd, err := seed.New(seed.Config{Repo: repoDir, Listen: "127.0.0.1:0", API: "127.0.0.1:0", Logger: opts.Logger})
	if err != nil {
		return err
	}
	g.Go(func() error { return sd.Run(ctx) })
	select {
	case <-sd.Ready():
	case <-ctx.Done():
		return g.Wait()
	}
	fmt.Fprintf(out, "seed serving http://%s (dashboard http://%s/)\n", sd.Addr(), sd.APIAddr())

	siteKey := filepath.Join(dir, "site.key")
	if err := node.GenerateSiteKey(siteKey); err != nil {
		return err
	}
	nodes := make([]*node.Node, opts.Nodes)
	var first string
	for i := range nodes {
		cfg := node.DefaultConfig()
		cfg.Name = "node-" + strconv.Itoa(i+1)
		cfg.DataDir = filepath.Join(dir, cfg.Name, "data")
		cfg.InstallDir = filepath.Join(dir, cfg.Name, "app")
		cfg.Trust = trust
		cfg.Sources = []string{"http://" + sd.Addr()}
		cfg.API = "127.0.0.1:0"
		cfg.Mesh.SiteKey = siteKey
		cfg.Mesh.Gossip = "127.0.0.1:0"
		cfg.Mesh.P2P = []string{"/ip4/127.0.0.1/tcp/0"}
		if first != "" {
			cfg.Mesh.Join = []string{first}
		}
		f := false
		cfg.Mesh.MDNS = &f
		cfg.Logger = opts.Logger
		n, err := node.New(cfg)
		if err != nil {
			return err
		}
		nodes[i] = n
		g.Go(func() error { return n.Run(ctx) })
		if first == "" {
			if err := waitFor(ctx, func() bool { return n.Status().Node.Gossip != "" }); err != nil {
				return g.Wait()
			}
			first = n.Status().Node.Gossip
		}
	}
	// Let the site see all its members before the first check, so each chunk has
	// one owner in every node's view.
	if err := waitFor(ctx, func() bool { return alivePeers(nodes[len(nodes)-1]) == len(nodes) }); err != nil {
		return g.Wait()
	}
	fmt.Fprintf(out, "site of %d nodes formed\n", len(nodes))

	// The first release arrives at a formed site, as releases do.
	src := filepath.Join(dir, "build")
	if err := writeSample(src, opts.SizeMiB, 0); err != nil {
		return err
	}
	sum1, err := repo.Publish(ctx, repoDir, src, repo.PublishOptions{Channel: "stable", Version: "1.0.0", Keys: []manifest.PrivateKey{key}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\npublished stable 1.0.0: %d files, %s in %d chunks\n", sum1.Files, mib(sum1.Bytes), sum1.Chunks)
	if err := spread(ctx, out, nodes, "1.0.0", sd, sd.Stats().ChunkBytes, sum1); err != nil {
		return err
	}

	// A second version: about 1% of the bytes change.
	if err := writeSample(src, opts.SizeMiB, 1); err != nil {
		return err
	}
	sum2, err := repo.Publish(ctx, repoDir, src, repo.PublishOptions{Channel: "stable", Version: "1.1.0", Keys: []manifest.PrivateKey{key}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\npublished stable 1.1.0: %s new of %s (%.2f%%); %d deltas of %s rebuild %s of it from 1.0.0\n",
		mib(sum2.NewBytes), mib(sum2.Bytes), 100*float64(sum2.NewBytes)/float64(sum2.Bytes), sum2.Deltas, mib(sum2.DeltaBytes), mib(sum2.DeltaOutput))
	if err := spread(ctx, out, nodes, "1.1.0", sd, sd.Stats().ChunkBytes, sum2); err != nil {
		return err
	}

	fmt.Fprintln(out, "\ndashboards:")
	for _, n := range nodes {
		st := n.Status()
		fmt.Fprintf(out, "  %-8s http://%s/\n", st.Node.Name, st.Node.API)
	}
	if opts.Exit {
		fmt.Fprintln(out, "demo done")
		return nil
	}
	fmt.Fprintln(out, "\nrunning; press Ctrl-C to stop")
	err = g.Wait()
	fmt.Fprintln(out, "stopped")
	return err
}

// spread asks every node to check now and waits until all run version.
// before is what the seed had served when the release was published.
func spread(ctx context.Context, out io.Writer, nodes []*node.Node, version string, sd *seed.Seed, before int64, sum *repo.Summary) error {
	start := time.Now()
	for _, n := range nodes {
		go n.Check(ctx, false)
	}
	err := waitFor(ctx, func() bool {
		for _, n := range nodes {
			if c := n.Status().Current; c == nil || c.Version != version {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	wan := sd.Stats().ChunkBytes - before
	fmt.Fprintf(out, "%s reached all %d nodes in %s; the seed served %s of chunks and deltas (%.2fx the %s of new chunks)\n",
		version, len(nodes), time.Since(start).Round(10*time.Millisecond), mib(wan), ratio(wan, sum.NewBytes), mib(sum.NewBytes))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "  node\tfrom WAN\tfrom LAN\tin store\trebuilt\tdashboard\t")
	for _, n := range nodes {
		st := n.Status()
		var r api.ReleaseInfo
		if st.Current != nil {
			r = *st.Current
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\thttp://%s/\t\n", st.Node.Name, mib(r.FromWAN), mib(r.FromLAN), mib(r.FromLocal), mib(r.Rebuilt), st.Node.API)
	}
	return w.Flush()
}

func alivePeers(n *node.Node) int {
	c := 0
	for _, p := range n.Status().Peers {
		if p.State == "alive" {
			c++
		}
	}
	return c
}

func waitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// writeSample writes a release tree: a large binary-like file, a few text files.
// Edition 1 changes about 1% of the bytes in scattered places.
func writeSample(dir string, sizeMiB, edition int) error {
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, sizeMiB<<20)
	for i := 0; i+8 <= len(big); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			big[i+k] = byte(v >> (8 * k))
		}
	}
	if edition > 0 {
		edit := rand.New(rand.NewPCG(3, uint64(edition)))
		span := len(big) / 100 / 16
		for range 16 {
			off := edit.IntN(len(big) - span)
			for k := range span {
				big[off+k] ^= 0x5a
			}
		}
	}
	files := map[string][]byte{
		"bin/app":          big,
		"README.txt":       []byte(fmt.Sprintf("sample application, edition %d\n", edition)),
		"conf/default.ini": []byte("[app]\nlisten = 127.0.0.1:8080\n"),
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
