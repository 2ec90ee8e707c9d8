package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	mswarm "github.com/moby/moby/api/types/swarm"

	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/history"
)

// States of a service in ServiceResult besides Swarm's UpdateState values.
const (
	StateCreated   = "created"   // a new service whose tasks all run
	StateUnchanged = "unchanged" // the deploy changed nothing in it
	StateDone      = "done"      // a one-shot service whose tasks completed
)

// failure is why a stack deploy failed; rollingBack means Swarm itself is
// taking the service back.
type failure struct {
	msg         string
	rollingBack bool
	rolledBack  bool
}

func (f *failure) Error() string { return f.msg }

// watch polls the stack until every watched service converged, or fails with
// the first service Swarm paused or rolled back.
func (dp *deployer) watch(ctx context.Context) error {
	o := dp.o
	deadline := o.Clock.Now().Add(o.Timeout)
	for {
		svcs, err := dp.inspect(ctx)
		if err != nil {
			return err
		}
		tasks, err := dp.tasks(ctx, svcs)
		if err != nil {
			return err
		}
		dp.logTasks(svcs, tasks)
		done, f := dp.judge(svcs, tasks)
		if f != nil {
			return f
		}
		if done {
			return nil
		}
		if !o.Clock.Now().Before(deadline) {
			var waiting []string
			for _, r := range dp.res.Services {
				if r.State != StateCreated && r.State != StateUnchanged && r.State != string(mswarm.UpdateStateCompleted) && r.State != StateDone {
					waiting = append(waiting, fmt.Sprintf("%s (%s, %d/%d running)", r.Name, r.State, r.Running, r.Desired))
				}
			}
			return &failure{msg: fmt.Sprintf("not converged after %s: %s%s; raise timeout if the services need longer", o.Timeout, strings.Join(waiting, ", "), dp.lastErrors())}
		}
		if err := o.Clock.Sleep(ctx, o.PollInterval); err != nil {
			return err
		}
	}
}

// judge updates the per-service results and says whether all converged, or
// why the deploy failed.
func (dp *deployer) judge(svcs map[string]*mswarm.Service, tasks map[string][]mswarm.Task) (bool, *failure) {
	done := true
	dp.res.Services = dp.res.Services[:0]
	var f *failure
	for _, name := range dp.o.Services {
		full := dp.full(name)
		s := svcs[full]
		if s == nil {
			return false, &failure{msg: fmt.Sprintf("service %s is not in stack %s after docker stack deploy", name, dp.o.Stack)}
		}
		b := dp.before[full]
		r := ServiceResult{Name: name, Desired: desired(s), Image: image(s)}
		if b != nil {
			r.ReplicasBefore = desired(b)
		}
		current := currentTasks(s, tasks[s.ID])
		for _, t := range current {
			if t.Status.State == mswarm.TaskStateRunning {
				r.Running++
			}
		}
		r.Errors = taskErrors(tasks[s.ID], dp.since)
		oneShot := s.Spec.TaskTemplate.RestartPolicy != nil && s.Spec.TaskTemplate.RestartPolicy.Condition == mswarm.RestartPolicyConditionNone
		changed := b == nil || s.Version.Index != b.Version.Index
		if changed && !slices.Contains(dp.updated, full) {
			dp.updated = append(dp.updated, full)
		}
		us := s.UpdateStatus
		if b != nil && sameUpdate(us, b.UpdateStatus) {
			us = nil // the status of an earlier update (e.g. a scale changes none)
		}
		switch {
		case !changed:
			r.State = StateUnchanged
		case oneShot:
			// A finished one-shot task no longer wants to run, and Swarm reports its
			// update "paused" for the early exit: judge by the tasks of the current image.
			r.State = "running"
			if n, failed, busy := finished(s, tasks[s.ID]); failed != "" {
				f = firstFailure(f, &failure{msg: fmt.Sprintf("one-shot service %s failed: %s", name, failed)})
			} else if n > 0 && !busy {
				r.State = StateDone
			} else {
				done = false
			}
		case us != nil && us.State == mswarm.UpdateStateRollbackCompleted:
			r.State, r.Message = string(us.State), us.Message
			f = firstFailure(f, &failure{msg: fmt.Sprintf("Swarm rolled service %s back: %s%s", name, us.Message, errorsText(r.Errors)), rolledBack: true})
		case us != nil && us.State == mswarm.UpdateStateRollbackStarted:
			r.State, r.Message = string(us.State), us.Message
			f = firstFailure(f, &failure{msg: fmt.Sprintf("Swarm is rolling service %s back: %s%s", name, us.Message, errorsText(r.Errors)), rollingBack: true})
		case us != nil && (us.State == mswarm.UpdateStatePaused || us.State == mswarm.UpdateStateRollbackPaused):
			r.State, r.Message = string(us.State), us.Message
			f = firstFailure(f, &failure{msg: fmt.Sprintf("Swarm paused the update of service %s (%s): %s%s", name, us.State, us.Message, errorsText(r.Errors))})
		case us != nil && us.State == mswarm.UpdateStateUpdating:
			r.State = string(us.State)
			done = false
		default:
			// Completed (or created, or only scaled): converged once every
			// replica of the current spec runs.
			r.State = StateCreated
			if b != nil {
				r.State = string(mswarm.UpdateStateCompleted)
			}
			if n := stopping(tasks[s.ID]); dp.waitStopped && n > 0 && r.Running >= r.Desired {
				r.State = fmt.Sprintf("stopping %d", n)
				done = false
			}
			if r.Running < r.Desired {
				r.State = "starting"
				done = false
				if b == nil && failedTasks(tasks[s.ID], dp.since) >= 3 && r.Running == 0 {
					// A new service has no previous version for Swarm to roll back to: it
					// restarts failing tasks forever. Three failures and nothing running is enough.
					msg := fmt.Sprintf("new service %s does not start%s", name, errorsText(r.Errors))
					if name == composefile.EdgeService {
						msg += fmt.Sprintf("; check edge-image (%s): %s", dp.edgeImage(), edge.ImageHint())
					}
					f = firstFailure(f, &failure{msg: msg})
				}
			}
		}
		dp.res.Services = append(dp.res.Services, r)
	}
	if f != nil {
		return false, f
	}
	return done, nil
}

func firstFailure(a, b *failure) *failure {
	if a != nil {
		return a
	}
	return b
}

func desired(s *mswarm.Service) uint64 {
	if s.Spec.Mode.Replicated != nil && s.Spec.Mode.Replicated.Replicas != nil {
		return *s.Spec.Mode.Replicated.Replicas
	}
	return 0
}

func image(s *mswarm.Service) string {
	if c := s.Spec.TaskTemplate.ContainerSpec; c != nil {
		return c.Image
	}
	return ""
}

// currentTasks are the tasks meant to run the service's current spec.
func currentTasks(s *mswarm.Service, ts []mswarm.Task) []mswarm.Task {
	var out []mswarm.Task
	for _, t := range ts {
		if t.DesiredState == mswarm.TaskStateRunning || t.DesiredState == mswarm.TaskStateReady || t.DesiredState == mswarm.TaskStateComplete {
			if c := t.Spec.ContainerSpec; c != nil && c.Image == image(s) {
				out = append(out, t)
			}
		}
	}
	return out
}

// stopping counts the tasks Swarm is shutting down that still run.
func stopping(ts []mswarm.Task) int {
	n := 0
	for _, t := range ts {
		if (t.DesiredState == mswarm.TaskStateShutdown || t.DesiredState == mswarm.TaskStateRemove) && t.Status.State == mswarm.TaskStateRunning {
			n++
		}
	}
	return n
}

// finished counts the completed tasks of s's current image, names one that
// failed, and says whether one is still on its way.
func finished(s *mswarm.Service, ts []mswarm.Task) (n int, failed string, busy bool) {
	for _, t := range ts {
		if c := t.Spec.ContainerSpec; c == nil || c.Image != image(s) {
			continue
		}
		switch t.Status.State {
		case mswarm.TaskStateComplete:
			n++
		case mswarm.TaskStateFailed, mswarm.TaskStateRejected:
			return n, taskError(t), false
		case mswarm.TaskStateShutdown, mswarm.TaskStateOrphaned, mswarm.TaskStateRemove:
		default:
			busy = true
		}
	}
	return n, "", busy
}

// taskErrors are the distinct errors of failed tasks, newest first, with
// counts; a task whose state dates from before since (an earlier deploy's)
// is not this operation's and is left out.
func taskErrors(ts []mswarm.Task, since time.Time) []string {
	sorted := append([]mswarm.Task(nil), ts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Status.Timestamp.After(sorted[j].Status.Timestamp) })
	count := map[string]int{}
	var order []string
	for _, t := range sorted {
		if t.Status.State != mswarm.TaskStateFailed && t.Status.State != mswarm.TaskStateRejected && t.Status.Err == "" {
			continue
		}
		if t.Status.Timestamp.Before(since) {
			continue
		}
		e := taskError(t)
		if count[e] == 0 {
			order = append(order, e)
		}
		count[e]++
	}
	var out []string
	for _, e := range order {
		if count[e] > 1 {
			e = fmt.Sprintf("%s (×%d)", e, count[e])
		}
		out = append(out, e)
	}
	return out
}

// failedTasks counts the tasks that failed since the operation began.
func failedTasks(ts []mswarm.Task, since time.Time) int {
	n := 0
	for _, t := range ts {
		if (t.Status.State == mswarm.TaskStateFailed || t.Status.State == mswarm.TaskStateRejected) && !t.Status.Timestamp.Before(since) {
			n++
		}
	}
	return n
}

func taskError(t mswarm.Task) string {
	e := edge.EngineReason(t.Status.Err)
	if e == "" {
		e = t.Status.Message
	}
	if cs := t.Status.ContainerStatus; cs != nil && cs.ExitCode != 0 && !strings.Contains(e, fmt.Sprint(cs.ExitCode)) {
		e = fmt.Sprintf("%s (exit code %d)", e, cs.ExitCode)
	}
	return fmt.Sprintf("%s: %s", t.Status.State, e)
}

func errorsText(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	if len(errs) > 3 {
		errs = errs[:3]
	}
	return "; task errors: " + strings.Join(errs, "; ")
}

func (dp *deployer) lastErrors() string {
	var all []string
	for _, r := range dp.res.Services {
		for _, e := range r.Errors {
			all = append(all, r.Name+": "+e)
		}
	}
	return errorsText(all)
}

// tasks reads the tasks of the watched services, keyed by service ID.
func (dp *deployer) tasks(ctx context.Context, svcs map[string]*mswarm.Service) (map[string][]mswarm.Task, error) {
	var names []string
	for _, n := range dp.o.Services {
		if svcs[dp.full(n)] != nil {
			names = append(names, dp.full(n))
		}
	}
	out := map[string][]mswarm.Task{}
	if len(names) == 0 {
		return out, nil
	}
	var data []byte
	for attempt := 1; ; attempt++ {
		ids, err := dp.read(ctx, append([]string{"service", "ps", "--quiet", "--no-trunc"}, names...)...)
		if err != nil {
			return nil, fmt.Errorf("listing tasks: %w", err)
		}
		f := strings.Fields(string(ids))
		if len(f) == 0 {
			return out, nil
		}
		data, err = dp.read(ctx, append([]string{"inspect", "--type", "task"}, f...)...)
		if err == nil {
			break
		}
		// Swarm prunes old tasks: one listed a moment ago may be gone now
		// ("No such task", or "task ... not found" from the engine).
		if msg := err.Error(); attempt == 5 || !(strings.Contains(msg, "No such") || strings.Contains(msg, "not found")) {
			return nil, fmt.Errorf("inspecting tasks: %w", err)
		}
	}
	var ts []mswarm.Task
	if err := json.Unmarshal(data, &ts); err != nil {
		return nil, fmt.Errorf("reading docker inspect of tasks: %w", err)
	}
	for _, t := range ts {
		out[t.ServiceID] = append(out[t.ServiceID], t)
	}
	return out, nil
}

// logTasks prints each task's state change once.
func (dp *deployer) logTasks(svcs map[string]*mswarm.Service, tasks map[string][]mswarm.Task) {
	names := map[string]string{}
	for full, s := range svcs {
		names[s.ID] = strings.TrimPrefix(full, dp.o.Stack+"_")
	}
	var lines []string
	for id, ts := range tasks {
		for _, t := range ts {
			st := string(t.Status.State)
			if dp.seen[t.ID] == st {
				continue
			}
			dp.seen[t.ID] = st
			line := fmt.Sprintf("%s.%d %s: %s", names[id], t.Slot, shortID(t.ID), st)
			if t.Status.Err != "" {
				line += " (" + t.Status.Err + ")"
			}
			lines = append(lines, line)
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		dp.o.Logf("task %s", l)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// recover puts the services back after a failed deploy: Swarm's own rollback
// is waited for; otherwise updated services are rolled back and new ones
// removed, unless AutoRollback is off.
func (dp *deployer) recover(ctx context.Context, err error) error {
	o := dp.o
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	var f *failure
	errors.As(err, &f)
	if f != nil && (f.rolledBack || f.rollingBack) {
		if werr := dp.step(ctx, "swarm rollback", dp.waitRollback); werr != nil {
			return fmt.Errorf("%w; and Swarm's rollback did not finish: %v", err, werr)
		}
		left := ""
		if o.AutoRollback && !o.Rollback {
			// Swarm rolls back the services it updated; what the deploy created is gantry's to remove.
			if cerr := dp.step(ctx, "remove new", func(ctx context.Context) error {
				if err := dp.removeNewServices(ctx); err != nil {
					return err
				}
				return dp.removeNewObjects(ctx)
			}); cerr != nil {
				dp.warn("%v", cerr)
				left = "; " + cerr.Error()
			}
		}
		dp.readBack(ctx)
		dp.res.Outcome = history.ResultRolledBack
		return fmt.Errorf("%w; Swarm's rollback finished: the stack runs its previous version%s", err, left)
	}
	if !o.AutoRollback || o.Rollback {
		if !o.AutoRollback {
			dp.res.Outcome = history.ResultAbandoned
			dp.warn("auto-rollback is off: the stack is left as the failed deploy made it")
		}
		return err
	}
	rerr := dp.step(ctx, "rollback", func(ctx context.Context) error {
		for _, full := range dp.updated {
			if dp.before[full] == nil {
				continue // removed below, with the new services no one watched
			}
			o.Logf("rolling back service %s", full)
			if _, e := dp.d.Run(ctx, "service", "rollback", "--detach", full); e != nil {
				return e
			}
		}
		if err := dp.removeNewServices(ctx); err != nil {
			return err
		}
		return dp.waitRollback(ctx)
	})
	if rerr != nil {
		dp.readBack(ctx)
		return fmt.Errorf("%w; and the rollback failed: %v", err, rerr)
	}
	left := ""
	if cerr := dp.step(ctx, "remove new objects", dp.removeNewObjects); cerr != nil {
		dp.warn("%v", cerr)
		left = "; " + cerr.Error()
	}
	dp.readBack(ctx)
	dp.res.Outcome = history.ResultRolledBack
	return fmt.Errorf("%w; the stack is back on its previous version%s", err, left)
}

// removeNewServices removes the stack's services that the failed deploy
// created, watched or not.
func (dp *deployer) removeNewServices(ctx context.Context) error {
	svcs, err := dp.inspect(ctx)
	if err != nil {
		return err
	}
	for _, full := range sortedKeys(svcs) {
		if dp.before[full] != nil {
			continue
		}
		dp.o.Logf("removing new service %s", full)
		if _, err := dp.d.Run(ctx, "service", "rm", full); err != nil {
			return err
		}
	}
	return nil
}

// removeNewObjects removes the networks, configs and secrets the failed
// deploy created, once no task uses them any more, and names those it could
// not remove.
func (dp *deployer) removeNewObjects(ctx context.Context) error {
	now, err := dp.stackObjects(ctx)
	if err != nil {
		return err
	}
	var left []string
	for _, kind := range objectKinds {
		for obj := range now {
			if name, ok := strings.CutPrefix(obj, kind+" "); ok && !dp.objects[obj] {
				left = append(left, kind+" "+name)
			}
		}
	}
	sort.SliceStable(left, func(i, j int) bool { return kindOrder(left[i]) < kindOrder(left[j]) })
	if len(left) == 0 {
		return nil
	}
	// A network stays in use until the removed services' tasks have stopped.
	deadline := dp.o.Clock.Now().Add(min(dp.o.Timeout, time.Minute))
	var last error
	for {
		var still []string
		for _, obj := range left {
			kind, name, _ := strings.Cut(obj, " ")
			if _, err := dp.d.Run(ctx, kind, "rm", name); err != nil {
				if strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "No such") {
					continue
				}
				still, last = append(still, obj), err
				continue
			}
			dp.o.Logf("removed new %s %s", kind, name)
		}
		if left = still; len(left) == 0 {
			return nil
		}
		if !dp.o.Clock.Now().Before(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the failed deploy left %s (remove with docker %s rm): %v", strings.Join(left, ", "), strings.SplitN(left[0], " ", 2)[0], last)
		}
		if err := dp.o.Clock.Sleep(ctx, dp.o.PollInterval); err != nil {
			return err
		}
	}
}

func kindOrder(obj string) int {
	for i, k := range objectKinds {
		if strings.HasPrefix(obj, k+" ") {
			return i
		}
	}
	return len(objectKinds)
}

// waitRollback waits until every updated service that existed before is
// back on its previous spec with all its replicas running.
func (dp *deployer) waitRollback(ctx context.Context) error {
	deadline := dp.o.Clock.Now().Add(dp.o.Timeout)
	for {
		svcs, err := dp.inspect(ctx)
		if err != nil {
			return err
		}
		tasks, err := dp.tasks(ctx, svcs)
		if err != nil {
			return err
		}
		dp.logTasks(svcs, tasks)
		pending := ""
		for _, full := range dp.updated {
			s := svcs[full]
			if s == nil || dp.before[full] == nil {
				continue
			}
			us := s.UpdateStatus
			if us != nil && us.State == mswarm.UpdateStateRollbackPaused {
				return fmt.Errorf("the rollback of %s was paused by Swarm: %s", full, us.Message)
			}
			running := uint64(0)
			for _, t := range currentTasks(s, tasks[s.ID]) {
				if t.Status.State == mswarm.TaskStateRunning {
					running++
				}
			}
			oneShot := s.Spec.TaskTemplate.RestartPolicy != nil && s.Spec.TaskTemplate.RestartPolicy.Condition == mswarm.RestartPolicyConditionNone
			if (us != nil && us.State == mswarm.UpdateStateRollbackStarted) || (!oneShot && running < desired(s)) {
				pending = fmt.Sprintf("%s (%d/%d running)", full, running, desired(s))
			}
		}
		if pending == "" {
			return nil
		}
		if !dp.o.Clock.Now().Before(deadline) {
			return fmt.Errorf("%s still rolling back after %s", pending, dp.o.Timeout)
		}
		if err := dp.o.Clock.Sleep(ctx, dp.o.PollInterval); err != nil {
			return err
		}
	}
}

// Final states of a service after a rollback.
const (
	StateRolledBack = "rolled back" // on its previous spec again
	StateRemoved    = "removed"     // a service the failed deploy created, removed
)

// readBack reads the services back from the swarm after a rollback, so the
// results describe what runs at the end (image, desired and running tasks),
// not what was tried.
func (dp *deployer) readBack(ctx context.Context) {
	svcs, err := dp.inspect(ctx)
	var tasks map[string][]mswarm.Task
	if err == nil {
		tasks, err = dp.tasks(ctx, svcs)
	}
	if err != nil {
		dp.warn("reading the services back after the rollback: %v; the services output shows the last state seen", err)
	}
	for i, r := range dp.res.Services {
		if r.State != StateUnchanged && r.State != StateDone {
			r.State = StateRolledBack
		}
		if err != nil {
			dp.res.Services[i] = r
			continue
		}
		s := svcs[dp.full(r.Name)]
		if s == nil {
			r.State, r.Image, r.Desired, r.Running = StateRemoved, "", 0, 0
			dp.res.Services[i] = r
			continue
		}
		r.Image, r.Desired, r.Running = image(s), desired(s), 0
		for _, t := range currentTasks(s, tasks[s.ID]) {
			if t.Status.State == mswarm.TaskStateRunning {
				r.Running++
			}
		}
		dp.res.Services[i] = r
	}
}

// sameUpdate reports whether two update statuses are of the same update.
func sameUpdate(a, b *mswarm.UpdateStatus) bool {
	if a == nil || b == nil || a.StartedAt == nil || b.StartedAt == nil {
		return false
	}
	return a.StartedAt.Equal(*b.StartedAt) && a.State == b.State
}
