package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/deploy"
	ecsdeploy "github.com/gantry-dev/gantry/internal/deploy/ecs"
)

// scenario is one release deployed to a service of 2 tasks.
type scenario struct {
	Key, Name         string
	Breaker, Rollback bool
	Image             string
	Crash             bool
}

var scenarios = []*scenario{
	{Key: "crash-cb", Name: "Crashing release, circuit breaker with rollback", Breaker: true, Rollback: true, Image: imgCrash, Crash: true},
	{Key: "crash", Name: "Crashing release, no circuit breaker", Image: imgCrash, Crash: true},
	{Key: "healthy", Name: "Healthy release, circuit breaker with rollback", Breaker: true, Rollback: true, Image: imgGood},
}

const (
	toolGantry = "gantry"
	toolWaiter = "waiter"
)

// logLine is one line a tool logged, at wall time At.
type logLine struct {
	At  time.Time
	Msg string
}

// runResult is one tool's deploy in one scenario.
type runResult struct {
	Sc   *scenario
	Tool string
	// Update is when UpdateService returned; Reported when the tool first
	// knew the verdict (gantry: its "first task failed", "failed: …" or
	// "steady state" mark; the waiter: when it returned); End when the step
	// ended (Deploy or the waiter returned). Wall-clock times.
	Update, Reported, End time.Time
	Err                   error
	// Gantry's result.
	Outcome, Kind, DeploymentID, SDArn, NewTD string
	Marks                                     []deploy.Mark // relative to Deploy's start
	DeployStart                               time.Time
	Log                                       []logLine
	// The waiter's DescribeServices calls and what it returned.
	Polls     []time.Time
	WaiterOut *types.Service
	// Calls counts the tool's ECS API calls (after the setup).
	Calls int
	Real  reality
	// Setup is an error before the tool ran.
	Setup error
}

// rel is t in seconds after the update.
func (r *runResult) rel(t time.Time) float64 { return t.Sub(r.Update).Seconds() }

func runAll(ctx context.Context, c config) []*runResult {
	var (
		wg  sync.WaitGroup
		out []*runResult
	)
	for _, sc := range scenarios {
		for _, tool := range []string{toolGantry, toolWaiter} {
			r := &runResult{Sc: sc, Tool: tool}
			out = append(out, r)
			wg.Add(1)
			go func() {
				defer wg.Done()
				runOne(ctx, c, r)
				switch {
				case r.Setup != nil:
					logf("%s / %s: setup failed: %v", sc.Key, tool, r.Setup)
				default:
					logf("%s / %s: step ended %.1f s after UpdateService: %s", sc.Key, tool, r.rel(r.End), oneLine(verdict(r)))
				}
			}()
		}
	}
	wg.Wait()
	return out
}

func runOne(ctx context.Context, c config, r *runResult) {
	f, err := newFake(ctx, r.Sc.Breaker, r.Sc.Rollback)
	if err != nil {
		r.Setup = err
		return
	}
	defer f.close()
	before := len(f.srv.Calls())
	f.start(c.Step)
	if r.Tool == toolGantry {
		runGantry(ctx, c, f, r)
	} else {
		runWaiter(ctx, c, f, r)
	}
	r.Calls = len(f.srv.Calls()) - before
	if r.Setup == nil && !r.Update.IsZero() {
		r.Real = f.observe(context.WithoutCancel(ctx), r.DeploymentID, r.NewTD, r.SDArn, r.Update, r.Sc.Crash)
	}
}

// runGantry deploys the scenario's image with gantry's deploy-ecs as a
// workflow step would: wait, auto-rollback, a 3 s poll.
func runGantry(ctx context.Context, c config, f *fake, r *runResult) {
	var mu sync.Mutex
	logFn := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		r.Log = append(r.Log, logLine{At: time.Now(), Msg: fmt.Sprintf(format, args...)})
	}
	o := ecsdeploy.Options{
		Cluster: cluster, Service: service,
		TaskDefinition: taskDefJSON(imgV1),
		Render:         ecsdeploy.Render{Images: map[string]string{"api": r.Sc.Image}, SHA: sha2},
		SHA:            sha2,
		Wait:           true, AutoRollback: true, PollInterval: c.Poll,
		Clock: clock.Real{},
		Logf:  logFn, Warnf: func(format string, args ...any) { logFn("warning: "+format, args...) },
	}
	r.DeployStart = time.Now()
	res, err := ecsdeploy.Deploy(ctx, f.api, o)
	r.End = time.Now()
	r.Err = err
	if res == nil {
		return
	}
	r.Outcome, r.DeploymentID, r.SDArn, r.NewTD, r.Marks = res.Outcome, res.DeploymentID, res.ServiceDeploymentArn, res.TaskDefinition, res.Timeline
	// After a rollback Deploy's error no longer wraps the *Failure: the
	// timeline's "failed: <kind>" mark names the kind either way.
	var fl *ecsdeploy.Failure
	if errors.As(err, &fl) {
		r.Kind = fl.Kind
	} else if m, ok := markName(res.Timeline, "failed: "); ok {
		r.Kind = strings.TrimPrefix(m, "failed: ")
	}
	if m, ok := markAt(res.Timeline, "service updated"); ok {
		r.Update = r.DeployStart.Add(m)
	} else {
		r.Setup = fmt.Errorf("gantry never updated the service: %v", err)
		return
	}
	for _, prefix := range []string{"first task failed", "failed: ", "steady state"} {
		if m, ok := markAt(res.Timeline, prefix); ok {
			r.Reported = r.DeployStart.Add(m)
			break
		}
	}
	if r.Reported.IsZero() {
		r.Reported = r.End
	}
}

func markName(ms []deploy.Mark, prefix string) (string, bool) {
	for _, m := range ms {
		if strings.HasPrefix(m.Name, prefix) {
			return m.Name, true
		}
	}
	return "", false
}

func markAt(ms []deploy.Mark, prefix string) (time.Duration, bool) {
	for _, m := range ms {
		if strings.HasPrefix(m.Name, prefix) {
			return m.At, true
		}
	}
	return 0, false
}

// recorder times the waiter's DescribeServices calls.
type recorder struct {
	api *ecs.Client
	mu  sync.Mutex
	at  []time.Time
}

func (c *recorder) DescribeServices(ctx context.Context, in *ecs.DescribeServicesInput, opts ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error) {
	c.mu.Lock()
	c.at = append(c.at, time.Now())
	c.mu.Unlock()
	return c.api.DescribeServices(ctx, in, opts...)
}

// runWaiter deploys as aws-actions/amazon-ecs-deploy-task-definition does:
// register the task definition, UpdateService, then the ServicesStable
// waiter with its defaults for MaxWait.
func runWaiter(ctx context.Context, c config, f *fake, r *runResult) {
	in, _, err := ecsdeploy.RenderTaskDefinition(taskDefJSON(r.Sc.Image), ecsdeploy.Render{})
	if err != nil {
		r.Setup = err
		return
	}
	reg, err := f.api.RegisterTaskDefinition(ctx, in)
	if err != nil {
		r.Setup = fmt.Errorf("register api:2: %w", err)
		return
	}
	r.NewTD = aws.ToString(reg.TaskDefinition.TaskDefinitionArn)
	upd, err := f.api.UpdateService(ctx, &ecs.UpdateServiceInput{
		Cluster: aws.String(cluster), Service: aws.String(service), TaskDefinition: aws.String(r.NewTD), ForceNewDeployment: false,
	})
	r.Update = time.Now()
	if err != nil {
		r.Setup = fmt.Errorf("UpdateService: %w", err)
		return
	}
	for _, d := range upd.Service.Deployments {
		if aws.ToString(d.Status) == "PRIMARY" {
			r.DeploymentID = aws.ToString(d.Id)
		}
	}
	r.SDArn = aws.ToString(upd.Service.CurrentServiceDeployment)
	rec := &recorder{api: f.api}
	w := ecs.NewServicesStableWaiter(rec)
	out, err := w.WaitForOutput(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{service}}, c.MaxWait)
	r.End = time.Now()
	r.Reported = r.End
	r.Err = err
	r.Polls = rec.at
	if out != nil && len(out.Services) == 1 {
		r.WaiterOut = &out.Services[0]
	}
}

// waiterOptions are the ServicesStable waiter's defaults in the linked SDK.
type waiterOptions struct{ MinDelay, MaxDelay time.Duration }

func waiterDefaults() waiterOptions {
	var w waiterOptions
	// The option functions run after NewServicesStableWaiter sets its
	// defaults: this one only reads them.
	ecs.NewServicesStableWaiter(&recorder{}, func(o *ecs.ServicesStableWaiterOptions) {
		w = waiterOptions{MinDelay: o.MinDelay, MaxDelay: o.MaxDelay}
	})
	return w
}

// moduleVersions are the versions of the SDK modules linked in.
func moduleVersions() map[string]string {
	v := map[string]string{}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v["go"] = bi.GoVersion
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		v[d.Path] = d.Version
	}
	return v
}
