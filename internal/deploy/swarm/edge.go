package swarm

// Blue-green and canary on Swarm, with the edge proxy of deploy-compose.
//
// Each service served through the edge (label gantry.edge) runs as two Swarm
// services, <name>-blue and <name>-green, both rendered from the service's
// own definition in the Compose file; gantry's edge (Caddy) runs as the stack
// service gantry-edge, pinned to the manager gantry connects to, and
// publishes its ports in host mode, so it needs no routing mesh. A deploy
// updates the idle color, verifies its tasks at their own address, then
// switches (blue-green) or shifts in steps (canary) the edge's upstreams, and
// scales the old color to 0 once its requests drained: until then a failure
// only has to point the edge back.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
	"golang.org/x/sync/errgroup"

	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/verify"
)

// Strategies.
const (
	// Rolling is Swarm's own rolling update (deploy.update_config).
	Rolling = "rolling"
	// BlueGreen starts a full new color beside the live one and switches the
	// edge to it at once.
	BlueGreen = "blue-green"
	// Canary shifts the edge's traffic to the new color in steps, probing.
	Canary = "canary"
)

// Defaults of the edge strategies.
const (
	DefaultHealthPath         = "/health"
	DefaultCanaryInterval     = 30 * time.Second
	DefaultCanaryMaxErrorRate = 0.01
	DefaultDrain              = 30 * time.Second
	DefaultVerifyTimeout      = 2 * time.Minute
)

// gwbridge is the bridge network through which the manager reaches its task
// containers, whatever overlay network they are on.
const gwbridge = "docker_gwbridge"

// colors are the two Swarm services of one edge service, in the order a
// first deploy uses them.
var colors = [2]string{"blue", "green"}

// colorPlan is what a deploy does to one edge service.
type colorPlan struct {
	name string // web
	port int
	// live is the color that serves now ("" before the first deploy); next
	// is the one this deploy updates ("" when the service is not deployed).
	live, next               string
	liveImage                string
	liveReplicas             uint64
	nextImage                string
	nextReplicas             uint64 // 0: as the file says
	switched                 bool
	liveService, nextService string // names in the stack: web-blue
}

func colorName(svc, color string) string { return svc + "-" + color }

// edgeServices are the file's services served through the edge, sorted.
func (o Options) edgeServices() []string {
	if o.File == nil {
		return nil
	}
	var out []string
	for _, n := range o.File.Names() {
		if o.File.Services[n].Edge {
			out = append(out, n)
		}
	}
	return out
}

// usesEdge tells whether the deploy runs through the edge.
func (o Options) usesEdge() bool { return o.Strategy == BlueGreen || o.Strategy == Canary }

// ValidateEdge reports a mistake in an edge deploy's options before anything
// changes: edge services need a known port and must not publish ports.
func (o Options) ValidateEdge() error {
	if !o.usesEdge() {
		return nil
	}
	svcs := o.edgeServices()
	if len(svcs) == 0 {
		return fmt.Errorf("strategy %s needs a service served through the edge: label it gantry.edge in %s", o.Strategy, o.File.Path)
	}
	for _, s := range svcs {
		if err := o.File.Services[s].ValidateForEdge(); err != nil {
			return err
		}
	}
	for _, p := range o.EdgePorts {
		if _, _, err := parseEdgePort(p); err != nil {
			return err
		}
	}
	return nil
}

func parseEdgePort(p string) (published, target int, err error) {
	a, b, ok := strings.Cut(p, ":")
	if !ok {
		b = a
	}
	published, err1 := strconv.Atoi(a)
	target, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || published <= 0 || published > 65535 || target <= 0 || target > 65535 {
		return 0, 0, fmt.Errorf("edge port %q is not PUBLISHED:TARGET (e.g. 80:80)", p)
	}
	return published, target, nil
}

// plan decides, from the services as they are, which color each edge service
// deploys to.
func (dp *deployer) plan() []*colorPlan {
	var plans []*colorPlan
	for _, name := range dp.o.edgeServices() {
		p := &colorPlan{name: name, port: dp.o.File.Services[name].Port}
		var best uint64
		for _, c := range colors {
			if s := dp.before[dp.full(colorName(name, c))]; s != nil && desired(s) > best {
				p.live, p.liveImage, best = c, image(s), desired(s)
			}
		}
		if r := dp.routed[name]; r != "" && r != p.live {
			// Both colors run after an interrupted deploy: the edge says which serves.
			if s := dp.before[dp.full(colorName(name, r))]; s != nil && desired(s) > 0 {
				p.live, p.liveImage, best = r, image(s), desired(s)
			}
		}
		p.liveReplicas = best
		if p.live != "" {
			p.liveService = colorName(name, p.live)
		}
		deploying := p.live == "" || slices.Contains(dp.o.Services, name)
		if deploying {
			p.next = colors[0]
			if p.live == colors[0] {
				p.next = colors[1]
			}
			p.nextService = colorName(name, p.next)
			p.nextImage = dp.o.Images[name]
			if n, ok := dp.o.Scale[name]; ok {
				p.nextReplicas = n
			} else if !fileSetsReplicas(dp.o.File.Data, name) && p.liveReplicas > 0 {
				p.nextReplicas = p.liveReplicas
			}
		}
		plans = append(plans, p)
	}
	return plans
}

// fileSetsReplicas tells whether the file's service sets deploy.replicas.
func fileSetsReplicas(data []byte, svc string) bool {
	var doc struct {
		Services map[string]struct {
			Deploy struct {
				Replicas *int `yaml:"replicas"`
			} `yaml:"deploy"`
		} `yaml:"services"`
	}
	if yaml.Unmarshal(data, &doc) != nil {
		return false
	}
	return doc.Services[svc].Deploy.Replicas != nil
}

// edgeSpec is the edge service as the deploy renders it.
type edgeSpec struct {
	image  string
	ports  []map[string]any
	nodeID string
}

// renderStack renders the stack file of an edge deploy from the user's file:
// each edge service replaced by its colors, and the edge added. It works on
// the file's own YAML (so docker stack deploy still interpolates and reads
// everything else exactly as written) and writes JSON, which is YAML.
func renderStack(data []byte, plans []*colorPlan, e edgeSpec) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("reading the Compose file: %w", err)
	}
	services, _ := doc["services"].(map[string]any)
	if services == nil {
		return nil, errors.New("the Compose file has no services")
	}
	var networks []any
	seenNet := map[string]bool{}
	for _, p := range plans {
		def, _ := services[p.name].(map[string]any)
		if def == nil {
			return nil, fmt.Errorf("service %s is not a mapping in the Compose file", p.name)
		}
		delete(services, p.name)
		for _, n := range networkNames(def["networks"]) {
			if !seenNet[n] {
				seenNet[n] = true
				networks = append(networks, n)
			}
		}
		add := func(svc, img string, replicas uint64) error {
			c, err := deepCopy(def)
			if err != nil {
				return err
			}
			if img != "" {
				c["image"] = img
			}
			deploy, _ := c["deploy"].(map[string]any)
			if deploy == nil {
				deploy = map[string]any{}
			}
			if replicas > 0 || svc == p.liveService {
				deploy["replicas"] = replicas
			}
			// Names resolve to the tasks themselves: the edge balances and
			// drains by task, and needs no virtual IP (IPVS).
			deploy["endpoint_mode"] = "dnsrr"
			labels, _ := deploy["labels"].(map[string]any)
			if labels == nil {
				labels = map[string]any{}
			}
			labels["gantry.color-of"] = p.name
			deploy["labels"] = labels
			c["deploy"] = deploy
			services[svc] = c
			return nil
		}
		if p.liveService != "" {
			if err := add(p.liveService, p.liveImage, p.liveReplicas); err != nil {
				return nil, err
			}
		}
		if p.nextService != "" {
			if err := add(p.nextService, p.nextImage, p.nextReplicas); err != nil {
				return nil, err
			}
		}
	}
	es := map[string]any{
		"image": e.image,
		// As deploy-compose's edge: Caddy resumes its last configuration, and
		// its admin API listens inside the container only (docker exec).
		"entrypoint":  edge.ImageEntrypoint(),
		"environment": edge.ImageEnvironment(),
		"volumes":     []string{"gantry-edge-config:/config", "gantry-edge-data:/data"},
		"ports":       e.ports,
		"deploy": map[string]any{
			"replicas": 1,
			// On the manager gantry reaches through SSH, where it runs docker
			// exec for the admin API, and where its configuration volume is.
			"placement": map[string]any{"constraints": []string{"node.id == " + e.nodeID}},
			// Host-mode ports cannot be bound twice: the new edge starts
			// after the old one stopped (only when the edge itself changes).
			"update_config": map[string]any{"order": "stop-first"},
			"labels":        map[string]string{"gantry.role": "edge"},
		},
	}
	if len(networks) > 0 {
		es["networks"] = networks
	}
	services[composefile.EdgeService] = es
	vols, _ := doc["volumes"].(map[string]any)
	if vols == nil {
		vols = map[string]any{}
	}
	vols["gantry-edge-config"] = map[string]any{}
	vols["gantry-edge-data"] = map[string]any{}
	doc["volumes"] = vols
	return json.MarshalIndent(doc, "", "  ")
}

// networkNames lists a service's networks, in either Compose syntax.
func networkNames(v any) []string {
	var out []string
	switch n := v.(type) {
	case []any:
		for _, x := range n {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	case map[string]any:
		for k := range n {
			out = append(out, k)
		}
		slices.Sort(out)
	}
	return out
}

func deepCopy(m map[string]any) (map[string]any, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("the Compose file holds a value JSON cannot carry: %w", err)
	}
	var out map[string]any
	return out, json.Unmarshal(b, &out)
}

// edgePorts are the edge's published ports in host mode: from the options,
// else as the running edge has them, else 80:80.
func (dp *deployer) edgePorts() []map[string]any {
	var out []map[string]any
	add := func(pub, target int) {
		out = append(out, map[string]any{"target": target, "published": pub, "protocol": "tcp", "mode": "host"})
	}
	for _, p := range dp.o.EdgePorts {
		pub, target, _ := parseEdgePort(p)
		add(pub, target)
	}
	if len(out) == 0 {
		if s := dp.before[dp.full(composefile.EdgeService)]; s != nil && s.Spec.EndpointSpec != nil {
			for _, p := range s.Spec.EndpointSpec.Ports {
				add(int(p.PublishedPort), int(p.TargetPort))
			}
		}
	}
	if len(out) == 0 {
		add(80, 80)
	}
	return out
}

// edgeImage is the edge's image: from the options, else the running edge's,
// else gantry's.
func (dp *deployer) edgeImage() string {
	if dp.o.EdgeImage != "" {
		return dp.o.EdgeImage
	}
	if s := dp.before[dp.full(composefile.EdgeService)]; s != nil {
		return image(s)
	}
	return edge.DefaultImage
}

// runEdge is an edge deploy: render, stack deploy, converge, verify the new
// colors, switch or shift the edge, verify, retire the old colors.
func (dp *deployer) runEdge(ctx context.Context) error {
	o := dp.o
	dp.http = &http.Client{Transport: &http.Transport{DialContext: dp.h.DialContext, DisableKeepAlives: true}}
	for _, s := range o.edgeServices() {
		if !o.File.Services[s].HasHealthcheck {
			dp.warn("service %s has no healthcheck in %s: Swarm then counts a task as ready once it runs; gantry still verifies each new task before the edge sends it traffic", s, o.File.Path)
		}
	}
	if err := dp.step(ctx, "inspect", dp.snapshot); err != nil {
		return err
	}
	if dp.before[dp.full(composefile.EdgeService)] != nil {
		// The edge knows which color serves when both run (an interrupted deploy).
		ec, _, err := dp.edgeClient(ctx, 0)
		switch {
		case err == nil:
			for _, s := range o.edgeServices() {
				if ups, err := ec.Upstreams(ctx, s); err == nil && len(ups) > 0 {
					dp.routed[s] = colorOfDial(s, ups)
				}
			}
		case errors.Is(err, edge.ErrNoStdioCommand) && o.EdgeImage == "":
			// The deploy would keep the running edge's image: stop before any change.
			return fmt.Errorf("the running edge's image %s has no %s command, so gantry cannot reach its admin API without opening it to the stack's networks: set input edge-image to gantry's edge image %s (or one built from edge/ in gantry's repository)", dp.edgeImage(), edge.StdioCommand, edge.DefaultImage)
		}
	}
	plans := dp.plan()
	var stack []byte
	err := dp.step(ctx, "render", func(ctx context.Context) error {
		img := dp.edgeImage()
		out, err := dp.read(ctx, "info", "--format", "{{.Swarm.NodeID}}")
		if err != nil {
			return fmt.Errorf("reading the manager's node ID: %w", err)
		}
		nodeID := strings.TrimSpace(string(out))
		if nodeID == "" {
			return fmt.Errorf("%s is not a Swarm node (docker info shows no node ID)", dp.h)
		}
		stack, err = renderStack(o.File.Data, plans, edgeSpec{image: img, ports: dp.edgePorts(), nodeID: nodeID})
		return err
	})
	if err != nil {
		return err
	}
	// The watch follows the new colors, the edge and the other deployed services.
	var watched []string
	for _, s := range o.Services {
		if !o.File.Services[s].Edge {
			watched = append(watched, s)
		}
	}
	for _, p := range plans {
		if p.nextService != "" {
			watched = append(watched, p.nextService)
		}
	}
	dp.o.Services = append(watched, composefile.EdgeService)
	dp.stack = stack
	if err := dp.step(ctx, "upload", dp.upload); err != nil {
		return err
	}
	if err := dp.step(ctx, "stack deploy", dp.deploy); err != nil {
		return err
	}
	if err := dp.step(ctx, "converge", dp.watch); err != nil {
		return dp.recover(ctx, err)
	}
	ec, edgeIP, err := dp.edgeClient(ctx, 30*time.Second)
	if err != nil {
		return dp.abortEdge(ctx, nil, plans, err)
	}
	for _, p := range plans {
		if p.nextService == "" {
			continue
		}
		if err := dp.step(ctx, "verify "+p.nextService, func(ctx context.Context) error { return dp.verifyTasks(ctx, p) }); err != nil {
			return dp.abortEdge(ctx, ec, plans, err)
		}
	}
	for _, p := range plans {
		if p.nextService == "" {
			continue
		}
		var err error
		if o.Strategy == Canary && p.live != "" && !o.Rollback {
			err = dp.step(ctx, "canary "+p.name, func(ctx context.Context) error { return dp.canary(ctx, ec, edgeIP, plans, p) })
		} else {
			err = dp.step(ctx, "switch "+p.name, func(ctx context.Context) error {
				p.switched = true
				return dp.route(ctx, ec, plans, p, []edge.Upstream{{Dial: p.dial(p.nextService), Weight: 1}})
			})
		}
		if err != nil {
			return dp.abortEdge(ctx, ec, plans, err)
		}
	}
	if o.URL != "" && o.Verify != nil {
		err := dp.step(ctx, "verify", func(ctx context.Context) error { return o.Verify(ctx, o.URL) })
		if err != nil {
			return dp.abortEdge(ctx, ec, plans, err)
		}
		dp.res.Verified = true
	}
	return dp.step(ctx, "retire", func(ctx context.Context) error { return dp.retire(ctx, ec, plans) })
}

func (p *colorPlan) dial(svc string) string { return net.JoinHostPort(svc, strconv.Itoa(p.port)) }

// colorOfDial names the color the edge sends most of a service's traffic to.
func colorOfDial(svc string, ups []edge.Upstream) string {
	best, color := 0, ""
	for _, u := range ups {
		host, _, _ := net.SplitHostPort(u.Dial)
		for _, c := range colors {
			if host == colorName(svc, c) && u.Weight > best {
				best, color = u.Weight, c
			}
		}
	}
	return color
}

// taskContainer is a running container of a stack service on the manager.
type taskContainer struct {
	id string
	ip string // on docker_gwbridge
}

// localAddrs are the docker_gwbridge addresses of the running containers of a
// stack service on the manager.
func (dp *deployer) localAddrs(ctx context.Context, svc string) ([]string, error) {
	cs, err := dp.localContainers(ctx, svc)
	addrs := make([]string, len(cs))
	for i, c := range cs {
		addrs[i] = c.ip
	}
	return addrs, err
}

// localContainers are the running containers of a stack service on the
// manager that have an address on docker_gwbridge.
func (dp *deployer) localContainers(ctx context.Context, svc string) ([]taskContainer, error) {
	out, err := dp.read(ctx, "ps", "--quiet", "--no-trunc", "--filter", "status=running", "--filter", "label=com.docker.swarm.service.name="+dp.full(svc))
	if err != nil {
		return nil, fmt.Errorf("listing the containers of %s: %w", svc, err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil, nil
	}
	out, err = dp.read(ctx, "network", "inspect", gwbridge, "--format", "{{json .Containers}}")
	if err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", gwbridge, err)
	}
	var eps map[string]struct{ IPv4Address string }
	if err := json.Unmarshal(out, &eps); err != nil {
		return nil, fmt.Errorf("reading docker network inspect %s: %w", gwbridge, err)
	}
	var cs []taskContainer
	for _, id := range ids {
		if ep, ok := eps[id]; ok {
			if ip, _, ok := strings.Cut(ep.IPv4Address, "/"); ok {
				cs = append(cs, taskContainer{id: id, ip: ip})
			}
		}
	}
	return cs, nil
}

// edgeClient finds the edge's container on the manager, waits up to wait
// for its admin API, and returns a client that reaches the API through
// docker exec (it listens only inside the container), and the container's
// address.
func (dp *deployer) edgeClient(ctx context.Context, wait time.Duration) (*edge.Client, string, error) {
	deadline := dp.o.Clock.Now().Add(wait)
	for {
		cs, err := dp.localContainers(ctx, composefile.EdgeService)
		if err != nil {
			return nil, "", err
		}
		var last error = errors.New("its container does not run on this manager")
		if len(cs) > 0 {
			ec := edge.ExecClient(dp.h, dp.d.Argv(append([]string{"exec", "-i", cs[0].id}, edge.ExecArgv()...)...))
			// Detect finds gantry-edge's upstreams module, which an image
			// with the relay command has.
			_, err := ec.Detect(ctx)
			if errors.Is(err, edge.ErrNoStdioCommand) {
				return nil, "", fmt.Errorf("input edge-image: %s: %w; use gantry's edge image %s (or one built from edge/ in gantry's repository)", dp.edgeImage(), err, edge.DefaultImage)
			}
			if err == nil {
				closed, err := ec.CloseAdmin(ctx)
				if err != nil {
					return nil, "", err
				}
				if closed {
					dp.o.Logf("the edge's admin API listened beyond its container (an edge set up by an older gantry); it now listens on %s inside it only", edge.AdminListen)
				}
				return ec, cs[0].ip, nil
			}
			last = err
		}
		if !dp.o.Clock.Now().Before(deadline) {
			return nil, "", fmt.Errorf("edge admin API on %s: %w", dp.h, last)
		}
		if err := dp.o.Clock.Sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, "", err
		}
	}
}

// verifyTasks checks every new task that runs on the manager at its own
// address; tasks on other nodes are checked through the edge once it sends
// them traffic.
func (dp *deployer) verifyTasks(ctx context.Context, p *colorPlan) error {
	addrs, err := dp.localAddrs(ctx, p.nextService)
	if err != nil {
		return err
	}
	want := uint64(0)
	for _, r := range dp.res.Services {
		if r.Name == p.nextService {
			want = r.Desired
		}
	}
	if uint64(len(addrs)) < want {
		dp.warn("%d of %d tasks of %s run on other nodes than the manager: they are verified through the edge, after the switch", want-uint64(len(addrs)), want, p.nextService)
	}
	timeout := dp.o.VerifyTimeout
	if timeout <= 0 {
		timeout = DefaultVerifyTimeout
	}
	// Each task needs its own run of consecutive good answers: check them at once.
	g, ctx := errgroup.WithContext(ctx)
	for _, ip := range addrs {
		g.Go(func() error {
			u := "http://" + net.JoinHostPort(ip, strconv.Itoa(p.port)) + dp.o.healthPath()
			// Only the new task answers at its address: a wrong commit there
			// is certain after a few answers.
			res, err := verify.Wait(ctx, verify.Options{URL: u, SHA: dp.o.SHA, Client: dp.http, Timeout: timeout, Logf: dp.o.Logf, OwnAddress: true})
			if err != nil {
				return fmt.Errorf("a task of %s: %w", p.nextService, err)
			}
			dp.o.Logf("task of %s at %s answers %s", p.nextService, ip, commit.Short(res.ServedSHA))
			return nil
		})
	}
	return g.Wait()
}

func (o Options) healthPath() string {
	if o.HealthPath != "" {
		return o.HealthPath
	}
	return DefaultHealthPath
}

// route points one edge service at ups, loading the edge's whole
// configuration when it does not know the service yet (first deploy, or a
// fresh edge).
func (dp *deployer) route(ctx context.Context, ec *edge.Client, plans []*colorPlan, p *colorPlan, ups []edge.Upstream) error {
	err := ec.SetUpstreams(ctx, p.name, ups)
	if !errors.Is(err, edge.ErrUnknownService) {
		return err
	}
	cfg := edge.Config{Listen: ":80", AdminListen: edge.AdminListen, UpstreamHeader: edge.UpstreamHeader}
	for _, q := range plans {
		var us []edge.Upstream
		switch {
		case q == p:
			us = ups
		case q.switched && q.nextService != "":
			us = []edge.Upstream{{Dial: q.dial(q.nextService), Weight: 1}}
		case q.liveService != "":
			us = []edge.Upstream{{Dial: q.dial(q.liveService), Weight: 1}}
		default:
			continue // not deployed yet: routed when its turn comes
		}
		cfg.Services = append(cfg.Services, edge.Service{Name: q.name, Hosts: dp.o.File.Services[q.name].Hosts, Upstreams: us})
	}
	return ec.Load(ctx, cfg)
}

// canary shifts a service's traffic to the new color in steps (edge.Shift),
// probing the edge at each; 100 % ends it.
func (dp *deployer) canary(ctx context.Context, ec *edge.Client, edgeIP string, plans []*colorPlan, p *colorPlan) error {
	o := dp.o
	weights := func(pct int) []edge.Upstream {
		if pct < 100 {
			return []edge.Upstream{{Dial: p.dial(p.liveService), Weight: 100 - pct}, {Dial: p.dial(p.nextService), Weight: pct}}
		}
		return []edge.Upstream{{Dial: p.dial(p.nextService), Weight: 1}}
	}
	route := func(ctx context.Context, ups []edge.Upstream) error {
		p.switched = true
		return dp.route(ctx, ec, plans, p, ups)
	}
	gate := func(ctx context.Context, pct int) error { return dp.probe(ctx, edgeIP, p, pct) }
	return edge.Shift(ctx, o.CanarySteps, weights, route, gate, func(pct int) {
		o.Logf("canary: %d%% of %s's traffic to %s", pct, p.name, p.nextService)
	})
}

// probe sends requests through the edge (with the service's host name) for
// the canary interval and fails when too many fail.
func (dp *deployer) probe(ctx context.Context, edgeIP string, p *colorPlan, pct int) error {
	o := dp.o
	host := "edge"
	if hs := o.File.Services[p.name].Hosts; len(hs) > 0 {
		host = hs[0]
	}
	target := net.JoinHostPort(edgeIP, "80")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dp.h.DialContext(ctx, network, target)
		},
	}}
	interval, maxRate := o.CanaryInterval, o.CanaryMaxErrorRate
	if interval <= 0 {
		interval = DefaultCanaryInterval
	}
	if maxRate <= 0 {
		maxRate = DefaultCanaryMaxErrorRate
	}
	return edge.Gate(ctx, client, o.Clock, "http://"+host+o.healthPath(), interval, maxRate, fmt.Sprintf("canary of %s at %d%%", p.name, pct), o.Logf)
}

// retire waits until the edge has no request in flight on the old colors,
// then scales them to 0; they keep their image for a fast switch back.
func (dp *deployer) retire(ctx context.Context, ec *edge.Client, plans []*colorPlan) error {
	drain := dp.o.Drain
	if drain <= 0 {
		drain = DefaultDrain
	}
	var scale []string
	for _, p := range plans {
		if !p.switched || p.liveService == "" {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, drain)
		err := ec.WaitDrained(dctx, p.dial(p.liveService))
		cancel()
		if err != nil {
			dp.warn("%v; scaling %s to 0 anyway after the drain timeout (%s)", err, p.liveService, drain)
		}
		scale = append(scale, dp.full(p.liveService)+"=0")
	}
	if len(scale) == 0 {
		return nil
	}
	_, err := dp.d.Run(ctx, append([]string{"service", "scale", "--detach"}, scale...)...)
	return err
}

// abortEdge undoes a failed edge deploy: the edge points back at the colors
// that served, then the updated services go back to their previous spec
// (the new colors to their old image and 0 replicas).
func (dp *deployer) abortEdge(ctx context.Context, ec *edge.Client, plans []*colorPlan, cause error) error {
	if !dp.o.AutoRollback {
		dp.res.Outcome = history.ResultAbandoned
		return fmt.Errorf("%w; auto-rollback is off: the new colors keep running for debugging, and the edge was left as it is", cause)
	}
	ctx = context.WithoutCancel(ctx)
	var errs []error
	err := dp.step(ctx, "switch back", func(ctx context.Context) error {
		for _, p := range plans {
			if !p.switched || p.liveService == "" || ec == nil {
				continue
			}
			if err := ec.SetUpstreams(ctx, p.name, []edge.Upstream{{Dial: p.dial(p.liveService), Weight: 1}}); err != nil {
				errs = append(errs, fmt.Errorf("pointing the edge back at %s: %w", p.liveService, err))
				continue
			}
			dp.o.Logf("the edge sends %s's traffic to %s again", p.name, p.liveService)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("%w; and switching back failed: %v", cause, err)
	}
	return dp.recover(ctx, cause)
}

// stackPath is the rendered stack file of an edge deploy.
func (dp *deployer) stackPath() string { return path.Join(dp.o.Dir, ".gantry", "stack.yml") }
