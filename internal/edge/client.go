package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Errors a Client's methods wrap; test with errors.Is.
var (
	// ErrUnknownService is a service the edge's configuration does not have.
	ErrUnknownService = errors.New("service is not configured on the edge")
	// ErrConcurrentChange is a service whose routing kept changing while
	// SetUpstreams tried to update it.
	ErrConcurrentChange = errors.New("the service's routing changed while it was being updated")
)

// DrainPollInterval is how often WaitDrained asks the edge for its counts.
const DrainPollInterval = 100 * time.Millisecond

// maxResponse bounds what the client reads of an admin API answer.
const maxResponse = 16 << 20

// Client changes a running edge through Caddy's admin API. Every request goes
// through HTTP, so the transport decides how it gets there: ExecClient's
// runs docker exec in the edge's container, where the API listens.
type Client struct {
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Admin is the admin API's base URL, e.g. http://127.0.0.1:2019.
	Admin string
	// Dynamic is set by Detect (or by the caller) when the edge is
	// gantry-edge: upstreams then change without a configuration reload.
	Dynamic bool
}

// AdminError is an answer of the admin API other than success, with the
// message Caddy gave.
type AdminError struct {
	Method string
	URL    string
	Status int
	// Message is Caddy's "error" field, or the start of the body.
	Message string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("edge: caddy admin API %s %s: HTTP %d %s: %s", e.Method, e.URL, e.Status, http.StatusText(e.Status), e.Message)
}

// Load replaces the edge's whole configuration with cfg. Caddy starts the new
// configuration before it stops the old one, so no request is refused;
// requests already in flight finish on the old routing.
func (c *Client) Load(ctx context.Context, cfg Config) error {
	cfg.Dynamic = c.Dynamic
	body, err := cfg.JSON()
	if err != nil {
		return err
	}
	if c.Dynamic {
		// Fill the registry first, so the new routes have upstreams at once.
		for _, s := range cfg.Services {
			if err := c.putUpstreams(ctx, s.Name, s.Upstreams); err != nil {
				return err
			}
		}
	}
	_, _, err = c.do(ctx, http.MethodPost, "/load", body, nil)
	return err
}

// Detect sets Dynamic when the edge is gantry-edge, whose upstreams module
// switches without a configuration reload.
func (c *Client) Detect(ctx context.Context) (bool, error) {
	_, _, err := c.do(ctx, http.MethodGet, "/gantry/upstreams", nil, nil)
	var ae *AdminError
	switch {
	case err == nil:
		c.Dynamic = true
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		c.Dynamic = false
	default:
		return false, err
	}
	return c.Dynamic, nil
}

// putUpstreams replaces a service's upstreams in gantry-edge's registry.
func (c *Client) putUpstreams(ctx context.Context, service string, upstreams []Upstream) error {
	active, err := activeUpstreams(service, upstreams)
	if err != nil {
		return err
	}
	body, err := json.Marshal(active)
	if err != nil {
		return err
	}
	_, _, err = c.do(ctx, http.MethodPut, "/gantry/upstreams/"+url.PathEscape(service), body, nil)
	return err
}

// SetUpstreams makes upstreams the only backends of service, with their
// weights, in one configuration change: every request that arrives after it
// returns goes to the new set. An upstream with weight 0 is left out; at
// least one needs a positive weight. The service's other settings are kept.
func (c *Client) SetUpstreams(ctx context.Context, service string, upstreams []Upstream) error {
	active, err := activeUpstreams(service, upstreams)
	if err != nil {
		return err
	}
	if c.Dynamic {
		// The route must exist; then the switch is one registry update.
		if _, _, err := c.handler(ctx, service); err != nil {
			return err
		}
		return c.serviceErr(service, c.putUpstreams(ctx, service, active))
	}
	var p reverseProxy
	p.setUpstreams(active)
	ups, err := json.Marshal(p.Upstreams)
	if err != nil {
		return err
	}
	policy, err := json.Marshal(p.LoadBalancing.SelectionPolicy)
	if err != nil {
		return err
	}
	// Read, change and write the handler; If-Match makes the write fail
	// when the handler changed in between, and then it is read again.
	const attempts = 3
	for range attempts {
		raw, etag, err := c.handler(ctx, service)
		if err != nil {
			return err
		}
		lb := map[string]json.RawMessage{}
		if b, ok := raw["load_balancing"]; ok {
			if err := json.Unmarshal(b, &lb); err != nil {
				return fmt.Errorf("edge: service %q: decode load_balancing: %w", service, err)
			}
		}
		lb["selection_policy"] = policy
		if raw["load_balancing"], err = json.Marshal(lb); err != nil {
			return err
		}
		raw["upstreams"] = ups
		body, err := json.Marshal(raw)
		if err != nil {
			return err
		}
		_, _, err = c.do(ctx, http.MethodPatch, "/id/"+handlerID(service), body, map[string]string{"If-Match": etag})
		var ae *AdminError
		if errors.As(err, &ae) && ae.Status == http.StatusPreconditionFailed {
			continue
		}
		return c.serviceErr(service, err)
	}
	return fmt.Errorf("edge: service %q: %w (%d attempts); is another deploy running?", service, ErrConcurrentChange, attempts)
}

// Upstreams returns the backends of service with their weights, in the
// order they are configured.
func (c *Client) Upstreams(ctx context.Context, service string) ([]Upstream, error) {
	raw, _, err := c.handler(ctx, service)
	if err != nil {
		return nil, err
	}
	if c.Dynamic {
		_, body, err := c.do(ctx, http.MethodGet, "/gantry/upstreams/"+url.PathEscape(service), nil, nil)
		if err != nil {
			return nil, c.serviceErr(service, err)
		}
		var out []Upstream
		if err := json.Unmarshal(body, &out); err != nil {
			return nil, fmt.Errorf("edge: service %q: decode upstreams: %w", service, err)
		}
		return out, nil
	}
	var p struct {
		Upstreams     []caddyUpstream `json:"upstreams"`
		LoadBalancing struct {
			SelectionPolicy selectionPolicy `json:"selection_policy"`
		} `json:"load_balancing"`
	}
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("edge: service %q: decode handler: %w", service, err)
	}
	weights := p.LoadBalancing.SelectionPolicy.Weights
	if p.LoadBalancing.SelectionPolicy.Policy != "weighted_round_robin" {
		weights = nil // another policy treats every upstream alike
	}
	out := make([]Upstream, len(p.Upstreams))
	for i, u := range p.Upstreams {
		out[i] = Upstream{Dial: u.Dial, Weight: 1}
		if i < len(weights) {
			out[i].Weight = weights[i]
		}
	}
	return out, nil
}

// UpstreamStatus is what the edge knows about one upstream right now.
type UpstreamStatus struct {
	// Dial is the upstream's address.
	Dial string
	// InFlight counts the requests it is serving now.
	InFlight int
	// Fails counts its failed requests within the fail duration; one makes
	// the edge skip it until the fail duration has passed.
	Fails int
}

// Status returns the state of every upstream the edge has, of all services
// (and of removed upstreams that still serve requests). Caddy keeps no
// cumulative request or error counts per upstream; these are current values.
func (c *Client) Status(ctx context.Context) ([]UpstreamStatus, error) {
	if c.Dynamic {
		// gantry-edge counts requests per upstream from the moment one is
		// picked, including upstreams removed in the last minutes.
		_, body, err := c.do(ctx, http.MethodGet, "/gantry/inflight", nil, nil)
		if err != nil {
			return nil, err
		}
		var st []struct {
			Dial     string `json:"dial"`
			InFlight int    `json:"in_flight"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			return nil, fmt.Errorf("edge: decode in-flight counts: %w", err)
		}
		out := make([]UpstreamStatus, len(st))
		for i, s := range st {
			out[i] = UpstreamStatus{Dial: s.Dial, InFlight: s.InFlight}
		}
		return out, nil
	}
	_, body, err := c.do(ctx, http.MethodGet, "/reverse_proxy/upstreams", nil, nil)
	if err != nil {
		return nil, err
	}
	var st []struct {
		Address     string `json:"address"`
		NumRequests int    `json:"num_requests"`
		Fails       int    `json:"fails"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("edge: decode upstream status: %w", err)
	}
	out := make([]UpstreamStatus, len(st))
	for i, s := range st {
		out[i] = UpstreamStatus{Dial: s.Address, InFlight: s.NumRequests, Fails: s.Fails}
	}
	return out, nil
}

// WaitDrained returns once none of the dial addresses has a request in
// flight, e.g. after SetUpstreams removed them and before their containers
// stop; it polls every DrainPollInterval until ctx ends.
func (c *Client) WaitDrained(ctx context.Context, dials ...string) error {
	t := time.NewTicker(DrainPollInterval)
	defer t.Stop()
	var busy []string
	stillBusy := func() error {
		return fmt.Errorf("edge: requests still in flight on %s: %w", strings.Join(busy, ", "), ctx.Err())
	}
	for {
		st, err := c.Status(ctx)
		if err != nil {
			if ctx.Err() != nil && len(busy) > 0 {
				return stillBusy()
			}
			return err
		}
		busy = busy[:0]
		for _, s := range st {
			for _, d := range dials {
				if s.Dial == d && s.InFlight > 0 {
					busy = append(busy, fmt.Sprintf("%s (%d)", d, s.InFlight))
				}
			}
		}
		if len(busy) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return stillBusy()
		case <-t.C:
		}
	}
}

// handler reads a service's reverse_proxy handler and its ETag.
func (c *Client) handler(ctx context.Context, service string) (map[string]json.RawMessage, string, error) {
	if !nameRE.MatchString(service) {
		return nil, "", fmt.Errorf("edge: service name %q may only hold letters, digits, - and _", service)
	}
	resp, body, err := c.do(ctx, http.MethodGet, "/id/"+handlerID(service), nil, nil)
	if err != nil {
		return nil, "", c.serviceErr(service, err)
	}
	raw := map[string]json.RawMessage{}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, "", fmt.Errorf("edge: service %q: decode handler: %w", service, err)
	}
	var h string
	_ = json.Unmarshal(raw["handler"], &h)
	if h != "reverse_proxy" {
		return nil, "", fmt.Errorf("edge: service %q: object %s is a %q handler, not reverse_proxy", service, handlerID(service), h)
	}
	return raw, resp.Header.Get("Etag"), nil
}

// serviceErr names the service in a "unknown object ID" answer.
func (c *Client) serviceErr(service string, err error) error {
	var ae *AdminError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return fmt.Errorf("edge: service %q: %w; load a configuration that has it: %w", service, ErrUnknownService, err)
	}
	return err
}

// adminAttempts is how many times a request that the admin API closed
// unanswered is sent. Caddy replaces its admin server with every change, so
// the request after a change can reach the server that is going away, which
// closes it without reading it (see the package documentation). Every
// request the client sends may be repeated: GETs read, POST /load of the
// same configuration changes nothing, and a PATCH carries If-Match.
const adminAttempts = 4

func (c *Client) do(ctx context.Context, method, path string, body []byte, header map[string]string) (*http.Response, []byte, error) {
	if c.Admin == "" {
		return nil, nil, errors.New("edge: Client.Admin is empty; set it to the admin API's base URL")
	}
	url := strings.TrimSuffix(c.Admin, "/") + path
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	for attempt := 1; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, rd)
		if err != nil {
			return nil, nil, fmt.Errorf("edge: %w", err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, fmt.Errorf("edge: caddy admin API %s %s: %w", method, url, ctx.Err())
			}
			if attempt < adminAttempts && closedUnanswered(err) {
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
				}
				continue
			}
			return nil, nil, fmt.Errorf("edge: caddy admin API unreachable: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("edge: caddy admin API %s %s: read answer: %w", method, url, err)
		}
		if resp.StatusCode/100 != 2 {
			return nil, nil, &AdminError{Method: method, URL: url, Status: resp.StatusCode, Message: adminMessage(b)}
		}
		return resp, b, nil
	}
}

// closedUnanswered reports an error of a connection the server closed or
// reset before it answered.
func closedUnanswered(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// adminMessage extracts Caddy's {"error": "..."} message, or shows the body.
func adminMessage(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	if s == "" {
		s = "(empty answer)"
	}
	return s
}
