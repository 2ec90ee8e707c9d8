package upstreams

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// maxBody bounds a PUT body.
const maxBody = 1 << 20

// Admin is the Caddy module admin.api.gantry: the admin API routes that read
// and change the registry.
//
//	GET /gantry/upstreams            every service's upstreams: {"web":[{"dial":"web-1:8080","weight":1}]}
//	GET /gantry/upstreams/{service}  one service's upstreams: [{"dial":"web-1:8080","weight":1}]
//	PUT /gantry/upstreams/{service}  replace them (same body); answers the new list
//	GET /gantry/inflight             requests in flight per dial address, current and recently removed
//
// Errors are Caddy's admin errors: {"error":"..."} with a 4xx or 5xx status.
type Admin struct {
	reg *Registry
}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.gantry",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Provision attaches the process's registry.
func (a *Admin) Provision(caddy.Context) error {
	reg, err := sharedRegistry()
	if err != nil {
		return err
	}
	a.reg = reg
	return nil
}

// Routes returns the admin API routes under /gantry/.
func (a *Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/gantry/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func (a *Admin) serve(w http.ResponseWriter, r *http.Request) error {
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/gantry/inflight":
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		return writeJSON(w, a.reg.InFlight())
	case path == "/gantry/upstreams":
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		return writeJSON(w, a.reg.All())
	case strings.HasPrefix(path, "/gantry/upstreams/"):
		service := strings.TrimPrefix(path, "/gantry/upstreams/")
		if err := checkService(service); err != nil {
			return apiError(http.StatusBadRequest, err)
		}
		switch r.Method {
		case http.MethodGet:
			us, ok := a.reg.Get(service)
			if !ok {
				return apiError(http.StatusNotFound, fmt.Errorf("service %q has no upstreams; PUT /gantry/upstreams/%s to route it", service, service))
			}
			return writeJSON(w, us)
		case http.MethodPut:
			return a.put(w, r, service)
		default:
			w.Header().Set("Allow", "GET, PUT")
			return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s; use GET or PUT", r.Method, r.URL.Path))
		}
	}
	return apiError(http.StatusNotFound, fmt.Errorf("no gantry route %s; see /gantry/upstreams/{service} and /gantry/inflight", r.URL.Path))
}

func (a *Admin) put(w http.ResponseWriter, r *http.Request, service string) error {
	us, err := decodeUpstreams(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("service %q: %w", service, err))
	}
	if err := checkUpstreams(us); err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("service %q: %w", service, err))
	}
	if err := a.reg.Set(service, us); err != nil {
		return apiError(http.StatusInternalServerError, err)
	}
	return writeJSON(w, us)
}

// decodeUpstreams reads a PUT body: a JSON array of {"dial","weight"}
// objects; a missing weight is 1.
func decodeUpstreams(body io.Reader) ([]Upstream, error) {
	const want = `want a JSON array like [{"dial":"web-2:8080","weight":1}]`
	var in []struct {
		Dial   *string `json:"dial"`
		Weight *int    `json:"weight"`
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("body is larger than %d bytes", maxBody)
		}
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("body is empty; %s", want)
		}
		return nil, fmt.Errorf("decode body: %v; %s", err, want)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("body has more after the array; %s", want)
	}
	out := make([]Upstream, len(in))
	for i, u := range in {
		if u.Dial == nil {
			return nil, fmt.Errorf("upstream %d has no \"dial\"; %s", i+1, want)
		}
		out[i] = Upstream{Dial: *u.Dial, Weight: 1}
		if u.Weight != nil {
			out[i].Weight = *u.Weight
		}
	}
	return out, nil
}

func allow(r *http.Request, method string) error {
	if r.Method != method {
		return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, method))
	}
	return nil
}

func apiError(status int, err error) error {
	return caddy.APIError{HTTPStatus: status, Err: err}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*Admin)(nil)
	_ caddy.Provisioner = (*Admin)(nil)
)
