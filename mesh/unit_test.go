package mesh

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/patchmesh/patchmesh/chunk"
)

// TestMetaSize: metadata stays under memberlist's cap, which it would panic
// on, whatever the addresses, and what fits decodes back.
func TestMetaSize(t *testing.T) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := peer.IDFromPrivateKey(k)
	long := "/dns4/" + strings.Repeat("a", 200) + ".example/tcp/4001"
	var many []ma.Multiaddr
	for i := range 40 {
		many = append(many, ma.StringCast(fmt.Sprintf("/ip6/2001:db8::%x/udp/%d/quic-v1", i, 40000+i)))
	}
	tests := []struct {
		name      string
		addrs     []ma.Multiaddr
		wantAddrs int
	}{
		{"no addresses", nil, 0},
		{"one address", many[:1], 1},
		{"many addresses", many, maxMetaAddrs},
		{"long addresses then short", []ma.Multiaddr{ma.StringCast(long), ma.StringCast(long), ma.StringCast(long), many[0]}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := nodeMeta{peerID: pid, addrs: tt.addrs, role: RoleDP, holding: ^uint64(0), running: 5, leaving: true}
			b := in.encode(memberlist.MetaMaxSize)
			if len(b) > memberlist.MetaMaxSize {
				t.Fatalf("metadata is %d bytes, over %d", len(b), memberlist.MetaMaxSize)
			}
			out, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if out.peerID != pid || out.role != RoleDP || out.holding != ^uint64(0) || out.running != in.running || !out.leaving {
				t.Errorf("decoded %+v, want %+v", out, in)
			}
			if len(out.addrs) != tt.wantAddrs {
				t.Errorf("decoded %d addresses, want %d", len(out.addrs), tt.wantAddrs)
			}
			for i, a := range out.addrs {
				if !slices.ContainsFunc(tt.addrs, a.Equal) {
					t.Errorf("address %d %s was not given", i, a)
				}
			}
		})
	}
}

// TestMetaWithoutRunning: metadata of a member older than the running field
// reads as running what it holds.
func TestMetaWithoutRunning(t *testing.T) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := peer.IDFromPrivateKey(k)
	b := nodeMeta{peerID: pid, holding: 7, running: 5}.encode(memberlist.MetaMaxSize)
	old := b[:len(b)-2] // without the empty status slot and running 5, a byte each
	withStatus := append(append(old[:len(old):len(old)], 3, 'a', 'b', 'c'), 5)
	for _, tt := range []struct {
		b    []byte
		want uint64
	}{{b, 5}, {old, 7}, {withStatus, 5}} {
		out, err := decodeMeta(tt.b)
		if err != nil || out.running != tt.want || out.holding != 7 {
			t.Errorf("decodeMeta = %+v, %v; want running %d, holding 7", out, err, tt.want)
		}
	}
}

// TestDecodeMetaRejectsGarbage: malformed metadata from a member is an
// error, never a panic.
func TestDecodeMetaRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {1}, {2, 0, 0}, {1, 0, 0, 200, 1, 2}, {1, 0, 0, 0, 0}} {
		if _, err := decodeMeta(b); !errors.Is(err, errMeta) {
			t.Errorf("decodeMeta(%x) = %v, want errMeta", b, err)
		}
	}
}

// TestHRWRemovalMovesOnlyItsChunks: removing a member moves exactly the
// chunks it owned; the others keep their owners. Only distribution points
// own chunks while any is live.
func TestHRWRemovalMovesOnlyItsChunks(t *testing.T) {
	m := func(names string, dps ...string) []candidate {
		var out []candidate
		for _, n := range strings.Fields(names) {
			c := candidate{name: n}
			if slices.Contains(dps, n) {
				c.role = RoleDP
			}
			out = append(out, c)
		}
		return out
	}
	tests := []struct {
		name       string
		before     []candidate
		remove     string
		wantOwners []string // who may own chunks before
	}{
		{"five members, one leaves", m("a b c d e"), "c", []string{"a", "b", "c", "d", "e"}},
		{"two members, one leaves", m("a b"), "a", []string{"a", "b"}},
		{"dps own, a dp leaves", m("a b c d e", "b", "d"), "b", []string{"b", "d"}},
		{"dps own, a plain member leaves", m("a b c d e", "b", "d"), "a", []string{"b", "d"}},
		{"last dp leaves, all own again", m("a b c", "b"), "b", []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var after []candidate
			for _, c := range tt.before {
				if c.name != tt.remove {
					after = append(after, c)
				}
			}
			const keys = 3000
			owned := map[string]int{}
			for i := range keys {
				key := chunk.Sum(fmt.Appendf(nil, "chunk %d", i)).Bytes()
				ob, oa := hrwOrder(key, tt.before), hrwOrder(key, after)
				owned[ob[0]]++
				if !slices.Contains(tt.wantOwners, ob[0]) {
					t.Fatalf("key %d owned by %s, want one of %v", i, ob[0], tt.wantOwners)
				}
				if ob[0] != tt.remove && oa[0] != ob[0] {
					t.Fatalf("key %d moved from %s to %s though %s left", i, ob[0], oa[0], tt.remove)
				}
				if ob[0] == tt.remove {
					if oa[0] == tt.remove {
						t.Fatalf("key %d still owned by the removed member", i)
					}
					// Takeover: the next by the old order, when the
					// eligible set only lost the leaver.
					if len(eligible(after)) == len(eligible(tt.before))-1 && oa[0] != ob[1] {
						t.Fatalf("key %d: new owner %s, want the old second %s", i, oa[0], ob[1])
					}
				}
			}
			// Rendezvous spreads ownership evenly: each owner gets at least
			// half its fair share of 3000 keys.
			for _, n := range tt.wantOwners {
				if fair := keys / len(tt.wantOwners); owned[n] < fair/2 {
					t.Errorf("%s owns %d keys, fair share %d", n, owned[n], fair)
				}
			}
		})
	}
}

// TestConfigValidation: New refuses bad configs with ErrConfig.
func TestConfigValidation(t *testing.T) {
	key := make([]byte, 32)
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no site key", func(c *Config) { c.SiteKey = nil }},
		{"no delegate", func(c *Config) { c.Delegate = nil }},
		{"short site key", func(c *Config) { c.SiteKey = key[:16] }},
		{"gossip host name", func(c *Config) { c.GossipAddr = "localhost:7946" }},
		{"gossip without port", func(c *Config) { c.GossipAddr = "127.0.0.1" }},
		{"unknown role", func(c *Config) { c.Role = "server" }},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }},
		{"long name", func(c *Config) { c.Name = strings.Repeat("n", 200) }},
		{"p2p host name", func(c *Config) { c.P2PAddrs = []string{"localhost:4001"} }},
		{"p2p bad multiaddr", func(c *Config) { c.P2PAddrs = []string{"/ip4/nonsense/tcp/1"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.SiteKey = key
			cfg.Delegate = &testDelegate{}
			tt.edit(&cfg)
			if _, err := New(cfg, openStore(t)); !errors.Is(err, ErrConfig) {
				t.Errorf("New = %v, want ErrConfig", err)
			}
		})
	}
	cfg := Config{SiteKey: key, Delegate: &testDelegate{}}
	m, err := New(cfg, openStore(t))
	if err != nil {
		t.Fatalf("zero config with a key: %v", err)
	}
	if m.cfg.Concurrency != DefaultConcurrency || m.cfg.GossipAddr != DefaultGossipAddr || len(m.cfg.P2PAddrs) != 4 || m.Name() == "" {
		t.Errorf("zero config not defaulted: %+v", m.cfg)
	}
}

// TestP2PListenAddrs: host:port, as the help offers, means TCP and QUIC on
// that address; multiaddrs pass as they are.
func TestP2PListenAddrs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"127.0.0.1:14001", []string{"/ip4/127.0.0.1/tcp/14001", "/ip4/127.0.0.1/udp/14001/quic-v1"}},
		{"[::1]:14001", []string{"/ip6/::1/tcp/14001", "/ip6/::1/udp/14001/quic-v1"}},
		{"0.0.0.0:0", []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}},
		{"/ip4/127.0.0.1/tcp/4001", []string{"/ip4/127.0.0.1/tcp/4001"}},
	}
	for _, tt := range tests {
		got, err := P2PListenAddrs(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("P2PListenAddrs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestIdentityFileKeepsPeerID: the peer id survives a restart, and the key
// file is private.
func TestIdentityFileKeepsPeerID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	cfg := DefaultConfig()
	cfg.SiteKey = make([]byte, 32)
	cfg.Delegate = &testDelegate{}
	cfg.IdentityFile = path
	a, err := New(cfg, openStore(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, openStore(t))
	if err != nil {
		t.Fatal(err)
	}
	if a.PeerID() != b.PeerID() {
		t.Errorf("peer id changed across restarts: %s, then %s", a.PeerID(), b.PeerID())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, openStore(t)); err == nil {
		t.Errorf("New accepted a corrupt identity file")
	}
}

// TestMDNSMatch: mDNS answers from other sites, or from ourselves, are skipped.
func TestMDNSMatch(t *testing.T) {
	tag := siteTag([]byte("site key"))
	if tag == siteTag([]byte("other key")) {
		t.Fatal("two keys give one site tag")
	}
	ip := []byte{127, 0, 0, 1}
	tests := []struct {
		name   string
		fields []string
		want   string
	}{
		{"same site", mdnsTXT(tag, "b"), "127.0.0.1:7946"},
		{"other site", mdnsTXT(siteTag([]byte("other key")), "b"), ""},
		{"ourselves", mdnsTXT(tag, "a"), ""},
		{"no tag", []string{"name=b"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := mdnsMatch(tag, "a", tt.fields, ip, 7946)
			if got != tt.want {
				t.Errorf("mdnsMatch = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHRWOwnerIsFirstInOrder: the owner picked without ordering is the first
// of the full order, with and without distribution points, and none of none.
func TestHRWOwnerIsFirstInOrder(t *testing.T) {
	if got := hrwOwner([]byte("k"), nil); got != "" {
		t.Errorf("owner among no members: %q", got)
	}
	sets := [][]candidate{
		{{name: "a"}},
		{{name: "a"}, {name: "b"}, {name: "c"}, {name: "d"}, {name: "e"}},
		{{name: "a"}, {name: "b", role: RoleDP}, {name: "c"}, {name: "d", role: RoleDP}},
	}
	for _, set := range sets {
		for i := range 500 {
			key := []byte(fmt.Sprintf("chunk-%d", i))
			if got, want := hrwOwner(key, set), hrwOrder(key, set)[0]; got != want {
				t.Fatalf("key %s, members %v: owner %q, first in order %q", key, set, got, want)
			}
		}
	}
}

// TestHRWBalanced: over many chunks, every member of a site of look-alike
// names owns close to its fair share, and for every pair of members each
// ranks first about half the time: the weights behave as independent.
func TestHRWBalanced(t *testing.T) {
	for _, names := range [][]string{
		{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10", "n11", "n12", "n13", "n14", "n15", "n16", "n17", "n18", "n19", "n20"},
		{"build-a1", "build-a2", "build-b1", "build-b2", "pc-0001", "pc-0002", "pc-0003", "pc-0010"},
	} {
		var cands []candidate
		for _, n := range names {
			cands = append(cands, candidate{name: n})
		}
		const keys = 20000
		owned := map[string]int{}
		above := map[[2]string]int{}
		for i := range keys {
			order := hrwOrder(chunk.Sum(fmt.Appendf(nil, "chunk %d", i)).Bytes(), cands)
			owned[order[0]]++
			for a := range order {
				for b := a + 1; b < len(order); b++ {
					above[[2]string{order[a], order[b]}]++
				}
			}
		}
		fair := keys / len(names)
		for _, n := range names {
			if d := owned[n] - fair; d < -fair/5 || d > fair/5 {
				t.Errorf("%s owns %d of %d chunks; fair share %d", n, owned[n], keys, fair)
			}
		}
		for _, a := range names {
			for _, b := range names {
				if a < b {
					if n := above[[2]string{a, b}]; n < keys*45/100 || n > keys*55/100 {
						t.Errorf("%s ranks above %s for %d of %d chunks, want about half", a, b, n, keys)
					}
				}
			}
		}
	}
}

// A member's status rides after its addresses, so members of older versions
// still read the rest, and the whole stays under the metadata limit.
func TestMetaStatus(t *testing.T) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := peer.IDFromPrivateKey(k)
	addrs := []ma.Multiaddr{ma.StringCast("/ip4/10.0.0.1/tcp/4001"), ma.StringCast("/ip4/10.0.0.1/udp/4001/quic-v1")}
	status := bytes.Repeat([]byte{7}, MaxStatus)
	m := nodeMeta{peerID: pid, addrs: addrs, holding: 5, status: status}
	got, err := decodeMeta(m.encode(512))
	if err != nil || !bytes.Equal(got.status, status) || len(got.addrs) != 2 || got.holding != 5 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// A tight limit drops addresses before the status, and never exceeds it.
	b := m.encode(len(pid) + 16 + MaxStatus)
	if len(b) > len(pid)+16+MaxStatus {
		t.Fatalf("%d bytes over the limit", len(b))
	}
	if got, err := decodeMeta(b); err != nil || !bytes.Equal(got.status, status) {
		t.Fatalf("tight: %+v, %v", got, err)
	}
	// Without a status the encoding is the old one.
	m.status = nil
	if got, err := decodeMeta(m.encode(512)); err != nil || got.status != nil {
		t.Fatalf("no status: %+v, %v", got, err)
	}
}

// TestResponseRoundTrip: a response reads back as written, whether its
// bytes were read into the buffer's room after the header (sent as they
// are) or come from elsewhere (copied in), and a buffer too small grows.
func TestResponseRoundTrip(t *testing.T) {
	raw := make([]byte, 40000)
	_, _ = rand.Read(raw)
	frame := []byte("\x28\xb5\x2f\xfd and then some bytes")
	inRoom := func(data []byte) ([]byte, *[]byte) {
		b := append(make([]byte, respRoom, respRoom+chunk.MaxSize), data...)
		return b[respRoom:], &b
	}
	apart := func(data []byte) ([]byte, *[]byte) {
		b := make([]byte, 0, respRoom+chunk.MaxSize)
		return data, &b
	}
	small := func(data []byte) ([]byte, *[]byte) {
		var b []byte
		return data, &b
	}
	tests := []struct {
		name    string
		status  byte
		data    []byte
		place   func([]byte) ([]byte, *[]byte)
		wantEnc byte
	}{
		{"raw, read into the room", statusOK, raw, inRoom, encRaw},
		{"raw, from elsewhere", statusOK, raw, apart, encRaw},
		{"raw, buffer grown", statusOK, raw, small, encRaw},
		{"frame, read into the room", statusOK, frame, inRoom, encZstd},
		{"frame, from elsewhere", statusOK, frame, apart, encZstd},
		{"one byte", statusOK, []byte{7}, inRoom, encRaw},
		{"not found", statusNotFound, nil, small, 0},
		{"busy", statusBusy, nil, apart, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, buf := tt.place(tt.data)
			var w bytes.Buffer
			if err := writeResponse(&w, tt.status, data, buf); err != nil {
				t.Fatal(err)
			}
			got, enc, status, err := readResponse(bufio.NewReader(&w))
			if status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
			if tt.status != statusOK {
				if err == nil || w.Len() != 0 {
					t.Errorf("%v, %d bytes left; want a status error and nothing after the status", err, w.Len())
				}
				return
			}
			if err != nil || enc != tt.wantEnc || !bytes.Equal(got, tt.data) || w.Len() != 0 {
				t.Errorf("read %d bytes, encoding %d, %v, %d bytes left; want the %d written, encoding %d", len(got), enc, err, w.Len(), len(tt.data), tt.wantEnc)
			}
		})
	}
}
