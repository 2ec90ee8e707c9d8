package compose

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/dockercli"
	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/history"
)

// replacement is the state of replacing one edge service.
type replacement struct {
	dp   *deployer
	svc  string
	port int
	ec   *edge.Client
	edge dockercli.Container
	old  []dockercli.Container
	new  []dockercli.Container
	// switched is true once traffic may reach the new containers.
	switched bool
	// stopped old containers, kept until the deploy is verified so that a
	// rollback only has to start them again.
	stopped []dockercli.Container
}

func (r *replacement) dial(c dockercli.Container) string {
	return net.JoinHostPort(c.Name, strconv.Itoa(r.port))
}

func (r *replacement) upstreams(cs []dockercli.Container, weight int) []edge.Upstream {
	out := make([]edge.Upstream, 0, len(cs))
	for _, c := range cs {
		out = append(out, edge.Upstream{Dial: r.dial(c), Weight: weight})
	}
	return out
}

// replace replaces the containers of an edge service by the chosen strategy:
// the new version starts beside the old one and is verified at its own
// address before the edge sends it any traffic.
func (dp *deployer) replace(ctx context.Context, svc string) error {
	spec := dp.o.File.Services[svc]
	r := &replacement{dp: dp, svc: svc, port: spec.Port}
	err := dp.step(ctx, "edge", func(ctx context.Context) error {
		var err error
		if r.ec, r.edge, err = dp.edgeClient(ctx); err != nil {
			return err
		}
		cs, err := dp.d.Containers(ctx, svc)
		if err != nil {
			return err
		}
		var dead []dockercli.Container
		for _, c := range cs {
			if c.Running {
				r.old = append(r.old, c)
			} else {
				dead = append(dead, c)
			}
		}
		// Stopped leftovers would be started again by docker compose up.
		return dp.d.Remove(ctx, dockercli.IDs(dead)...)
	})
	if err != nil {
		return dp.restartEdge(ctx, dp.restoreFiles(ctx, err))
	}
	replicas := max(spec.Replicas, 1)
	if dp.o.Strategy == Rolling && len(r.old) > 0 {
		return r.rolling(ctx)
	}
	// Blue-green and canary start a full new set beside the old one.
	err = dp.step(ctx, "start", func(ctx context.Context) error {
		var err error
		r.new, err = r.scaleUp(ctx, replicas)
		if err != nil {
			return err
		}
		return dp.waitStarted(ctx, r.new)
	})
	if err == nil {
		err = dp.step(ctx, "verify", func(ctx context.Context) error { return r.verifyNew(ctx, r.new) })
	}
	if err != nil {
		return r.abort(ctx, err)
	}
	if len(r.old) == 0 {
		// First deploy of this service: nothing to switch from.
		return r.route(ctx, r.new)
	}
	if dp.o.Strategy == Canary && !dp.o.Rollback {
		if err := dp.step(ctx, "canary", r.canary); err != nil {
			return r.abort(ctx, err)
		}
	} else if err := dp.step(ctx, "switch", func(ctx context.Context) error {
		r.switched = true
		return r.ec.SetUpstreams(ctx, svc, r.upstreams(r.new, 1))
	}); err != nil {
		return r.abort(ctx, err)
	}
	if err := dp.step(ctx, "drain", func(ctx context.Context) error { return r.retire(ctx, r.old) }); err != nil {
		return r.abort(ctx, err)
	}
	if err := dp.step(ctx, "verify-public", dp.verifyPublic); err != nil {
		return r.abort(ctx, err)
	}
	return dp.step(ctx, "remove-old", func(ctx context.Context) error {
		return dp.d.Remove(context.WithoutCancel(ctx), dockercli.IDs(r.stopped)...)
	})
}

// scaleUp adds n containers of the service with the current files' image
// and returns them; existing containers are left as they are.
func (r *replacement) scaleUp(ctx context.Context, n int) ([]dockercli.Container, error) {
	before, err := r.dp.d.Containers(ctx, r.svc)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, c := range before {
		known[c.ID] = true
	}
	total := strconv.Itoa(len(before) + n)
	if _, err := r.dp.d.Compose(ctx, "up", "--detach", "--no-deps", "--no-recreate", "--scale", r.svc+"="+total, r.svc); err != nil {
		return nil, fmt.Errorf("start the new %s containers: %w", r.svc, err)
	}
	after, err := r.dp.d.Containers(ctx, r.svc)
	if err != nil {
		return nil, err
	}
	var added []dockercli.Container
	for _, c := range after {
		if !known[c.ID] {
			added = append(added, c)
		}
	}
	if len(added) != n {
		return added, fmt.Errorf("docker compose started %d new %s containers, want %d", len(added), r.svc, n)
	}
	return added, nil
}

// verifyNew checks each new container at its own address: the right
// commit, then the contract checks against the first.
func (r *replacement) verifyNew(ctx context.Context, cs []dockercli.Container) error {
	cs, err := r.dp.d.Inspect(ctx, dockercli.IDs(cs)...)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := r.dp.verifyDirect(ctx, c, r.port); err != nil {
			return err
		}
	}
	return r.dp.runChecks(ctx, cs[0], r.port)
}

// route points the edge at cs, loading the edge's whole configuration when
// it does not know the service yet (first deploy, or a fresh edge).
func (r *replacement) route(ctx context.Context, cs []dockercli.Container) error {
	return r.dp.step(ctx, "switch", func(ctx context.Context) error {
		r.switched = true
		err := r.ec.SetUpstreams(ctx, r.svc, r.upstreams(cs, 1))
		if !errors.Is(err, edge.ErrUnknownService) {
			return err
		}
		cfg := edge.Config{Listen: ":80", AdminListen: edge.AdminListen, UpstreamHeader: edge.UpstreamHeader}
		for _, name := range r.dp.o.File.Names() {
			s := r.dp.o.File.Services[name]
			if !s.Edge {
				continue
			}
			var ups []edge.Upstream
			if name == r.svc {
				ups = r.upstreams(cs, 1)
			} else {
				running, err := r.dp.d.Containers(ctx, name)
				if err != nil {
					return err
				}
				for _, c := range running {
					if c.Running {
						ups = append(ups, edge.Upstream{Dial: net.JoinHostPort(c.Name, strconv.Itoa(s.Port)), Weight: 1})
					}
				}
			}
			if len(ups) > 0 {
				cfg.Services = append(cfg.Services, edge.Service{Name: name, Hosts: s.Hosts, Upstreams: ups})
			}
		}
		return r.ec.Load(ctx, cfg)
	})
}

// retire waits until the edge has no request in flight on cs, then stops
// them; they are kept until the deploy is verified.
func (r *replacement) retire(ctx context.Context, cs []dockercli.Container) error {
	dctx, cancel := context.WithTimeout(ctx, r.dp.o.Drain)
	err := r.ec.WaitDrained(dctx, dialsOf(r, cs)...)
	cancel()
	if err != nil {
		r.dp.o.Warnf("%v; stopping them anyway after the drain timeout (%s)", err, r.dp.o.Drain)
	}
	if err := r.dp.d.Stop(ctx, r.dp.o.StopTimeout, dockercli.IDs(cs)...); err != nil {
		return err
	}
	r.stopped = append(r.stopped, cs...)
	return nil
}

func dialsOf(r *replacement, cs []dockercli.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = r.dial(c)
	}
	return out
}

// abort undoes a failed replacement: the old containers serve again, the
// new ones are removed, the previous files are restored.
func (r *replacement) abort(ctx context.Context, cause error) error {
	dp := r.dp
	if !dp.o.AutoRollback {
		dp.res.Outcome = history.ResultAbandoned
		return fmt.Errorf("%w; auto-rollback is off: the new containers (%v) were left in place for debugging", cause, dockercli.Names(r.new))
	}
	err := dp.step(ctx, "rollback", func(ctx context.Context) error {
		ctx = context.WithoutCancel(ctx)
		var errs []error
		if len(r.stopped) > 0 {
			if _, err := dp.d.Run(ctx, append([]string{"start"}, dockercli.IDs(r.stopped)...)...); err != nil {
				errs = append(errs, fmt.Errorf("start the previous containers again: %w", err))
			}
		}
		if r.switched && len(r.old) > 0 {
			if err := r.ec.SetUpstreams(ctx, r.svc, r.upstreams(r.old, 1)); err != nil {
				errs = append(errs, fmt.Errorf("send traffic back to the previous version: %w", err))
			}
		}
		if err := r.removeNew(ctx); err != nil {
			errs = append(errs, fmt.Errorf("remove the new containers: %w", err))
		}
		errs = append(errs, dp.restoreFiles(ctx, nil))
		return errors.Join(errs...)
	})
	if r.switched && len(r.old) > 0 {
		dp.res.Outcome = history.ResultRolledBack
	}
	if err != nil {
		return fmt.Errorf("%w; rolling back also failed: %v", cause, err)
	}
	if len(r.old) > 0 {
		return fmt.Errorf("%w; the previous version kept serving", cause)
	}
	return cause
}

// removeNew removes every container of the service that is not one of the
// old ones: the new containers, including any a failed or cut command
// created without reporting it.
func (r *replacement) removeNew(ctx context.Context) error {
	cs, err := r.dp.d.Containers(ctx, r.svc)
	if err != nil {
		return err
	}
	old := map[string]bool{}
	for _, c := range r.old {
		old[c.ID] = true
	}
	var extra []dockercli.Container
	for _, c := range cs {
		if !old[c.ID] {
			extra = append(extra, c)
		}
	}
	r.new = extra
	return r.dp.d.Remove(ctx, dockercli.IDs(extra)...)
}

// canary shifts traffic to the new containers in steps (edge.Shift),
// probing the edge between steps; a step whose error rate is over the limit
// ends the shift, and abort sends all traffic back.
func (r *replacement) canary(ctx context.Context) error {
	dp := r.dp
	weights := func(pct int) []edge.Upstream {
		if pct < 100 {
			return append(r.upstreams(r.old, (100-pct)*len(r.new)), r.upstreams(r.new, pct*len(r.old))...)
		}
		return r.upstreams(r.new, 1)
	}
	route := func(ctx context.Context, ups []edge.Upstream) error {
		r.switched = true
		return r.ec.SetUpstreams(ctx, r.svc, ups)
	}
	gate := func(ctx context.Context, pct int) error {
		u := "http://" + net.JoinHostPort(r.edge.IP, "80") + dp.o.HealthPath
		return edge.Gate(ctx, dp.http, clock.Real{}, u, dp.o.CanaryInterval, dp.o.CanaryMaxErrorRate, fmt.Sprintf("canary at %d%%", pct), dp.o.Logf)
	}
	return edge.Shift(ctx, dp.o.CanarySteps, weights, route, gate, func(pct int) {
		dp.o.Logf("canary: %d%% of traffic to the new version", pct)
	})
}

// rolling replaces one old container at a time: start a new one, verify it,
// swap it for an old one at the edge, drain and remove the old one. A
// failure brings the replaced containers back on the previous image.
func (r *replacement) rolling(ctx context.Context) error {
	dp := r.dp
	live := append([]dockercli.Container(nil), r.old...)
	replaced := 0
	for i, oc := range r.old {
		err := dp.step(ctx, fmt.Sprintf("replace %d/%d", i+1, len(r.old)), func(ctx context.Context) error {
			nc, err := r.scaleUp(ctx, 1)
			r.new = append(r.new, nc...)
			if err != nil {
				return err
			}
			if err := dp.waitStarted(ctx, nc); err != nil {
				return err
			}
			if err := r.verifyNew(ctx, nc); err != nil {
				return err
			}
			live = append(without(live, oc), nc...)
			r.switched = true
			if err := r.ec.SetUpstreams(ctx, r.svc, r.upstreams(live, 1)); err != nil {
				return err
			}
			if err := r.retire(ctx, []dockercli.Container{oc}); err != nil {
				return err
			}
			// Removed at once: a stopped container would be started again by
			// the next docker compose up --scale.
			r.stopped = nil
			replaced++
			return dp.d.Remove(ctx, oc.ID)
		})
		if err != nil {
			return r.rollingAbort(ctx, err, live, replaced)
		}
	}
	if err := dp.step(ctx, "verify-public", dp.verifyPublic); err != nil {
		return r.rollingAbort(ctx, err, live, replaced)
	}
	return nil
}

// rollingAbort restores the previous files, starts replaced containers of
// the previous image again, sends traffic to the previous version only and
// removes the new containers.
func (r *replacement) rollingAbort(ctx context.Context, cause error, live []dockercli.Container, replaced int) error {
	dp := r.dp
	if !dp.o.AutoRollback {
		dp.res.Outcome = history.ResultAbandoned
		return fmt.Errorf("%w; auto-rollback is off: the new containers (%v) were left in place for debugging", cause, dockercli.Names(r.new))
	}
	var keep []dockercli.Container // old containers still serving
	for _, c := range live {
		if isOld(r.old, c) {
			keep = append(keep, c)
		}
	}
	err := dp.step(ctx, "rollback", func(ctx context.Context) error {
		ctx = context.WithoutCancel(ctx)
		// The new containers are those that are not old, whatever a cut
		// command left behind; list them before old ones are recreated.
		cs, err := dp.d.Containers(ctx, r.svc)
		if err != nil {
			return err
		}
		r.new = r.new[:0]
		for _, c := range cs {
			if !isOld(r.old, c) {
				r.new = append(r.new, c)
			}
		}
		if err := dp.restoreFiles(ctx, nil); err != nil {
			return err
		}
		if replaced > 0 {
			back, err := r.scaleUp(ctx, replaced)
			if err != nil {
				return err
			}
			if err := dp.waitStarted(ctx, back); err != nil {
				return err
			}
			back, err = dp.d.Inspect(ctx, dockercli.IDs(back)...)
			if err != nil {
				return err
			}
			keep = append(keep, back...)
		}
		if r.switched && len(keep) > 0 {
			if err := r.ec.SetUpstreams(ctx, r.svc, r.upstreams(keep, 1)); err != nil {
				return err
			}
			dctx, cancel := context.WithTimeout(ctx, dp.o.Drain)
			_ = r.ec.WaitDrained(dctx, dialsOf(r, r.new)...)
			cancel()
		}
		return dp.d.Remove(ctx, dockercli.IDs(r.new)...)
	})
	if replaced > 0 || r.switched {
		dp.res.Outcome = history.ResultRolledBack
	}
	if err != nil {
		return fmt.Errorf("%w; rolling back also failed: %v", cause, err)
	}
	return fmt.Errorf("%w; the previous version is serving again", cause)
}

func isOld(old []dockercli.Container, c dockercli.Container) bool {
	for _, o := range old {
		if o.ID == c.ID {
			return true
		}
	}
	return false
}

func without(cs []dockercli.Container, x dockercli.Container) []dockercli.Container {
	out := make([]dockercli.Container, 0, len(cs))
	for _, c := range cs {
		if c.ID != x.ID {
			out = append(out, c)
		}
	}
	return out
}

// restartEdge starts the previous edge again, with the files restoreFiles
// put back, when a new edge that did not start replaced it; the routing it
// resumes is in its volumes. It returns err, saying what became of the edge.
func (dp *deployer) restartEdge(ctx context.Context, err error) error {
	if !dp.edgeReplaced {
		return err
	}
	dp.edgeReplaced = false
	if !dp.restored || dp.d.NoOverride {
		return fmt.Errorf("%w; the previous edge was removed and no previous files are left to start it again", err)
	}
	// startEdge returns once the edge's admin API answers, which is after
	// Caddy resumed its configuration and so its listeners.
	if _, _, serr := dp.startEdge(context.WithoutCancel(ctx)); serr != nil {
		return fmt.Errorf("%w; starting the previous edge again also failed: %v", err, serr)
	}
	return fmt.Errorf("%w; the previous edge was started again", err)
}
