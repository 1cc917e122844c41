package mesh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/mdns"
)

// mdnsService is the mDNS service name patchmesh nodes announce.
const mdnsService = "_patchmesh._udp"

// mDNS discovery timing.
const (
	mdnsQueryTimeout = 3 * time.Second
	mdnsAloneEvery   = 10 * time.Second // while we know no other member
	mdnsEvery        = 2 * time.Minute  // afterwards, to heal partitions
	mdnsMaxEntries   = 64
)

// siteTag is the hash of the site key carried in the mDNS TXT record: it
// lets nodes skip other sites without revealing the key.
func siteTag(key []byte) string {
	h := sha256.Sum256(append([]byte("patchmesh site tag\x00"), key...))
	return hex.EncodeToString(h[:8])
}

// mdnsTXT is the TXT record of this node.
func mdnsTXT(tag, name string) []string {
	return []string{"site=" + tag, "name=" + name}
}

// mdnsMatch returns the gossip address announced by e if it belongs to our
// site (tag) and is not us.
func mdnsMatch(tag, self string, fields []string, ip net.IP, port int) (string, bool) {
	var site, name string
	for _, f := range fields {
		if v, ok := strings.CutPrefix(f, "site="); ok {
			site = v
		}
		if v, ok := strings.CutPrefix(f, "name="); ok {
			name = v
		}
	}
	if site != tag || name == self || ip == nil || port <= 0 {
		return "", false
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(port)), true
}

// mdnsLoop announces this node's gossip address (ip, port) on the LAN and
// joins the site members it finds, until ctx ends.
func (m *Mesh) mdnsLoop(ctx context.Context, ip net.IP, port int) {
	tag := siteTag(m.cfg.SiteKey)
	logger := slog.NewLogLogger(m.log.Handler(), slog.LevelDebug)
	svc, err := mdns.NewMDNSService(m.name, mdnsService, "", "", port, []net.IP{ip}, mdnsTXT(tag, m.name))
	if err != nil {
		m.log.Warn("mDNS announce disabled", "err", err)
	} else {
		srv, err := mdns.NewServer(&mdns.Config{Zone: svc, Logger: logger})
		if err != nil {
			m.log.Warn("mDNS announce disabled", "err", err)
		} else {
			defer func() { _ = srv.Shutdown() }()
		}
	}
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		addrs, err := m.mdnsQuery(ctx, tag)
		if err != nil {
			m.log.Debug("mDNS query", "err", err)
		}
		if len(addrs) > 0 {
			if n, err := m.ml.Join(addrs); n == 0 {
				m.log.Debug("join mDNS peers", "peers", addrs, "err", err)
			}
		}
		wait = mdnsEvery
		if m.ml.NumMembers() <= 1 {
			wait = mdnsAloneEvery
		}
	}
}

// mdnsQuery returns the gossip addresses of site members answering on mDNS.
func (m *Mesh) mdnsQuery(ctx context.Context, tag string) ([]string, error) {
	entries := make(chan *mdns.ServiceEntry, mdnsMaxEntries) // sends never block; extra entries drop
	params := mdns.DefaultParams(mdnsService)
	params.Entries = entries
	params.Timeout = mdnsQueryTimeout
	params.Logger = slog.NewLogLogger(m.log.Handler(), slog.LevelDebug)
	err := mdns.QueryContext(ctx, params)
	close(entries)
	var out []string
	for e := range entries {
		ip := e.AddrV4
		if ip == nil {
			ip = e.AddrV6
		}
		if a, ok := mdnsMatch(tag, m.name, e.InfoFields, ip, e.Port); ok {
			out = append(out, a)
		}
	}
	if err != nil {
		return out, fmt.Errorf("mDNS query: %w", err)
	}
	return out, nil
}
