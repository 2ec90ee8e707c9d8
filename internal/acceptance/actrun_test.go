package acceptance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/testenv"
)

// actRun is what one act run reported, read from its --json log: each job's
// and step's result, the steps' outputs, the job summaries and the error
// annotations, as GitHub would show them on the run page.
type actRun struct {
	// Log is act's log as text, one "[job] message" line per entry, for
	// failure messages and for lines no structured field carries.
	Log string
	// Jobs maps a job (act's name for it, "<workflow>/<job>", with the
	// caller's prefix for jobs of a called workflow) to its result.
	Jobs map[string]string
	// Steps maps "job › step id" to the step's result.
	Steps map[string]string
	// Outputs maps "job › step id › name" to what the step set.
	Outputs map[string]string
	// Summaries maps a job to its job summary (Markdown).
	Summaries map[string]string
	// Errors are the ::error annotations, as "title: message".
	Errors []string
	// Err is act's own exit error, if any.
	Err error
}

// actEntry is one line of act --json (logrus fields).
type actEntry struct {
	Msg        string            `json:"msg"`
	Job        string            `json:"job"`
	StepID     []string          `json:"stepID"`
	Stage      string            `json:"stage"`
	StepResult string            `json:"stepResult"`
	JobResult  string            `json:"jobResult"`
	Command    string            `json:"command"`
	Name       string            `json:"name"`
	Arg        string            `json:"arg"`
	Content    string            `json:"content"`
	KVPairs    map[string]string `json:"kvPairs"`
}

// execAct runs act in dir with --json and reads what it reported.
func execAct(t *testing.T, dir string, args ...string) *actRun {
	t.Helper()
	act := testenv.Tool(t, "act", "GANTRY_ACT_BIN", actInstall)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, act, append(args, "--json")...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := parseActJSON(out.Bytes())
	r.Err = err
	return r
}

// parseActJSON reads act's --json log; lines that are not JSON (act's own
// last words on stderr) are kept in Log as they are.
func parseActJSON(b []byte) *actRun {
	r := &actRun{Jobs: map[string]string{}, Steps: map[string]string{}, Outputs: map[string]string{}, Summaries: map[string]string{}}
	var log strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e actEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			log.WriteString(sc.Text() + "\n")
			continue
		}
		fmt.Fprintf(&log, "[%s] %s\n", e.Job, strings.TrimRight(e.Msg, "\n"))
		if e.Job == "" {
			continue
		}
		step := e.Job
		if len(e.StepID) > 0 {
			step += " › " + e.StepID[0]
		}
		switch {
		case e.JobResult != "":
			r.Jobs[e.Job] = e.JobResult
		case e.StepResult != "" && len(e.StepID) == 1 && e.Stage == "Main":
			// A step's Pre and Post stages report results of their own.
			r.Steps[step] = e.StepResult
		case e.Command == "set-output":
			r.Outputs[step+" › "+e.Name] = e.Arg
		case e.Command == "summary":
			r.Summaries[e.Job] += e.Content
		case e.Command == "error":
			r.Errors = append(r.Errors, e.KVPairs["title"]+": "+strings.TrimSpace(e.Arg))
		}
	}
	r.Log = log.String()
	return r
}

// OK reports whether act ran at least one job and every job succeeded.
func (r *actRun) OK() bool {
	if r.Err != nil || len(r.Jobs) == 0 {
		return false
	}
	for _, res := range r.Jobs {
		if res != "success" {
			return false
		}
	}
	return true
}

// Job returns the result of the one job whose name ends in suffix (e.g.
// "/deploy" for deploy.yml's deploy job), "" when it did not run; it
// fails the test when several match.
func (r *actRun) Job(t *testing.T, suffix string) string {
	t.Helper()
	var found []string
	for j := range r.Jobs {
		if strings.HasSuffix(j, suffix) {
			found = append(found, j)
		}
	}
	switch len(found) {
	case 0:
		return ""
	case 1:
		return r.Jobs[found[0]]
	}
	sort.Strings(found)
	t.Fatalf("jobs %v all end in %q", found, suffix)
	return ""
}

// Output returns the output name of step in the job whose name ends in
// jobSuffix.
func (r *actRun) Output(jobSuffix, step, name string) string {
	for k, v := range r.Outputs {
		j, rest, _ := strings.Cut(k, " › ")
		if strings.HasSuffix(j, jobSuffix) && rest == step+" › "+name {
			return v
		}
	}
	return ""
}

// Step returns the result of step in the job whose name ends in jobSuffix,
// "" when it did not run.
func (r *actRun) Step(jobSuffix, step string) string {
	for k, v := range r.Steps {
		j, id, _ := strings.Cut(k, " › ")
		if strings.HasSuffix(j, jobSuffix) && id == step {
			return v
		}
	}
	return ""
}

// Summary returns every job summary of the run, in job order.
func (r *actRun) Summary() string {
	jobs := make([]string, 0, len(r.Summaries))
	for j := range r.Summaries {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	var b strings.Builder
	for _, j := range jobs {
		b.WriteString(r.Summaries[j])
	}
	return b.String()
}

// String is the run as a test failure shows it: the jobs' results, then
// the log.
func (r *actRun) String() string {
	return fmt.Sprintf("jobs: %v (act: %v)\n%s", r.Jobs, r.Err, r.Log)
}

// TestParseActJSON reads a log act v0.2.89 wrote for a job with an output,
// a summary, an error annotation and a failing step, and a job of a called
// workflow that never ran.
func TestParseActJSON(t *testing.T) {
	t.Parallel()
	log := `{"level":"info","msg":"Using docker host 'unix:///var/run/docker.sock'","time":"2026-11-30T07:44:48Z"}
{"job":"t/a","jobID":"a","level":"info","msg":"⭐ Run Main x","stage":"Main","step":"x","stepID":["s"]}
{"arg":"boom","command":"error","job":"t/a","jobID":"a","kvPairs":{"title":"t"},"level":"error","msg":"  ❗  ::error title=t::boom\n","stepID":["s"]}
{"job":"t/a","jobID":"a","level":"info","msg":"  ✅  Success - Main x","stage":"Main","stepID":["s"],"stepResult":"success"}
{"arg":"hello","command":"set-output","job":"t/a","jobID":"a","level":"info","msg":"  ⚙  ::set-output:: x=hello","name":"x","stepID":["s"]}
{"arg":"inner","command":"set-output","job":"t/a","jobID":"a","level":"info","msg":"  ⚙  ::set-output:: y=inner","name":"y","stepID":["s","0"]}
{"command":"summary","content":"### summary line\n","job":"t/a","jobID":"a","level":"info","msg":"  ⚙  Summary - ### summary line\n","stepID":["s"]}
{"job":"t/a","jobID":"a","level":"info","msg":"  ❌  Failure - Main exit 3","stage":"Main","stepID":["f"],"stepResult":"failure"}
{"job":"t/a","jobID":"a","level":"info","msg":"  ✅  Success - inner","stage":"Main","stepID":["f","0"],"stepResult":"success"}
{"job":"t/a","jobID":"a","level":"info","msg":"  ✅  Success - Post f","stage":"Post","stepID":["f"],"stepResult":"success"}
{"job":"t/a","jobID":"a","jobResult":"failure","level":"info","msg":"🏁  Job failed"}
{"job":"deploy/guard","jobID":"guard","jobResult":"success","level":"info","msg":"🏁  Job succeeded"}
Error: Job 'a' failed
`
	r := parseActJSON([]byte(log))
	checks := []struct{ what, got, want string }{
		{"job a", r.Jobs["t/a"], "failure"},
		{"job guard by suffix", r.Job(t, "/guard"), "success"},
		{"a job that did not run", r.Job(t, "/deploy"), ""},
		{"step s", r.Steps["t/a › s"], "success"},
		{"step f (not its inner step or its Post stage)", r.Steps["t/a › f"], "failure"},
		{"step f by job suffix", r.Step("/a", "f"), "failure"},
		{"a step that did not run", r.Step("/a", "g"), ""},
		{"output x", r.Output("/a", "s", "x"), "hello"},
		{"composite inner output, under its step", r.Output("/a", "s", "y"), "inner"},
		{"summary", r.Summary(), "### summary line\n"},
		{"errors", strings.Join(r.Errors, "|"), "t: boom"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
		}
	}
	if r.OK() {
		t.Error("a run with a failed job is OK")
	}
	if !strings.Contains(r.Log, "[t/a]   ⚙  ::set-output:: x=hello\n") || !strings.Contains(r.Log, "Error: Job 'a' failed\n") {
		t.Errorf("log:\n%s", r.Log)
	}
}

// expectRun fails the test when act's log lacks one of logs or the run's
// job summaries lack one of summaries.
func expectRun(t *testing.T, what string, r *actRun, logs []string, summaries ...string) {
	t.Helper()
	for _, w := range logs {
		if !strings.Contains(r.Log, w) {
			t.Errorf("%s: act's log lacks %q:\n%s", what, w, r)
		}
	}
	sum := r.Summary()
	for _, w := range summaries {
		if !strings.Contains(sum, w) {
			t.Errorf("%s: the job summaries lack %q:\n%s", what, w, sum)
		}
	}
}
