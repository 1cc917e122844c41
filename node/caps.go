package node

import (
	"sync/atomic"
	"time"

	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/ratecap"
)

// caps holds the node's rate limiters and what their caps depend on.
//
// The site's WAN cap is shared without coordination: each member caps its own
// WAN reads at the site cap divided by the N members it sees fetch from the
// WAN for the site, asked again every second: the live distribution points if
// any, else every live member (mesh.Mesh.CapShare). While every member sees
// the same membership the site stays under the cap. A member joining or dying
// changes N in every view within the gossip's convergence time (seconds), and
// during it a member that has not yet seen a join reads at cap/(N-1): at most
// cap/N·k too much for k joins not yet seen, for that long. An ordinary member
// of a site with distribution points fetches from the WAN only when they fail
// it, at the cap divided by every live member: the site's reads pass the cap
// by that much while it does.
type caps struct {
	conf                CapsConfig
	wanSched, siteSched ratecap.Schedule
	wan, lan            *ratecap.Limiter
	sharedBy            func() int // the members a site cap is shared by; nil: alone
	clock               func() time.Time
	onDemand            atomic.Int32 // updates asked for, running: WANNow applies
	channel             atomic.Pointer[channelCaps]
}

// channelCaps are the caps a channel's head sets; node config can only tighten them.
type channelCaps struct{ wan, siteWAN, lanUpload ratecap.Rate }

func newCaps(conf CapsConfig, sharedBy func() int, clock func() time.Time) (*caps, error) {
	if clock == nil {
		clock = time.Now
	}
	c := &caps{conf: conf, sharedBy: sharedBy, clock: clock}
	var err error
	if c.wanSched, err = ratecap.ParseSchedule(conf.WANSchedule); err != nil {
		return nil, err
	}
	if c.siteSched, err = ratecap.ParseSchedule(conf.SiteWANSchedule); err != nil {
		return nil, err
	}
	c.wan = ratecap.NewLimiter(c.wanAt, clock)
	c.lan = ratecap.NewLimiter(c.lanAt, clock)
	return c, nil
}

// wanAt is this node's WAN cap at t: its own (scheduled, or the update-now
// cap), its share of the site's, and the channel's, whichever is tightest.
func (c *caps) wanAt(t time.Time) ratecap.Rate {
	own := c.wanSched.At(t, c.conf.WAN)
	if c.onDemand.Load() > 0 && c.conf.WANNow > 0 {
		own = c.conf.WANNow
	}
	site := c.siteAt(t)
	if ch := c.channel.Load(); ch != nil {
		own = ratecap.Min(own, ch.wan)
	}
	return ratecap.Min(own, c.share(site))
}

// siteAt is the whole site's cap at t, after the channel's.
func (c *caps) siteAt(t time.Time) ratecap.Rate {
	site := c.siteSched.At(t, c.conf.SiteWAN)
	if ch := c.channel.Load(); ch != nil {
		site = ratecap.Min(site, ch.siteWAN)
	}
	return site
}

// share is this member's part of a site cap.
func (c *caps) share(site ratecap.Rate) ratecap.Rate {
	if site <= 0 {
		return 0
	}
	n := 1
	if c.sharedBy != nil {
		n = max(1, c.sharedBy())
	}
	return max(1, site/ratecap.Rate(n))
}

func (c *caps) lanAt(time.Time) ratecap.Rate {
	r := c.conf.LANUpload
	if ch := c.channel.Load(); ch != nil {
		r = ratecap.Min(r, ch.lanUpload)
	}
	return r
}

// setChannel records the caps of the newest verified head of the channel.
func (c *caps) setChannel(wan, siteWAN, lanUpload int64) {
	c.channel.Store(&channelCaps{ratecap.Rate(wan), ratecap.Rate(siteWAN), ratecap.Rate(lanUpload)})
}

// updateNow applies WANNow until the returned func is called.
func (c *caps) updateNow() (done func()) {
	c.onDemand.Add(1)
	return func() { c.onDemand.Add(-1) }
}

// status reports the caps in force now.
func (c *caps) status() *api.Caps {
	return &api.Caps{
		WAN:                 int64(c.wan.Rate()),
		SiteWAN:             int64(c.siteAt(c.clock())),
		LANUpload:           int64(c.lan.Rate()),
		WANThrottledSeconds: c.wan.Throttled().Seconds(),
		LANThrottledSeconds: c.lan.Throttled().Seconds(),
		UpdateNow:           c.onDemand.Load() > 0,
	}
}
