package swarm

import (
	"reflect"
	"testing"
	"time"

	mswarm "github.com/moby/moby/api/types/swarm"
)

// TestTaskErrorsOfThisOperation: errors of tasks that failed before the
// operation began (an earlier deploy's) are neither reported nor counted.
func TestTaskErrorsOfThisOperation(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	task := func(state mswarm.TaskState, err string, at time.Time) mswarm.Task {
		return mswarm.Task{Status: mswarm.TaskStatus{State: state, Err: err, Timestamp: at}}
	}
	old := task(mswarm.TaskStateFailed, "task: non-zero exit (1)", start.Add(-time.Minute))
	oldRejected := task(mswarm.TaskStateRejected, "No such image", start.Add(-time.Second))
	running := task(mswarm.TaskStateRunning, "", start.Add(time.Second))
	failed := task(mswarm.TaskStateFailed, "task: non-zero exit (2)", start.Add(2*time.Second))
	for _, tc := range []struct {
		name   string
		tasks  []mswarm.Task
		since  time.Time
		want   []string
		failed int
	}{
		{"an earlier deploy's failures only", []mswarm.Task{old, oldRejected, running}, start, nil, 0},
		{"this operation's failure", []mswarm.Task{old, failed, running, failed}, start, []string{"failed: task: non-zero exit (2) (×2)"}, 2},
		{"no start known: everything", []mswarm.Task{old, failed}, time.Time{}, []string{"failed: task: non-zero exit (2)", "failed: task: non-zero exit (1)"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := taskErrors(tc.tasks, tc.since); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("taskErrors = %q, want %q", got, tc.want)
			}
			if got := failedTasks(tc.tasks, tc.since); got != tc.failed {
				t.Errorf("failedTasks = %d, want %d", got, tc.failed)
			}
		})
	}
}
