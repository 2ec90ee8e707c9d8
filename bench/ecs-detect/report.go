package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	ecsdeploy "github.com/gantry-dev/gantry/internal/deploy/ecs"
	"github.com/gantry-dev/gantry/internal/fakes/ecsfake"
)

// Targets for gantry.
const (
	targetHealthyOver = 5 * time.Second // step end after ECS marked the deployment COMPLETED
)

// results is everything the report is made of.
type results struct {
	Config   config
	Started  time.Time
	Runs     []*runResult
	Machine  string
	Build    string
	Versions map[string]string
	Waiter   waiterOptions
	Date     time.Time
}

func (res *results) run(key, tool string) *runResult {
	for _, r := range res.Runs {
		if r.Sc.Key == key && r.Tool == tool {
			return r
		}
	}
	return nil
}

func toolName(tool string) string {
	if tool == toolGantry {
		return "gantry deploy-ecs"
	}
	return "SDK ServicesStable waiter"
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

// at is t in seconds after r's update, "+12.3".
func at(r *runResult, t time.Time) string { return fmt.Sprintf("%+.1f", r.rel(t)) }

// secs2 is d in seconds to the fake's resolution and a bit.
func secs2(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// failed reports whether the tool's verdict is a failure.
func failed(r *runResult) bool { return r.Err != nil }

// verdict is what the tool tells its workflow.
func verdict(r *runResult) string {
	if r.Setup != nil {
		return "not measured: " + r.Setup.Error()
	}
	if r.Tool == toolGantry {
		if r.Err == nil {
			return fmt.Sprintf("success (outcome %s)", r.Outcome)
		}
		return fmt.Sprintf("failure (%s, outcome %s): %s", r.Kind, r.Outcome, clip(oneLine(r.Err.Error()), 220))
	}
	if r.Err == nil {
		return "success: the service is stable"
	}
	return "failure: " + oneLine(r.Err.Error()) + " (no reason given)"
}

// right reports whether the verdict matches what happened.
func right(r *runResult) bool { return failed(r) == r.Sc.Crash }

// truth is what really happened, from the fake.
func truth(r *runResult) string {
	re := r.Real
	if re.Err != nil {
		return "could not read the fake: " + re.Err.Error()
	}
	rev := ecsdeploy.Short(r.NewTD)
	var parts []string
	if r.Sc.Crash {
		if re.Crashed > 0 {
			parts = append(parts, fmt.Sprintf("%d tasks of %s exited 1, the first stopped at %s s", re.Crashed, rev, at(r, re.FirstStopped)))
		} else {
			parts = append(parts, fmt.Sprintf("no task of %s had stopped yet", rev))
		}
		switch {
		case !re.Tripped.IsZero():
			s := fmt.Sprintf("the circuit breaker tripped at %s s and ECS rolled back to deployment %s", at(r, re.Tripped), re.RollbackTo)
			if !re.FinalCompleted.IsZero() {
				s += fmt.Sprintf(" (api:1, COMPLETED at %s s)", at(r, re.FinalCompleted))
			}
			parts = append(parts, s)
		case r.Sc.Breaker:
			parts = append(parts, fmt.Sprintf("the circuit breaker did not trip (%s, %d failures of the threshold of 3)", re.CB, re.CBFailures))
		default:
			parts = append(parts, "no circuit breaker: ECS relaunches the crashing tasks for ever")
		}
		if re.Tripped.IsZero() && ecsdeploy.Short(re.FinalTD) != rev && !re.FinalCompleted.IsZero() {
			parts = append(parts, fmt.Sprintf("gantry's rollback redeployed %s, COMPLETED at %s s", ecsdeploy.Short(re.FinalTD), at(r, re.FinalCompleted)))
		}
	} else {
		if !re.Completed.IsZero() {
			after := ""
			if re.Completed.After(r.End) {
				after = ", after the step ended"
			}
			parts = append(parts, fmt.Sprintf("ECS marked the deployment of %s COMPLETED at %s s%s (\"has reached a steady state\" at %s s)", rev, at(r, re.Completed), after, at(r, re.Steady)))
		} else {
			parts = append(parts, fmt.Sprintf("ECS had not marked the deployment of %s COMPLETED", rev))
		}
	}
	parts = append(parts, fmt.Sprintf("when the step ended the service ran %s (%s; %d deployment(s), %d/%d tasks running)",
		ecsdeploy.Short(re.FinalTD), re.FinalRollout, re.FinalDeployments, re.Running, re.Desired))
	return strings.Join(parts, "; ")
}

// lag compares the tool with ECS's own timing.
func lag(r *runResult) string {
	re := r.Real
	if r.Sc.Crash {
		if re.FirstStopped.IsZero() {
			return "no task stopped"
		}
		d := r.Reported.Sub(re.FirstStopped)
		switch {
		case r.Tool == toolGantry && failed(r):
			return fmt.Sprintf("failure reported **%s s** after the first task stopped", secs2(d))
		case failed(r):
			return fmt.Sprintf("timed out %s s after the first task stopped, without saying why", secs(d))
		default:
			return fmt.Sprintf("reported success %s s after the first task stopped", secs(d))
		}
	}
	if re.Completed.IsZero() {
		return "ECS never completed the deployment"
	}
	d := r.End.Sub(re.Completed)
	if d < 0 {
		return fmt.Sprintf("step ended **%s s before** ECS marked the deployment COMPLETED", secs2(-d))
	}
	return fmt.Sprintf("step ended **%s s** after ECS marked the deployment COMPLETED", secs2(d))
}

func (res *results) markdown() string {
	var w strings.Builder
	c := res.Config
	v := res.Versions
	fmt.Fprintf(&w, "\n## ecs-detect: how soon and how truthfully an ECS deploy step ends, gantry vs the SDK's ServicesStable waiter (%s)\n\n", res.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "Reproduce: `%s` (from the repository root; about %s, the runs go in parallel).\n\n", c.Command, res.Date.Sub(res.Started).Round(time.Minute))
	fmt.Fprintf(&w, "- Machine: %s. Shared and noisy: compare within this section.\n", res.Machine)
	fmt.Fprintf(&w, "- Versions: gantry %s (`internal/deploy/ecs.Deploy`, the library behind `gantry deploy-ecs`); aws-sdk-go-v2 %s, service/ecs %s, smithy-go %s; %s.\n",
		res.Build, v["github.com/aws/aws-sdk-go-v2"], v["github.com/aws/aws-sdk-go-v2/service/ecs"], v["github.com/aws/smithy-go"], v["go"])
	fmt.Fprintf(&w, "- ECS: the in-process fake `internal/fakes/ecsfake` (awsJson1.1 on 127.0.0.1, called through the real SDK client with static credentials), one per tool and scenario, its virtual clock following the wall clock every %s (the resolution of the times it stamps). Service `api`, ROLLING, %d tasks, minimum healthy 100 %%, maximum 200 %%, steady on api:1 before each run. Every task runs %s after launch; a crashing release's essential container exits with code 1 %s after it runs. The fake's defaults otherwise: a replaced task drains %s (STOPPING), a deployment is COMPLETED after %s steady, the circuit breaker's threshold is 3 failed tasks for a service of %d (max(⌈0.5 × desired⌉, 3)).\n",
		c.Step, desired, taskStart, crashAfter, ecsfake.DefaultStopAfter, ecsfake.DefaultSteadyAfter, desired)
	fmt.Fprintf(&w, "- gantry: `Deploy` with wait, auto-rollback, poll interval %s, the wall clock, fail-fast by default (on for services of up to %d tasks), a task definition JSON with `Render.Images` setting the release's image; no URL to verify.\n", c.Poll, ecsdeploy.FailFastMaxDesired)
	fmt.Fprintf(&w, "- Waiter: RegisterTaskDefinition, UpdateService, then `ecs.NewServicesStableWaiter(client).WaitForOutput(…, %s)` with the SDK's defaults, read from the linked SDK: MinDelay **%s**, MaxDelay **%s** (attempt n sleeps a random delay between MinDelay and MinDelay × 2ⁿ⁻¹, at most MaxDelay; it gives up once less than MinDelay of the maximum wait is left). Its only success test is *every service has exactly one deployment and runningCount = desiredCount*; it fails only on a MISSING, DRAINING or INACTIVE service. Maximum wait capped at **%s** here; the action's `wait-for-minutes` defaults to 30 minutes.\n",
		c.MaxWait, res.Waiter.MinDelay, res.Waiter.MaxDelay, c.MaxWait)
	w.WriteString("- Times are seconds after UpdateService returned: for gantry its own `service updated` timeline mark, for the waiter the return of the SDK call. *Verdict known* is gantry's `first task failed` (or `failed: …`, `steady state`) mark and, for the waiter, its return. Task and event times are the fake's (DescribeTasks `stoppedAt`, DescribeServices event `createdAt`), read after the step ended.\n\n")

	w.WriteString("| Scenario | Tool | Verdict known (s) | Step ended (s) | Against ECS's own timing | Verdict the tool gives | What really happened |\n")
	w.WriteString("|---|---|--:|--:|---|---|---|\n")
	for _, sc := range scenarios {
		for _, tool := range []string{toolGantry, toolWaiter} {
			r := res.run(sc.Key, tool)
			if r == nil {
				continue
			}
			if r.Setup != nil {
				fmt.Fprintf(&w, "| %s | %s | | | | not measured: %s | |\n", sc.Name, toolName(tool), oneLine(r.Setup.Error()))
				continue
			}
			mark := "✅"
			if !right(r) {
				mark = "❌"
				if !failed(r) {
					mark += " a failed deploy reported as success:"
				}
			}
			fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s %s | %s |\n", sc.Name, toolName(tool), at(r, r.Reported), at(r, r.End),
				lag(r), mark, strings.ReplaceAll(verdict(r), "|", "\\|"), truth(r))
		}
	}
	w.WriteString("\n")
	w.WriteString(res.targets())
	w.WriteString(res.notes())
	w.WriteString(res.timelines())
	return w.String()
}

func (res *results) targets() string {
	var w strings.Builder
	c := res.Config
	met := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**not met**"
	}
	w.WriteString("| Target | Measured | Goal | Result |\n|---|--:|--:|---|\n")
	for _, key := range []string{"crash-cb", "crash"} {
		r := res.run(key, toolGantry)
		if r == nil || r.Setup != nil || r.Real.FirstStopped.IsZero() || !failed(r) {
			fmt.Fprintf(&w, "| gantry, %s: failure reported after the first task stopped | not measured | ≤ one poll (%s s) | **not met** |\n", key, secs(c.Poll))
			continue
		}
		d := r.Reported.Sub(r.Real.FirstStopped)
		fmt.Fprintf(&w, "| gantry, %s: failure reported after the first task stopped | %s s | ≤ one poll (%s s) | %s |\n", strings.ToLower(r.Sc.Name), secs2(d), secs(c.Poll), met(d >= 0 && d <= c.Poll))
	}
	if r := res.run("healthy", toolGantry); r != nil && r.Setup == nil && !r.Real.Completed.IsZero() {
		d := r.End.Sub(r.Real.Completed)
		fmt.Fprintf(&w, "| gantry, healthy release: step ended after ECS marked the deployment COMPLETED | %s s | ≤ %s s | %s |\n", secs2(d), secs(targetHealthyOver), met(!failed(r) && d <= targetHealthyOver))
	}
	for _, tool := range []string{toolGantry, toolWaiter} {
		n, ok := 0, 0
		for _, r := range res.Runs {
			if r.Tool == tool && r.Setup == nil {
				n++
				if right(r) {
					ok++
				}
			}
		}
		fmt.Fprintf(&w, "| %s: verdicts that match what happened | %d of %d | %d of %d | %s |\n", toolName(tool), ok, n, len(scenarios), len(scenarios), met(ok == len(scenarios)))
	}
	w.WriteString("\n")
	return w.String()
}

func (res *results) notes() string {
	var w strings.Builder
	c := res.Config
	w.WriteString("Notes:\n\n")
	if r := res.run("crash-cb", toolWaiter); r != nil && r.Setup == nil && r.Err == nil {
		td := "?"
		if r.WaiterOut != nil {
			td = ecsdeploy.Short(aws.ToString(r.WaiterOut.TaskDefinition))
		}
		fmt.Fprintf(&w, "- With the circuit breaker rolling back, the waiter returned **no error** %s s after UpdateService: the service it returned runs %s, not the %s just deployed, but the waiter's success test (one deployment, every task running) holds just as well for a rolled-back service, so a step built on it passes a release that never ran.\n",
			secs(r.End.Sub(r.Update)), td, ecsdeploy.Short(r.NewTD))
	}
	if r := res.run("crash", toolWaiter); r != nil && r.Setup == nil {
		fmt.Fprintf(&w, "- Without a circuit breaker the waiter can only time out: it returned after %s s (maximum wait %s) with `%s`, naming neither the crash nor the exit code; with the action's default of 30 minutes the step would run %.0f times as long.\n",
			secs(r.End.Sub(r.Update)), res.Config.MaxWait, oneLine(fmt.Sprint(r.Err)), (30*time.Minute).Seconds()/res.Config.MaxWait.Seconds())
	}
	if r := res.run("healthy", toolWaiter); r != nil && r.Setup == nil && r.Err == nil && r.Real.Completed.After(r.End) {
		fmt.Fprintf(&w, "- The waiter's success came %s s *before* ECS marked the healthy deployment COMPLETED: its test (one deployment, every task running) held once the old tasks had drained and the old deployment left the list, while ECS still waited for the new one to stay steady (%s in this fake). Harmless here, but the waiter cannot tell a rollout ECS has not yet completed from one it has.\n",
			secs2(r.Real.Completed.Sub(r.End)), ecsfake.DefaultSteadyAfter)
	}
	if r := res.run("crash-cb", toolGantry); r != nil && r.Setup == nil && failed(r) {
		fmt.Fprintf(&w, "- gantry fails on the first task of the new revision that stops on its own (fail-fast), before the circuit breaker's third failure, then rolls back itself (UpdateService to api:1) and waits for api:1 to be steady: its step ends %s s after the failure was known, the time ECS takes to start api:1's tasks again, drain the old ones and mark the rollback COMPLETED in this fake (%s + %s + %s).\n",
			secs(r.End.Sub(r.Reported)), taskStart, ecsfake.DefaultStopAfter, ecsfake.DefaultSteadyAfter)
	}
	if r := res.run("crash-cb", toolGantry); r != nil && r.Setup == nil && !r.Real.FirstStopped.IsZero() {
		if d := r.Reported.Sub(r.Real.FirstStopped); d >= 0 && d < c.Poll/2 {
			fmt.Fprintf(&w, "- The first crash (%s start + %s) falls on a multiple of gantry's %s poll, counted from its first poll right after UpdateService, so a poll lands just after it: the lag is near 0 here and at most one poll in general.\n",
				taskStart, crashAfter, c.Poll)
		}
	}
	for _, key := range []string{"crash-cb", "crash"} {
		r := res.run(key, toolWaiter)
		if r == nil || r.Setup != nil || r.Real.OldStopping.IsZero() || r.Real.FirstStopped.IsZero() || !r.Real.OldStopping.Before(r.Real.FirstStopped) {
			continue
		}
		fmt.Fprintf(&w, "- **A flaw of the fake that lengthens the rollbacks** (not fixed here, `internal/fakes/ecsfake` is another package): a task whose container has a health check is HEALTHY the moment it is RUNNING (`stepTask` in tasks.go), so the scheduler told api:1's %d tasks to stop at %s s, when api:2's reached RUNNING, before they crashed at %s s, and the service ran no task until a rollback started api:1's again (%s, %s). On ECS a container with a health check stays UNKNOWN until its first check passes (here after its 10 s interval), so a task exiting 1 s after it starts never counts as healthy and the old tasks keep serving. The detection times above are not affected; the times from the verdict to the end of a rollback (ECS's or gantry's) are longer than on ECS.\n",
			r.Real.OldStopped, at(r, r.Real.OldStopping), at(r, r.Real.FirstStopped), strings.ToLower(r.Sc.Name), toolName(r.Tool))
		break
	}
	w.WriteString("- aws-actions/amazon-ecs-deploy-task-definition: the versions of its `index.js` read for this benchmark (e.g. commit 7f8154e) wait with the JavaScript SDK v2's `servicesStable` waiter at a fixed 15 s delay for `wait-for-minutes` × 4 attempts; the acceptors are the same ECS waiter definition as the Go SDK's, so the verdicts are the same, only the poll cadence differs from the Go waiter timed here.\n")
	w.WriteString("- API calls per run (from the fake's call log, after the setup): ")
	var calls []string
	for _, r := range res.Runs {
		if r.Setup == nil {
			calls = append(calls, fmt.Sprintf("%s / %s %d", r.Sc.Key, r.Tool, r.Calls))
		}
	}
	w.WriteString(strings.Join(calls, ", ") + ".\n\n")
	return w.String()
}

// timelines renders each run's steps in seconds after UpdateService.
func (res *results) timelines() string {
	var w strings.Builder
	w.WriteString("<details><summary>Timelines (seconds after UpdateService)</summary>\n\n")
	for _, r := range res.Runs {
		if r.Setup != nil {
			continue
		}
		fmt.Fprintf(&w, "**%s, %s**\n\n", r.Sc.Name, toolName(r.Tool))
		type line struct {
			t    time.Time
			text string
		}
		var lines []line
		add := func(t time.Time, format string, args ...any) {
			if !t.IsZero() {
				lines = append(lines, line{t, fmt.Sprintf("- %s ", at(r, t)) + fmt.Sprintf(format, args...)})
			}
		}
		if r.Tool == toolGantry {
			for _, m := range r.Marks {
				add(r.DeployStart.Add(m.At), "mark `%s`", m.Name)
			}
			for _, l := range r.Log {
				if !strings.HasPrefix(l.Msg, "event: ") {
					add(l.At, "log: %s", clip(oneLine(l.Msg), 300))
				}
			}
		} else if len(r.Polls) > 0 {
			var ps []string
			for _, p := range r.Polls {
				ps = append(ps, at(r, p))
			}
			add(r.Polls[0], "DescribeServices polls at %s", strings.Join(ps, ", "))
		}
		add(r.Real.OldStopping, "ECS: the scheduler stops the first of %d task(s) of the previous revision", r.Real.OldStopped)
		add(r.Real.FirstStopped, "ECS: first task of %s stopped", ecsdeploy.Short(r.NewTD))
		add(r.Real.Tripped, "ECS: the circuit breaker failed the deployment")
		add(r.Real.Completed, "ECS: deployment of %s COMPLETED", ecsdeploy.Short(r.NewTD))
		add(r.Real.FinalCompleted, "ECS: deployment of %s COMPLETED (rollback)", ecsdeploy.Short(r.Real.FinalTD))
		add(r.End, "step ended: %s", clip(oneLine(verdict(r)), 600))
		sort.SliceStable(lines, func(i, j int) bool { return lines[i].t.Before(lines[j].t) })
		for _, l := range lines {
			w.WriteString(l.text + "\n")
		}
		w.WriteString("\n")
	}
	w.WriteString("</details>\n\n")
	return w.String()
}
