// Package edge drives the edge proxy that blue-green and canary deploys
// switch: a Caddy server that holds the routing (which upstreams serve each
// service, and with what weights) while a deploy only tells it, through
// Caddy's admin API, where traffic goes next. The idea is kamal-proxy's; the
// proxy is gantry-edge (Caddy with gantry's modules, edge/), whose admin API
// listens only inside its container and is reached through docker exec
// (ExecClient); Client itself speaks to any Caddy 2.8 or newer.
//
// A Config renders the whole Caddy JSON configuration; Client.Load applies it
// and Client.SetUpstreams later swaps one service's upstreams and weights in
// a single configuration change. Caddy applies every change gracefully: the
// new routing takes every request that arrives after the change returns,
// while requests already in flight finish on the old upstreams
// (Client.WaitDrained tells when they have).
//
// Every change restarts Caddy's HTTP server on the same port, which clients
// that keep their connections alive never notice. A client that opens a new
// connection just as the old server stops can lose its request: the kernel
// resets connections still queued on the old listening socket (unless the
// edge runs with the sysctl net.ipv4.tcp_migrate_req=1, Linux 5.14+), and Go's
// HTTP server closes, without an answer, a new connection whose first request
// it reads after its shutdown began (golang/go#75591).
package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"
)

// Defaults used when a Config leaves a field empty.
const (
	// DefaultListen is the address the edge serves HTTP on.
	DefaultListen = ":80"
	// DefaultAdminListen is where Caddy's admin API listens: AdminListen,
	// inside the edge's container only.
	DefaultAdminListen = AdminListen
	// DefaultGracePeriod bounds how long requests in flight on a replaced
	// configuration may run before they are cut.
	DefaultGracePeriod = 30 * time.Second
	// DefaultFailDuration is how long an upstream that failed a request
	// (refused connection, reset, timeout) is skipped before it is tried
	// again.
	DefaultFailDuration = 10 * time.Second
	// DefaultRetries is how many other upstreams a request that could not
	// reach its upstream tries before the edge answers 502.
	DefaultRetries = 2
	// UpstreamHeader is the usual name for Config.UpstreamHeader.
	UpstreamHeader = "X-Gantry-Upstream"
)

// DefaultImage is gantry-edge (edge/): Caddy with gantry's reload-free
// upstreams module and the command that relays admin requests inside the
// container (StdioCommand), published by the release workflow. A deploy
// needs both; a stock Caddy image has neither.
const DefaultImage = "ghcr.io/gantry-dev/gantry-edge:v1"

// serverName is the name of the HTTP server in Caddy's configuration.
const serverName = "edge"

// Config is one edge: an HTTP listener routing each service to its upstreams.
type Config struct {
	// Listen is the address the edge serves HTTP on, in Caddy's network
	// address syntax (:80, 127.0.0.1:8080, unix//run/edge.sock, fd/3);
	// DefaultListen if empty.
	Listen string
	// AdminListen is the admin API's address, in the same syntax;
	// DefaultAdminListen if empty. Every Load must keep it, or the API moves.
	// On a specific IP or host name (127.0.0.1:2019) Caddy also requires
	// that Host header (for a loopback address: localhost, 127.0.0.1 or ::1
	// with the port), so Client.Admin must use that name; on a wildcard
	// (:2019), a unix socket or fd/N it checks no Host. A wildcard is open to
	// every container on the edge's networks: deploys never use one.
	AdminListen string
	// Services are routed in order; the one service without Hosts, if any,
	// takes every request no other service matched. Requests that match no
	// service get 404.
	Services []Service
	// GracePeriod is DefaultGracePeriod if zero.
	GracePeriod time.Duration
	// FailDuration is DefaultFailDuration if zero. While every upstream of
	// a service with several is within it, the service answers 503.
	FailDuration time.Duration
	// Dynamic routes every service through gantry-edge's upstreams module
	// (http.reverse_proxy.upstreams.gantry): upstreams then change through
	// PUT /gantry/upstreams/{service}, with no configuration reload. A reload
	// restarts Caddy's listeners and resets a few connections opened at that
	// moment; a stock Caddy image has no such module, and Dynamic is false.
	Dynamic bool
	// UpstreamHeader, when set, names a response header that carries the
	// dial address of the upstream that answered (UpstreamHeader is the
	// usual name). It shows internal names to clients: use it for tests
	// and verification, not on a public edge.
	UpstreamHeader string
}

// Service is one routed application.
type Service struct {
	// Name identifies the service in the admin API: letters, digits, - and _.
	Name string
	// Hosts are the request host names routed to this service; empty means
	// every request that no other service matched.
	Hosts []string
	// Upstreams share the service's traffic by weight; at least one needs a
	// positive weight.
	Upstreams []Upstream
}

// Upstream is one backend of a service.
type Upstream struct {
	// Dial is the backend's host:port as the edge reaches it, e.g. a
	// container name on the edge's Docker network: web-green:8080.
	Dial string `json:"dial"`
	// Weight is the backend's share of requests relative to the others;
	// SetUpstreams drops an upstream with weight 0.
	Weight int `json:"weight"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Validate reports the first problem with the configuration, if any.
func (c Config) Validate() error {
	if len(c.Services) == 0 {
		return errors.New("edge: the configuration has no service")
	}
	seen := map[string]bool{}
	hosts := map[string]string{}
	catchAll := ""
	for _, s := range c.Services {
		if !nameRE.MatchString(s.Name) {
			return fmt.Errorf("edge: service name %q may only hold letters, digits, - and _", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("edge: service %q is configured twice", s.Name)
		}
		seen[s.Name] = true
		if len(s.Hosts) == 0 {
			if catchAll != "" {
				return fmt.Errorf("edge: services %q and %q both have no hosts; only one service may take every request", catchAll, s.Name)
			}
			catchAll = s.Name
		}
		for _, h := range s.Hosts {
			if other, ok := hosts[h]; ok {
				return fmt.Errorf("edge: host %q is routed to both %q and %q", h, other, s.Name)
			}
			hosts[h] = s.Name
		}
		if _, err := activeUpstreams(s.Name, s.Upstreams); err != nil {
			return err
		}
	}
	if c.GracePeriod < 0 || c.FailDuration < 0 {
		return errors.New("edge: grace period and fail duration cannot be negative")
	}
	return nil
}

// activeUpstreams checks upstreams and returns those with a positive weight.
func activeUpstreams(service string, us []Upstream) ([]Upstream, error) {
	var out []Upstream
	seen := map[string]bool{}
	for _, u := range us {
		host, port, err := net.SplitHostPort(u.Dial)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("edge: service %q: upstream %q is not host:port", service, u.Dial)
		}
		if u.Weight < 0 {
			return nil, fmt.Errorf("edge: service %q: upstream %s has negative weight %d", service, u.Dial, u.Weight)
		}
		if seen[u.Dial] {
			return nil, fmt.Errorf("edge: service %q: upstream %s is listed twice", service, u.Dial)
		}
		seen[u.Dial] = true
		if u.Weight > 0 {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("edge: service %q would have no upstream with a positive weight; keep at least one", service)
	}
	return out, nil
}

// JSON renders the Caddy configuration (the body of POST /load).
func (c Config) JSON() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.AdminListen == "" {
		c.AdminListen = DefaultAdminListen
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = DefaultGracePeriod
	}
	if c.FailDuration == 0 {
		c.FailDuration = DefaultFailDuration
	}
	var routes, last []route
	for _, s := range c.Services {
		ups, _ := activeUpstreams(s.Name, s.Upstreams)
		r := route{Handle: []any{c.proxy(s.Name, ups)}, Terminal: true}
		if len(s.Hosts) == 0 {
			last = append(last, r)
			continue
		}
		r.Match = []map[string][]string{{"host": s.Hosts}}
		routes = append(routes, r)
	}
	routes = append(routes, last...)
	if len(last) == 0 {
		routes = append(routes, route{Handle: []any{staticResponse{
			Handler:    "static_response",
			StatusCode: 404,
			Body:       "gantry edge: no service for this host\n",
		}}})
	}
	cfg := caddyConfig{
		Admin: adminConfig{Listen: c.AdminListen},
		Apps: apps{HTTP: httpApp{
			GracePeriod: c.GracePeriod.String(),
			Servers: map[string]server{serverName: {
				Listen:         []string{c.Listen},
				Routes:         routes,
				AutomaticHTTPS: &autoHTTPS{Disable: true},
			}},
		}},
	}
	return json.Marshal(cfg)
}

// handlerID is the @id of a service's reverse_proxy handler, which the admin
// API addresses as /id/<handlerID>.
func handlerID(service string) string { return "gantry-service-" + service }

func (c Config) proxy(service string, ups []Upstream) reverseProxy {
	p := reverseProxy{
		ID:      handlerID(service),
		Handler: "reverse_proxy",
		LoadBalancing: loadBalancing{
			Retries: DefaultRetries,
		},
		HealthChecks: healthChecks{Passive: passiveHealth{
			FailDuration: c.FailDuration.String(),
			MaxFails:     1,
		}},
	}
	if c.Dynamic {
		p.Dynamic = &dynamicSource{Source: "gantry", Service: service}
		p.LoadBalancing.SelectionPolicy = selectionPolicy{Policy: "gantry"}
	} else {
		p.setUpstreams(ups)
	}
	if c.UpstreamHeader != "" {
		p.Headers = &headerOps{Response: &headerSet{Set: map[string][]string{
			c.UpstreamHeader: {"{http.reverse_proxy.upstream.hostport}"},
		}}}
	}
	return p
}

func (p *reverseProxy) setUpstreams(ups []Upstream) {
	p.Upstreams = make([]caddyUpstream, len(ups))
	weights := make([]int, len(ups))
	for i, u := range ups {
		p.Upstreams[i] = caddyUpstream{Dial: u.Dial}
		weights[i] = u.Weight
	}
	p.LoadBalancing.SelectionPolicy = selectionPolicy{Policy: "weighted_round_robin", Weights: weights}
}

// The parts of Caddy's JSON configuration the edge uses; see
// https://caddyserver.com/docs/json/.
type (
	caddyConfig struct {
		Admin adminConfig `json:"admin"`
		Apps  apps        `json:"apps"`
	}
	adminConfig struct {
		Listen string `json:"listen"`
	}
	apps struct {
		HTTP httpApp `json:"http"`
	}
	httpApp struct {
		GracePeriod string            `json:"grace_period,omitempty"`
		Servers     map[string]server `json:"servers"`
	}
	server struct {
		Listen         []string   `json:"listen"`
		Routes         []route    `json:"routes"`
		AutomaticHTTPS *autoHTTPS `json:"automatic_https,omitempty"`
	}
	autoHTTPS struct {
		Disable bool `json:"disable"`
	}
	route struct {
		Match    []map[string][]string `json:"match,omitempty"`
		Handle   []any                 `json:"handle"`
		Terminal bool                  `json:"terminal,omitempty"`
	}
	staticResponse struct {
		Handler    string `json:"handler"`
		StatusCode int    `json:"status_code"`
		Body       string `json:"body,omitempty"`
	}
	reverseProxy struct {
		ID            string          `json:"@id"`
		Handler       string          `json:"handler"`
		Upstreams     []caddyUpstream `json:"upstreams,omitempty"`
		Dynamic       *dynamicSource  `json:"dynamic_upstreams,omitempty"`
		LoadBalancing loadBalancing   `json:"load_balancing"`
		HealthChecks  healthChecks    `json:"health_checks"`
		Headers       *headerOps      `json:"headers,omitempty"`
	}
	caddyUpstream struct {
		Dial string `json:"dial"`
	}
	dynamicSource struct {
		Source  string `json:"source"`
		Service string `json:"service"`
	}
	loadBalancing struct {
		SelectionPolicy selectionPolicy `json:"selection_policy"`
		Retries         int             `json:"retries,omitempty"`
	}
	selectionPolicy struct {
		Policy  string `json:"policy"`
		Weights []int  `json:"weights,omitempty"`
	}
	healthChecks struct {
		Passive passiveHealth `json:"passive"`
	}
	passiveHealth struct {
		FailDuration string `json:"fail_duration"`
		MaxFails     int    `json:"max_fails"`
	}
	headerOps struct {
		Response *headerSet `json:"response,omitempty"`
	}
	headerSet struct {
		Set map[string][]string `json:"set"`
	}
)
