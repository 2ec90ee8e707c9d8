// Package upstreams is the Caddy side of gantry's edge proxy: a dynamic
// upstreams source, a weighted selection policy and an admin API that let a
// deploy switch a service's backends without reloading Caddy's config.
//
// Every config change in Caddy is a reload, and on Linux a reload reopens the
// listening sockets: connections still queued on the old socket are reset, so
// clients that open a new connection at the moment of a blue-green switch get
// EOF. Here the upstreams live in a process-wide Registry instead of the
// config; the admin API changes them in memory (and in a file under Caddy's
// data directory, so a restarted edge keeps routing), and the config never
// changes during a deploy.
//
// A reverse_proxy handler routes a service through this package with
//
//	"dynamic_upstreams": {"source": "gantry", "service": "web"},
//	"load_balancing": {"selection_policy": {"policy": "gantry"}}
//
// The gantry policy honours the weights and narrows the in-flight count of
// each request to the upstream it chose; with any other policy the weights
// are ignored and a request counts as in flight on every upstream of the
// list it was given.
package upstreams

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Source{})
	caddy.RegisterModule(Policy{})
	caddy.RegisterModule(Admin{})
}

// The process-wide registry. Caddy builds new module instances on every
// config reload, so the routing has to live outside them to survive one;
// it is opened on first use, from the file under Caddy's data directory.
var (
	processOnce     sync.Once
	processRegistry *Registry
	processErr      error
)

// RegistryPath is the registry file of this process: upstreams.json in the
// gantry directory of Caddy's data directory (with XDG_DATA_HOME=/data,
// /data/caddy/gantry/upstreams.json).
func RegistryPath() string {
	return filepath.Join(caddy.AppDataDir(), "gantry", "upstreams.json")
}

func sharedRegistry() (*Registry, error) {
	processOnce.Do(func() {
		processRegistry, processErr = OpenRegistry(RegistryPath())
	})
	return processRegistry, processErr
}

// Source is the Caddy module http.reverse_proxy.upstreams.gantry: it gives a
// reverse_proxy handler the current upstreams of one service.
type Source struct {
	// Service names the service whose upstreams the handler proxies to.
	Service string `json:"service"`

	reg      *Registry
	logger   *zap.Logger
	warnOnce *sync.Once
}

// CaddyModule returns the Caddy module information.
func (Source) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.upstreams.gantry",
		New: func() caddy.Module { return new(Source) },
	}
}

// Provision checks the configuration and attaches the process's registry.
func (s *Source) Provision(ctx caddy.Context) error {
	if err := checkService(s.Service); err != nil {
		return fmt.Errorf("gantry upstreams: %w", err)
	}
	reg, err := sharedRegistry()
	if err != nil {
		return err
	}
	s.reg = reg
	s.logger = ctx.Logger()
	s.warnOnce = new(sync.Once)
	return nil
}

// GetUpstreams returns the service's upstreams with a positive weight, in
// their configured order, and counts the request in flight on each of them
// until the selection policy chooses one (or the request ends). A service
// without upstreams yields none, so the request gets 503.
//
// The Upstreams are new on every call: reverse_proxy provisions (writes to)
// every upstream it is given, which must not race with other requests.
func (s *Source) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	ctx := r.Context()
	holds, _ := caddyhttp.GetVar(ctx, holdsVar).(map[*Source]*hold)
	if holds == nil {
		holds = map[*Source]*hold{}
		caddyhttp.SetVar(ctx, holdsVar, holds)
	}
	h := holds[s]
	if h == nil {
		h = &hold{src: s}
		holds[s] = h
		context.AfterFunc(ctx, h.finish)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.releaseLocked() // a retry: the earlier attempt is over
	h.route, h.pool = nil, nil
	if h.done {
		return nil, nil
	}
	rt := s.reg.acquire(s.Service)
	if rt == nil {
		return nil, nil
	}
	h.route = rt
	h.held = append(h.held[:0], rt.active...)
	h.pool = make([]*reverseproxy.Upstream, len(rt.active))
	for i, d := range rt.active {
		h.pool[i] = &reverseproxy.Upstream{Dial: d.addr}
	}
	return h.pool, nil
}

// UnmarshalCaddyfile reads "dynamic gantry <service>".
func (s *Source) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the source's name
	if !d.NextArg() {
		return d.Err("gantry: want the service name: dynamic gantry <service>")
	}
	s.Service = d.Val()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("gantry: want only the service name: dynamic gantry <service>")
	}
	return nil
}

// holdsVar is the request variable that carries a request's holds, one per
// Source that gave it upstreams (a request may pass several reverse_proxy
// handlers).
const holdsVar = "gantry.upstreams.holds"

// holdFor returns the hold whose upstreams pool is, or nil.
func holdFor(r *http.Request, pool reverseproxy.UpstreamPool) *hold {
	if len(pool) == 0 {
		return nil
	}
	holds, _ := caddyhttp.GetVar(r.Context(), holdsVar).(map[*Source]*hold)
	for _, h := range holds {
		h.mu.Lock()
		mine := len(h.pool) == len(pool) && h.pool[0] == pool[0]
		h.mu.Unlock()
		if mine {
			return h
		}
	}
	return nil
}

// hold is one request's claim on the upstreams a Source gave it: the dials
// it is counted in flight on.
type hold struct {
	src *Source

	mu       sync.Mutex
	route    *route                   // of the latest GetUpstreams
	pool     []*reverseproxy.Upstream // what it returned
	held     []*dial                  // counted in flight
	selected bool                     // the gantry policy chose for it
	done     bool                     // the request has ended
}

// releaseLocked stops counting the request on every dial.
func (h *hold) releaseLocked() {
	for _, d := range h.held {
		d.inFlight.Add(-1)
	}
	h.held = h.held[:0]
}

// narrowLocked keeps the request counted on d alone.
func (h *hold) narrowLocked(d *dial) {
	kept := false
	for _, x := range h.held {
		if x == d && !kept {
			kept = true
			continue
		}
		x.inFlight.Add(-1)
	}
	h.held = h.held[:0]
	if kept {
		h.held = append(h.held, d)
	}
}

// finish runs when the request's context ends: the request is no longer in
// flight anywhere.
func (h *hold) finish() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = true
	if h.route != nil && !h.selected && len(h.pool) > 0 {
		h.src.warnOnce.Do(func() {
			h.src.logger.Warn(`dynamic upstreams "gantry" are used without selection_policy "gantry": weights are ignored and in-flight counts include every upstream of a request's list`,
				zap.String("service", h.src.Service))
		})
	}
	h.releaseLocked()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Source)(nil)
	_ reverseproxy.UpstreamSource = (*Source)(nil)
	_ caddyfile.Unmarshaler       = (*Source)(nil)
)
