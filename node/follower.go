package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/patchmesh/patchmesh/manifest"
	"github.com/patchmesh/patchmesh/manifest/window"
	"github.com/patchmesh/patchmesh/node/api"
	"github.com/patchmesh/patchmesh/node/install"
	"github.com/patchmesh/patchmesh/node/rollout"
)

// follower follows one channel into one install folder. The node's first
// channel (Config.Channel into Config.InstallDir) is its first follower;
// Config.Channels add more. The shared parts (store, mesh, sources, trust
// root, counters, events) are the embedded Node's.
type follower struct {
	*Node
	channel string
	// first marks the node's first channel: it alone gossips what it holds,
	// runs and how its apply went (memberlist metadata has room for one), and
	// its release records keep the keys of single-channel nodes.
	first   bool
	dir     string // install folder
	inst    *install.Installer
	hooks   HooksConfig
	windows window.Set // this channel's maintenance windows
	log     *slog.Logger

	st followerState // guarded by Node.mu

	// The head served to repository clients (--serve-repo), guarded by
	// Node.headMu.
	headAt time.Time
	served *manifest.Head
}

// followerState is a follower's part of the status, guarded by Node.mu.
type followerState struct {
	checking  bool
	nextCheck time.Time
	lastCheck *api.CheckResult
	progress  *api.Progress // a release being fetched or applied
	// Staged rollouts (rollout.go): the rollout of the head's release, and
	// this channel's outcome (gossiped in the site for the first channel).
	rollout rolloutState
	outcome rollout.Outcome
	// A staged release waiting for a maintenance window (window.go).
	window windowState
	// fetching is the release being staged and its name, for the file view
	// while nothing is installed (servefiles.go).
	fetching     *manifest.Manifest
	fetchingName string
}

// newFollower opens the install folder of channel c.
func (n *Node) newFollower(c ChannelConfig, first bool) (*follower, error) {
	ws, err := window.ParseSet(c.Windows)
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", c.Name, err)
	}
	f := &follower{Node: n, channel: c.Name, first: first, dir: c.InstallDir, hooks: c.Hooks, windows: ws}
	f.log = n.log
	if !first {
		f.log = n.log.With("channel", c.Name)
	}
	f.inst, err = install.Open(install.Config{
		Root: c.InstallDir, Keep: n.cfg.Keep, HookTimeout: time.Duration(c.Hooks.Timeout),
		PreActivate: c.Hooks.PreActivate, HealthCheck: c.Hooks.HealthCheck, Logger: f.log,
	})
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", c.Name, err)
	}
	return f, nil
}

// event records an error or refusal of this channel; the first channel's
// read as they did on single-channel nodes.
func (f *follower) event(kind, msg string) {
	if !f.first {
		msg = "channel " + f.channel + ": " + msg
	}
	f.Node.event(kind, msg)
}

// follower returns the follower of channel name; "" is the first channel.
func (n *Node) follower(name string) (*follower, error) {
	if name == "" {
		return n.followers[0], nil
	}
	for _, f := range n.followers {
		if f.channel == name {
			return f, nil
		}
	}
	return nil, fmt.Errorf("channel %q: %w", name, api.ErrNoChannel)
}

// recover finishes an activation a crash interrupted: the installer switches
// back to the release that ran before.
func (f *follower) recover(ctx context.Context) {
	to, err := f.inst.Recover(ctx) // to: the release switched away from
	if err != nil {
		f.event("apply", fmt.Sprintf("recover after a crash: %v", err))
		return
	}
	if to == "" {
		return
	}
	msg := fmt.Sprintf("a crash interrupted the activation of %s before its health check confirmed it: switched back", to)
	if bad, _ := f.inst.IsBad(to); bad {
		msg += "; it was cut short before too, so it is marked bad (patchmesh release retry clears the mark)"
	} else {
		msg += "; it is tried again"
	}
	f.event("rollback", msg)
}
