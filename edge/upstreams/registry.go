package upstreams

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on what the registry accepts.
const (
	// MaxWeight is the largest weight an upstream may have.
	MaxWeight = 1_000_000
	// MaxUpstreams is the most upstreams one service may have.
	MaxUpstreams = 1000
	// RemovedRetention is how long /gantry/inflight keeps listing a dial
	// address that no service routes to any more, once nothing is in flight
	// on it.
	RemovedRetention = 10 * time.Minute
)

// fileVersion is the version of the registry file's format.
const fileVersion = 1

// Upstream is one backend of a service, as the admin API and the registry
// file hold it.
type Upstream struct {
	// Dial is the backend's host:port as the edge reaches it.
	Dial string `json:"dial"`
	// Weight is the backend's share of the service's requests relative to
	// the other upstreams; 0 keeps it listed but sends it nothing.
	Weight int `json:"weight"`
}

// DialInFlight is the number of requests in flight on one dial address.
type DialInFlight struct {
	// Dial is the upstream's address.
	Dial string `json:"dial"`
	// InFlight counts the requests routed to it that have not finished.
	InFlight int64 `json:"in_flight"`
	// Services lists the services that route to it now; empty once it
	// has been removed from all of them.
	Services []string `json:"services"`
	// RemovedAt is when the last service stopped routing to it.
	RemovedAt *time.Time `json:"removed_at,omitempty"`
}

var serviceRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// checkService reports whether name can name a service.
func checkService(name string) error {
	if !serviceRE.MatchString(name) {
		return fmt.Errorf("service name %q may only hold letters, digits, - and _ (1 to 128 of them)", name)
	}
	return nil
}

// checkUpstreams reports the first problem with a service's new upstreams.
func checkUpstreams(us []Upstream) error {
	if len(us) == 0 {
		return errors.New(`the upstream list is empty; give at least one upstream with a positive weight, e.g. [{"dial":"web-2:8080","weight":1}]`)
	}
	if len(us) > MaxUpstreams {
		return fmt.Errorf("%d upstreams is more than the %d a service may have", len(us), MaxUpstreams)
	}
	seen := make(map[string]bool, len(us))
	positive := false
	for i, u := range us {
		if err := checkDial(u.Dial); err != nil {
			return fmt.Errorf("upstream %d: %w", i+1, err)
		}
		if seen[u.Dial] {
			return fmt.Errorf("upstream %d: %s is listed twice", i+1, u.Dial)
		}
		seen[u.Dial] = true
		if u.Weight < 0 || u.Weight > MaxWeight {
			return fmt.Errorf("upstream %d (%s): weight %d is outside 0 to %d", i+1, u.Dial, u.Weight, MaxWeight)
		}
		positive = positive || u.Weight > 0
	}
	if !positive {
		return errors.New("every weight is 0; at least one upstream needs a positive weight")
	}
	return nil
}

// checkDial accepts host:port with a port from 1 to 65535 and no
// placeholders, scheme or path.
func checkDial(dial string) error {
	host, port, err := net.SplitHostPort(dial)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || n < 1 || n > 65535 || strings.ContainsAny(dial, "{}/ \t") {
		return fmt.Errorf("dial %q is not host:port (e.g. web-2:8080)", dial)
	}
	return nil
}

// Registry holds the upstreams of every service and counts the requests in
// flight on each dial address. Changes are atomic: a request sees either
// the old or the new upstreams of a service. Safe for concurrent use.
type Registry struct {
	// path is the file the services are persisted to; "" keeps them in
	// memory only.
	path string
	now  func() time.Time

	// routes is the current map[service]*route; the map and the routes in
	// it are never changed once stored, only replaced.
	routes atomic.Pointer[map[string]*route]

	mu    sync.Mutex       // serialises changes, the file and dials
	dials map[string]*dial // current and recently removed dial addresses
}

// route is one generation of a service's routing.
type route struct {
	upstreams []Upstream // as configured, in order, with weight 0 ones
	active    []*dial    // those with a positive weight
	weights   []int      // of active

	mu      sync.Mutex
	current []int // smooth weighted round robin state of active
}

// dial is one upstream address and its requests in flight.
type dial struct {
	addr     string
	inFlight atomic.Int64
	// removedAt is zero while some service lists the address; guarded by
	// Registry.mu.
	removedAt time.Time
}

// fileFormat is the registry file's content.
type fileFormat struct {
	Version  int                   `json:"version"`
	Services map[string][]Upstream `json:"services"`
}

// OpenRegistry returns a registry persisted to path, loaded from it if it
// exists. An empty path keeps the registry in memory only.
func OpenRegistry(path string) (*Registry, error) {
	r := &Registry{path: path, now: time.Now, dials: map[string]*dial{}}
	services := map[string][]Upstream{}
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("gantry upstreams: read %s: %w", path, err)
		default:
			var f fileFormat
			if err := json.Unmarshal(b, &f); err != nil {
				return nil, fmt.Errorf("gantry upstreams: %s is not a registry file (%w); fix or remove it, then PUT every service's upstreams again", path, err)
			}
			if f.Version != fileVersion {
				return nil, fmt.Errorf("gantry upstreams: %s has version %d; this edge reads version %d", path, f.Version, fileVersion)
			}
			for name, us := range f.Services {
				if err := checkService(name); err != nil {
					return nil, fmt.Errorf("gantry upstreams: %s: %w", path, err)
				}
				if err := checkUpstreams(us); err != nil {
					return nil, fmt.Errorf("gantry upstreams: %s: service %q: %w", path, name, err)
				}
			}
			services = f.Services
		}
	}
	routes := map[string]*route{}
	for name, us := range services {
		routes[name] = r.newRouteLocked(us)
	}
	r.routes.Store(&routes)
	return r, nil
}

// Get returns a copy of service's upstreams and whether it has any.
func (r *Registry) Get(service string) ([]Upstream, bool) {
	rt := (*r.routes.Load())[service]
	if rt == nil {
		return nil, false
	}
	return slices.Clone(rt.upstreams), true
}

// All returns a copy of every service's upstreams.
func (r *Registry) All() map[string][]Upstream {
	out := map[string][]Upstream{}
	for name, rt := range *r.routes.Load() {
		out[name] = slices.Clone(rt.upstreams)
	}
	return out
}

// Set makes upstreams the routing of service: every request that asks for
// the service's upstreams after Set returns gets the new ones. The change
// is written to the registry file first; if that fails, nothing changes.
func (r *Registry) Set(service string, upstreams []Upstream) error {
	if err := checkService(service); err != nil {
		return err
	}
	if err := checkUpstreams(upstreams); err != nil {
		return err
	}
	upstreams = slices.Clone(upstreams)

	r.mu.Lock()
	defer r.mu.Unlock()
	next := maps.Clone(*r.routes.Load())
	services := map[string][]Upstream{service: upstreams}
	for name, rt := range next {
		if name != service {
			services[name] = rt.upstreams
		}
	}
	if err := r.saveLocked(services); err != nil {
		return err
	}
	next[service] = r.newRouteLocked(upstreams)
	r.routes.Store(&next)
	r.sweepLocked(next)
	return nil
}

// newRouteLocked builds a route, creating the dials it needs.
func (r *Registry) newRouteLocked(us []Upstream) *route {
	rt := &route{upstreams: us}
	for _, u := range us {
		d := r.dials[u.Dial]
		if d == nil {
			d = &dial{addr: u.Dial}
			r.dials[u.Dial] = d
		}
		d.removedAt = time.Time{}
		if u.Weight > 0 {
			rt.active = append(rt.active, d)
			rt.weights = append(rt.weights, u.Weight)
		}
	}
	rt.current = make([]int, len(rt.active))
	return rt
}

// sweepLocked marks the dials no route lists as removed and forgets those
// removed more than RemovedRetention ago with nothing in flight.
func (r *Registry) sweepLocked(routes map[string]*route) {
	listed := map[string]bool{}
	for _, rt := range routes {
		for _, u := range rt.upstreams {
			listed[u.Dial] = true
		}
	}
	now := r.now()
	for addr, d := range r.dials {
		switch {
		case listed[addr]:
			d.removedAt = time.Time{}
		case d.removedAt.IsZero():
			d.removedAt = now
		case now.Sub(d.removedAt) > RemovedRetention && d.inFlight.Load() == 0:
			delete(r.dials, addr)
		}
	}
}

// InFlight returns the requests in flight on every dial address that a
// service routes to now or did within RemovedRetention (or that still has
// requests in flight), sorted by address. Once Set has returned, a removed
// address whose count has been read as 0 gets no more requests.
func (r *Registry) InFlight() []DialInFlight {
	r.mu.Lock()
	defer r.mu.Unlock()
	routes := *r.routes.Load()
	r.sweepLocked(routes)
	services := map[string][]string{}
	for name, rt := range routes {
		for _, u := range rt.upstreams {
			services[u.Dial] = append(services[u.Dial], name)
		}
	}
	out := make([]DialInFlight, 0, len(r.dials))
	for addr, d := range r.dials {
		e := DialInFlight{Dial: addr, InFlight: d.inFlight.Load(), Services: services[addr]}
		if e.Services == nil {
			e.Services = []string{}
			at := d.removedAt
			e.RemovedAt = &at
		}
		slices.Sort(e.Services)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b DialInFlight) int { return strings.Compare(a.Dial, b.Dial) })
	return out
}

// acquire returns the current route of service with one request counted in
// flight on each of its active dials, or nil if the service has no route.
//
// The count is taken before the route is confirmed to still be current, so
// once Set has replaced the route and returned, a reader of the counts sees
// every request that will still use the old route: such a request's
// confirmation preceded the replacement, and its increments preceded that.
func (r *Registry) acquire(service string) *route {
	for {
		rt := (*r.routes.Load())[service]
		if rt == nil {
			return nil
		}
		for _, d := range rt.active {
			d.inFlight.Add(1)
		}
		if (*r.routes.Load())[service] == rt {
			return rt
		}
		for _, d := range rt.active {
			d.inFlight.Add(-1)
		}
	}
}

// pick chooses one of the route's active upstreams for which available is
// true, by smooth weighted round robin (nginx's): over any run of requests
// each upstream gets its share to within one request, and the upstreams
// are interleaved rather than served in bursts. It returns -1 if none is
// available.
func (rt *route) pick(available []bool) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	best, total := -1, 0
	for i, w := range rt.weights {
		if !available[i] {
			continue
		}
		rt.current[i] += w
		total += w
		if best < 0 || rt.current[i] > rt.current[best] {
			best = i
		}
	}
	if best >= 0 {
		rt.current[best] -= total
	}
	return best
}

// saveLocked writes services to the registry file atomically: a reader
// (or a restarted edge) finds either the old file or the new one, whole.
func (r *Registry) saveLocked(services map[string][]Upstream) error {
	if r.path == "" {
		return nil
	}
	f := fileFormat{Version: fileVersion, Services: services}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(r.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("gantry upstreams: create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(r.path)+".*")
	if err != nil {
		return fmt.Errorf("gantry upstreams: write %s: %w", r.path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), r.path)
	}
	if err != nil {
		return fmt.Errorf("gantry upstreams: write %s: %w", r.path, err)
	}
	// Make the rename itself durable; not every file system can sync a
	// directory, and the file is complete either way.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
