package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/patchmesh/patchmesh/chunk"
)

// RoleDP is the role of a distribution point: when any live member has it,
// only distribution points own chunks (fetch them from the WAN).
const RoleDP = "dp"

// ErrConfig is wrapped by every configuration error New returns.
var ErrConfig = errors.New("invalid mesh config")

// Config configures a Mesh. The zero value of each field but SiteKey has the
// documented meaning; DefaultConfig spells the defaults out.
type Config struct {
	// SiteKey is the 32-byte site key, required: the memberlist SecretKey
	// (AES-GCM gossip) and so the site's identity. Nodes without it are not
	// members and cannot fetch chunks.
	SiteKey []byte
	// Name is the memberlist node name, unique in the site. Zero: the
	// hostname and a short form of the libp2p peer id.
	Name string
	// GossipAddr is the "host:port" memberlist listens on (TCP and UDP).
	// Zero: "0.0.0.0:7946". Port 0 picks a free port; GossipAddr() reports it.
	GossipAddr string
	// P2PAddrs are the libp2p listen addresses: multiaddrs, or "host:port"
	// ("[::1]:port" for IPv6) meaning TCP and QUIC on that IP and port.
	// Zero: TCP and QUIC on all IPv4 and IPv6 addresses, on ports the
	// kernel picks.
	P2PAddrs []string
	// Join lists gossip addresses of peers to join. Empty with MDNS set:
	// discover the site on the LAN.
	Join []string
	// MDNS enables zero-config discovery on the LAN (service
	// "_patchmesh._udp"; a hash of the site key in the TXT record keeps
	// other sites apart). Zero: off.
	MDNS bool
	// Role is "" or RoleDP. Zero: an ordinary member.
	Role string
	// IdentityFile holds the libp2p private key, created (mode 0600) if
	// absent, so the peer id survives restarts. Zero: an ephemeral identity.
	IdentityFile string
	// Concurrency bounds the chunk requests this node makes at once, to
	// peers and to its WAN. Zero: 32.
	Concurrency int
	// WANConcurrency bounds this node's WAN fetches at once, whoever asks
	// (the node itself, or peers asking it as owner). Zero: the site's share
	// of 32, given the live members, and at least 4: many members fetching
	// at once already fill a thin WAN link, and hundreds of requests on it
	// stall each other. A member alone: 32, or Concurrency if larger.
	WANConcurrency int
	// SiteWANRequests is how many WAN fetches the whole site keeps in
	// flight, shared by the members that fetch from the WAN for the others
	// (the live distribution points if any, else every live member; each at
	// least 4); with more than 8 each, a member also asks one peer for that
	// many chunks at once. Far from the site's sources each fetch waits a
	// round trip, so the site's WAN bytes a second are capped near
	// SiteWANRequests times the average chunk over the round trip, unless
	// the owners widen their fetches (SiteWANRequestsMax). Set it alike on
	// every member. Zero: 32.
	SiteWANRequests int
	// SiteWANRequestsMax is how far a member's WAN fetches may widen past
	// its share of SiteWANRequests, up to its share of SiteWANRequestsMax,
	// while they take about as long as the quickest: far from the sources
	// and behind a fast link, the round trip, not the link, caps the site.
	// A full link queues, and slows every fetch through it whichever member
	// makes it, so the members stop widening together (see wanWindow).
	// Zero: 4 x SiteWANRequests. Not above SiteWANRequests: no widening.
	SiteWANRequestsMax int
	// PerPeer bounds the requests to one peer at once, and the idle
	// streams kept to it; in a site of few members, an owner's larger share
	// of SiteWANRequests raises it. Zero: 8.
	PerPeer int
	// ServeConcurrency bounds the chunk streams this node serves at once.
	// Zero: 64.
	ServeConcurrency int
	// RequestTimeout bounds one chunk request to a peer, including the
	// owner's WAN fetch. Zero: 2 minutes.
	RequestTimeout time.Duration
	// SiteTimeout is how long a Fetch waits for the site to deliver a chunk
	// before fetching it from the WAN itself. Zero: 5 minutes.
	SiteTimeout time.Duration
	// FallbackDelay is how long a Fetch keeps asking the site for a chunk
	// when the site fails fast (members refuse, are busy or lack it), before
	// this node fetches the chunk from its WAN itself; bounded by
	// SiteTimeout. Zero: fall back as soon as the site has failed once.
	FallbackDelay time.Duration
	// UploadThrottle, if set, paces the chunk bytes this node serves to
	// peers (a LAN upload cap). Zero: unpaced.
	UploadThrottle Throttle
	// PenaltyDuration is how long a peer that sent bad bytes, or failed
	// repeatedly, is not asked. Zero: 1 minute.
	PenaltyDuration time.Duration
	// Delegate is the node the mesh works for: its WAN, its documents and
	// objects, and what it is told of stored chunks and bad peers. Required.
	Delegate Delegate
	// Logger receives the mesh's logs. Zero: slog.Default().
	Logger *slog.Logger
	// Codec decodes the compressed chunks peers send. Zero: a new one.
	Codec *chunk.Codec
}

// Defaults used for zero Config fields.
const (
	DefaultGossipAddr       = "0.0.0.0:7946"
	DefaultConcurrency      = 32
	DefaultPerPeer          = 8
	DefaultServeConcurrency = 64
	DefaultRequestTimeout   = 2 * time.Minute
	DefaultSiteTimeout      = 5 * time.Minute
	DefaultPenaltyDuration  = time.Minute
)

// siteWANRequests is SiteWANRequests, or its default.
func (c *Config) siteWANRequests() int {
	if c.SiteWANRequests > 0 {
		return c.SiteWANRequests
	}
	return DefaultSiteWANRequests
}

// siteWANRequestsMax is SiteWANRequestsMax, or its default.
func (c *Config) siteWANRequestsMax() int {
	if c.SiteWANRequestsMax > 0 {
		return c.SiteWANRequestsMax
	}
	return 4 * c.siteWANRequests()
}

// DefaultP2PAddrs are the libp2p listen addresses used when Config.P2PAddrs is empty.
var defaultP2PAddrs = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
	"/ip6/::/tcp/0",
	"/ip6/::/udp/0/quic-v1",
}

// DefaultConfig returns a Config with every default spelled out; the caller
// sets SiteKey (and usually Join or MDNS).
func DefaultConfig() Config {
	return Config{
		GossipAddr:       DefaultGossipAddr,
		P2PAddrs:         append([]string(nil), defaultP2PAddrs...),
		Concurrency:      DefaultConcurrency,
		PerPeer:          DefaultPerPeer,
		ServeConcurrency: DefaultServeConcurrency,
		RequestTimeout:   DefaultRequestTimeout,
		SiteTimeout:      DefaultSiteTimeout,
		PenaltyDuration:  DefaultPenaltyDuration,
	}
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if len(c.SiteKey) != 32 {
		return c, fmt.Errorf("site key is %d bytes, want 32 (generate one with patchmesh keygen): %w", len(c.SiteKey), ErrConfig)
	}
	if c.Delegate == nil {
		return c, fmt.Errorf("no delegate: %w", ErrConfig)
	}
	c.SiteKey = append([]byte(nil), c.SiteKey...)
	if c.GossipAddr == "" {
		c.GossipAddr = DefaultGossipAddr
	}
	host, port, err := net.SplitHostPort(c.GossipAddr)
	if err != nil {
		return c, fmt.Errorf("gossip address %q: %v: %w", c.GossipAddr, err, ErrConfig)
	}
	if net.ParseIP(host) == nil {
		return c, fmt.Errorf("gossip address %q: host must be an IP address: %w", c.GossipAddr, ErrConfig)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return c, fmt.Errorf("gossip address %q: bad port: %w", c.GossipAddr, ErrConfig)
	}
	if len(c.P2PAddrs) == 0 {
		c.P2PAddrs = append([]string(nil), defaultP2PAddrs...)
	}
	addrs := make([]string, 0, len(c.P2PAddrs))
	for _, a := range c.P2PAddrs {
		mas, err := P2PListenAddrs(a)
		if err != nil {
			return c, fmt.Errorf("p2p address: %w: %w", err, ErrConfig)
		}
		addrs = append(addrs, mas...)
	}
	c.P2PAddrs = addrs
	if c.Role != "" && c.Role != RoleDP {
		return c, fmt.Errorf("role %q: want \"\" or %q: %w", c.Role, RoleDP, ErrConfig)
	}
	if len(c.Name) > maxNameLen {
		return c, fmt.Errorf("name %q: longer than %d bytes: %w", c.Name, maxNameLen, ErrConfig)
	}
	if c.Concurrency < 0 || c.WANConcurrency < 0 || c.SiteWANRequests < 0 || c.SiteWANRequestsMax < 0 || c.PerPeer < 0 || c.ServeConcurrency < 0 || c.RequestTimeout < 0 || c.SiteTimeout < 0 || c.PenaltyDuration < 0 || c.FallbackDelay < 0 {
		return c, fmt.Errorf("negative limit: %w", ErrConfig)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.PerPeer == 0 {
		c.PerPeer = DefaultPerPeer
	}
	if c.ServeConcurrency == 0 {
		c.ServeConcurrency = DefaultServeConcurrency
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.SiteTimeout == 0 {
		c.SiteTimeout = DefaultSiteTimeout
	}
	if c.PenaltyDuration == 0 {
		c.PenaltyDuration = DefaultPenaltyDuration
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Codec == nil {
		if c.Codec, err = chunk.NewCodec(chunk.CompressOff); err != nil {
			return c, err
		}
	}
	return c, nil
}

// P2PListenAddrs turns one libp2p listen address as a user writes it into
// multiaddrs: a multiaddr is checked and kept; "host:port" (host an IP
// address, "[::1]:port" for IPv6) becomes TCP and QUIC on that IP and port.
func P2PListenAddrs(s string) ([]string, error) {
	if strings.HasPrefix(s, "/") {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		return []string{s}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("%q: want a multiaddr (/ip4/0.0.0.0/tcp/4001) or host:port: %w", s, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("%q: host must be an IP address", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("%q: bad port", s)
	}
	proto := "ip4"
	if ip.To4() == nil {
		proto = "ip6"
	}
	return []string{
		fmt.Sprintf("/%s/%s/tcp/%s", proto, ip, port),
		fmt.Sprintf("/%s/%s/udp/%s/quic-v1", proto, ip, port),
	}, nil
}

// Throttle paces bytes: WaitN returns when n more bytes fit a rate cap, or
// fails when ctx ends first.
type Throttle interface {
	WaitN(ctx context.Context, n int) error
}

// maxNameLen bounds member names; memberlist sends them in every message.
const maxNameLen = 128
