package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/patchmesh/patchmesh/node/api"
)

// servers are the node's HTTP listeners, bound together before anything
// starts, so a taken port fails Run at once and leaves nothing running.
type servers struct {
	list []*server
}

// server is one bound listener and, once serving, its HTTP server.
type server struct {
	name    string // the flag, for messages
	ln      net.Listener
	handler func(ctx context.Context) http.Handler
	srv     *http.Server // set by serve
}

// listen binds every listener the config asks for: the API, the repository
// (--serve-repo), the file view, the caching proxy and the mesh's gossip and
// libp2p ports. On error none stays open; the mesh's, once bound, are its
// Run's to close, or the node's close if Run never runs.
func (n *Node) listen() (_ *servers, err error) {
	s := &servers{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	bind := func(name, addr string, h func(context.Context) http.Handler) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: listen %s: %w", name, addr, err)
		}
		s.list = append(s.list, &server{name: name, ln: ln, handler: h})
		return ln, nil
	}
	if n.cfg.API != "off" {
		if !api.IsLoopback(n.cfg.API) && n.cfg.APIToken == "" {
			return nil, fmt.Errorf("api %s is not loopback: set api_token (--api-token)", n.cfg.API)
		}
		ln, err := bind("api", n.cfg.API, func(context.Context) http.Handler {
			return api.NewHandler(n, api.Options{Token: n.cfg.APIToken, Logger: n.log, Version: n.cfg.Version})
		})
		if err != nil {
			return nil, err
		}
		n.stat.setAPIAddr(ln.Addr().String())
	}
	if n.cfg.ServeRepo != "" {
		ln, err := bind("serve-repo", n.cfg.ServeRepo, func(context.Context) http.Handler { return n.repoHandler() })
		if err != nil {
			return nil, err
		}
		n.stat.setServeAddr(ln.Addr().String())
	}
	if n.cfg.ServeFiles.Addr != "" {
		ln, h, err := n.fileListener()
		if err != nil {
			return nil, err
		}
		s.list = append(s.list, &server{name: "serve-files", ln: ln, handler: func(context.Context) http.Handler { return h }})
	}
	if n.proxy != nil {
		ln, err := bind("proxy-cache", n.cfg.ProxyCache.Addr, func(ctx context.Context) http.Handler {
			// Fills outlive the client that started them, not the node: a
			// stop ends them and the tunnels, so the stop stays within its bound.
			context.AfterFunc(ctx, n.proxy.Close)
			return n.proxy
		})
		if err != nil {
			return nil, err
		}
		n.log.Info("caching proxy", "addr", ln.Addr().String(), "allow", n.cfg.ProxyCache.Allow)
	}
	// Last: nothing after it can fail and leave the mesh's ports bound.
	if n.mesh != nil {
		if err := n.mesh.Listen(); err != nil {
			return nil, fmt.Errorf("mesh: %w", err)
		}
	}
	return s, nil
}

// shutdownBound is how long the servers' graceful shutdown may take before
// their connections are closed; below stopBound, so a stop stays within it.
const shutdownBound = 5 * time.Second

// serve serves every listener in g until ctx ends, then shuts the servers
// down: gracefully within shutdownBound, then by closing their connections.
func (s *servers) serve(ctx context.Context, g *errgroup.Group) {
	for _, sv := range s.list {
		sv.srv = newHTTPServer(ctx, sv.handler(ctx))
		g.Go(func() error {
			if err := sv.srv.Serve(sv.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s: serve: %w", sv.name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownBound)
		defer cancel()
		for _, sv := range s.list {
			if err := sv.srv.Shutdown(shut); err != nil {
				_ = sv.srv.Close()
			}
		}
		return nil
	})
}

// close closes every listener and server, whatever state they are in, so
// nothing serves once Run returns. It is safe to call more than once.
func (s *servers) close() {
	for _, sv := range s.list {
		if sv.srv != nil {
			_ = sv.srv.Close()
		}
		_ = sv.ln.Close()
	}
}
