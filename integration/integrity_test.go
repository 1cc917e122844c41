package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/patchmesh/patchmesh/node/api"
)

// The store is damaged at damageSpots places of the release's big file,
// damageStep apart from damageAt on: far from anything a test edits, so the
// damaged chunks are ones the next release reuses. One chunk in a pack is
// damaged per place; with many, a peer that owns half the chunks of a site of
// two still asks the damaged member for some of them.
const (
	damageAt    = 2<<20 + 4321
	damageStep  = 96 << 10 // past the largest chunk: a new chunk each time
	damageSpots = 16
)

// damaged is a node whose store was damaged while it was stopped.
type damaged struct {
	pub    *publisher
	src    string // the tree of 1.0.0
	seed   *seedProc
	n      *nodeProc
	chunks int64 // the chunks it held before the damage
}

// damagedNode publishes 1.0.0, installs it on a node, stops the node, flips
// bytes of chunks inside its store's files and starts it again.
func damagedNode(t *testing.T, o nodeOpts) damaged {
	t.Helper()
	d := damaged{pub: newPublisher(t), src: filepath.Join(t.TempDir(), "tree")}
	makeTree(t, d.src, 4, 21)
	d.pub.Publish("1.0.0", d.src)
	d.seed = newSeed(t, d.pub.Repo)
	o.Trust, o.Sources = d.pub.Trust, []string{d.seed.URL}
	d.n = newNode(t, o)
	if r := d.n.Update(t); r.code != 0 {
		t.Fatalf("update to 1.0.0: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	d.n.WaitVersion(t, "1.0.0", time.Minute)
	d.chunks = d.n.Status(t).Store.Chunks
	d.n.Stop()
	big, err := os.ReadFile(filepath.Join(d.src, "bin", "app"))
	if err != nil {
		t.Fatal(err)
	}
	for k := range damageSpots {
		at := damageAt + k*damageStep
		damageStore(t, d.n.Data, big[at:at+64])
	}
	d.n.Restart()
	waitFor(t, 30*time.Second, func() bool { _, err := d.n.status(); return err == nil }, d.n.Name+" API to answer again")
	return d
}

// damageStore flips bytes of the stored chunk holding want, as a bad disk
// sector or a stray write would, with the node stopped: in a pack, or in
// badger's value log for a store from before packs. (Badger, on opening,
// cuts its newest value log short at a damaged entry: the chunks stored
// after it read as empty, so there one flip damages many chunks.)
func damageStore(t *testing.T, dataDir string, want []byte) {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(dataDir, "store", "packs", "*.pack"))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no pack in %s: %v", dataDir, err)
	}
	logs, err := filepath.Glob(filepath.Join(dataDir, "store", "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	logs = append(packs, logs...)
	for _, p := range logs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(data, want)
		if i < 0 {
			continue
		}
		for k := range 16 {
			data[i+k] ^= 0xff
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("flipped 16 bytes at offset %d of %s", i, filepath.Base(p))
		return
	}
	t.Fatalf("chunk bytes not found in any of %d pack and value-log files", len(logs))
}

// TestDamagedStoreHeals: bytes flipped in a stopped node's store are found
// when the next release reuses the chunk; the chunk is dropped and fetched
// again, and the update succeeds.
func TestDamagedStoreHeals(t *testing.T) {
	d := damagedNode(t, nodeOpts{Name: "damaged"})
	writeFile(t, filepath.Join(d.src, "VERSION"), []byte("1.1.0\n"))
	d.pub.Publish("1.1.0", d.src)
	if r := d.n.Update(t); r.code != 0 {
		t.Fatalf("update to 1.1.0 over a damaged store: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	d.n.WaitVersion(t, "1.1.0", time.Minute)
	sameTree(t, d.src, filepath.Join(d.n.Install, "current"))
	st := d.n.Status(t)
	if st.Store.DamagedChunks == 0 {
		t.Errorf("store reports no damaged chunk: %+v", st.Store)
	}
	if !d.n.HasError(t, "damaged", "dropped") {
		t.Errorf("no error about the damaged chunks: %+v", st.Errors)
	}
}

// TestDamagedStoreNotServed: a peer fetching a release from a member whose
// store is damaged never receives a damaged byte: the member drops the chunk
// and serves it good (as owner) or says it lacks it.
func TestDamagedStoreNotServed(t *testing.T) {
	key := siteKey(t)
	d := damagedNode(t, nodeOpts{Name: "damaged", SiteKey: key})
	b := newNode(t, nodeOpts{Name: "fresh", Trust: d.pub.Trust, Sources: []string{d.seed.URL}, SiteKey: key, Join: []string{d.n.Gossip}})
	if r := b.Update(t); r.code != 0 {
		t.Fatalf("update fresh node: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	b.WaitVersion(t, "1.0.0", time.Minute)
	sameTree(t, d.src, filepath.Join(b.Install, "current"))

	if st := d.n.Status(t); st.Store.DamagedChunks == 0 {
		t.Errorf("the damaged member found no damaged chunk: %+v", st.Store)
	}
	st := b.Status(t)
	if st.Counters.VerifyFailures != 0 {
		t.Errorf("the fresh node received %d chunks that did not verify: %+v", st.Counters.VerifyFailures, st.Errors)
	}
	if st.Bytes.LAN == 0 {
		t.Errorf("the fresh node got nothing from its site: the damaged member was never asked")
	}
	if log, _ := os.ReadFile(b.log); bytes.Contains(log, []byte("peer penalized")) {
		t.Errorf("the fresh node penalized a peer: it received bad bytes")
	}
}

// TestScrubDropsDamagedChunks: patchmesh node scrub finds the damaged chunks
// before anything reads them, drops them, fetches them again for the kept
// release, and the metrics count them.
func TestScrubDropsDamagedChunks(t *testing.T) {
	d := damagedNode(t, nodeOpts{Name: "damaged"})
	r := pm(t, "node", "scrub", "--api", d.n.API, "--json")
	if r.code != 3 {
		t.Fatalf("scrub of a damaged store: exit %d, want 3: %s %s", r.code, r.stdout, r.stderr)
	}
	var res api.ScrubResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("scrub --json: %v\n%s", err, r.stdout)
	}
	if res.Damaged == 0 || res.Refetched != res.Damaged || res.Chunks != d.chunks {
		t.Errorf("scrub = %d chunks, %d damaged, %d fetched again; want %d chunks, all damaged fetched again (%s)",
			res.Chunks, res.Damaged, res.Refetched, d.chunks, res.Message)
	}
	st := d.n.Status(t)
	if st.Store.Chunks != d.chunks || st.Store.DamagedChunks != res.Damaged {
		t.Errorf("store after scrub: %+v; want %d chunks, %d damaged", st.Store, d.chunks, res.Damaged)
	}

	fams, text := scrapeMetrics(t, d.n)
	lint(t, d.n.Name, text)
	for name, want := range map[string]float64{
		"patchmesh_store_damaged_chunks_total": float64(res.Damaged),
		"patchmesh_scrub_passes_total":         1,
		"patchmesh_scrub_chunks_total":         float64(res.Chunks),
		"patchmesh_scrub_bytes_total":          float64(res.Bytes),
	} {
		if got := sample(fams, name, ""); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	// Healed: a second pass finds nothing, and the release still verifies.
	if r := pm(t, "node", "scrub", "--api", d.n.API); r.code != 0 || !strings.Contains(r.stdout, " 0 damaged") {
		t.Errorf("second scrub: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestLyingPeerCounted: a member that serves bad bytes (a build that flips a
// byte of every chunk it serves) shows in the fetching node's verify_failures,
// per-peer metric and recent errors, by name; the release still arrives.
func TestLyingPeerCounted(t *testing.T) {
	liarBin := filepath.Join(t.TempDir(), "patchmesh-liar")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-tags", "patchmesh_liar", "-o", liarBin, "../cmd/patchmesh").CombinedOutput(); err != nil {
		t.Fatalf("build the lying node: %v\n%s", err, out)
	}
	pub := newPublisher(t)
	src := filepath.Join(t.TempDir(), "tree")
	makeTree(t, src, 2, 31)
	pub.Publish("1.0.0", src)
	seed := newSeed(t, pub.Repo)
	key := siteKey(t)
	liar := newNode(t, nodeOpts{Name: "liar", Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: key, Binary: liarBin})
	if r := liar.Update(t); r.code != 0 {
		t.Fatalf("update liar: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	honest := newNode(t, nodeOpts{Name: "honest", Trust: pub.Trust, Sources: []string{seed.URL}, SiteKey: key, Join: []string{liar.Gossip}})
	if r := honest.Update(t); r.code != 0 {
		t.Fatalf("update honest node: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	honest.WaitVersion(t, "1.0.0", time.Minute)
	sameTree(t, src, filepath.Join(honest.Install, "current"))

	st := honest.Status(t)
	if st.Counters.VerifyFailures == 0 || st.Counters.VerifyFailuresByPeer["liar"] != st.Counters.VerifyFailures {
		t.Errorf("verify_failures = %d, by peer %v; want some, all from liar", st.Counters.VerifyFailures, st.Counters.VerifyFailuresByPeer)
	}
	if !honest.HasError(t, "peer liar", "do not match") {
		t.Errorf("no recent error naming the lying peer: %+v", st.Errors)
	}
	fams, text := scrapeMetrics(t, honest)
	lint(t, honest.Name, text)
	if got := sampleLabel(fams, "patchmesh_peer_verify_failures_total", "peer", "liar"); got != float64(st.Counters.VerifyFailures) {
		t.Errorf(`patchmesh_peer_verify_failures_total{peer="liar"} = %v, want %d`, got, st.Counters.VerifyFailures)
	}
	if got := sample(fams, "patchmesh_verify_failures_total", ""); got != float64(st.Counters.VerifyFailures) {
		t.Errorf("patchmesh_verify_failures_total = %v, want %d", got, st.Counters.VerifyFailures)
	}
}

// lint fails the test on any promlint problem in a /metrics answer.
func lint(t *testing.T, name, text string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s /metrics lint: %s: %s", name, p.Metric, p.Text)
	}
}

// sampleLabel returns the value of the metric name whose label is value.
func sampleLabel(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}
