package upstreams

import (
	"math/rand/v2"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// Policy is the Caddy module http.reverse_proxy.selection_policies.gantry:
// it chooses among the upstreams Source gave a request by their weights
// (smooth weighted round robin over those available), and from then on
// counts the request in flight on the chosen upstream only.
//
// Given upstreams from another source, it chooses one available upstream
// at random.
type Policy struct{}

// CaddyModule returns the Caddy module information.
func (Policy) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.gantry",
		New: func() caddy.Module { return new(Policy) },
	}
}

// Select returns the chosen upstream, or nil if none is available.
func (Policy) Select(pool reverseproxy.UpstreamPool, r *http.Request, _ http.ResponseWriter) *reverseproxy.Upstream {
	h := holdFor(r, pool)
	if h == nil {
		return randomAvailable(pool)
	}
	// Available reads the upstream's health; do it outside the locks.
	available := make([]bool, len(pool))
	for i, u := range pool {
		available[i] = u.Available()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done || h.route == nil || len(h.pool) != len(pool) || h.pool[0] != pool[0] {
		return nil // the request ended, or a retry replaced the pool
	}
	h.selected = true
	i := h.route.pick(available)
	if i < 0 {
		h.releaseLocked()
		return nil
	}
	h.narrowLocked(h.route.active[i])
	return pool[i]
}

// randomAvailable picks one available upstream uniformly.
func randomAvailable(pool reverseproxy.UpstreamPool) *reverseproxy.Upstream {
	var chosen *reverseproxy.Upstream
	n := 0
	for _, u := range pool {
		if !u.Available() {
			continue
		}
		n++
		if rand.IntN(n) == 0 {
			chosen = u
		}
	}
	return chosen
}

// UnmarshalCaddyfile reads "lb_policy gantry".
func (*Policy) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the policy's name
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ reverseproxy.Selector = Policy{}
	_ caddyfile.Unmarshaler = (*Policy)(nil)
)
