// Package k6load runs k6 at a constant arrival rate against a health URL in
// the background and reads back every request (wall time, status, error, the
// commit that answered): the load of the deploy-under-load benchmarks.
package k6load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// k6Script is the load: a constant arrival rate of GET requests on a health
// URL, each recorded with its wall time (connection included), status, error
// and the commit that answered.
const k6Script = `import http from 'k6/http';
import { Trend } from 'k6/metrics';

export const options = {
  noConnectionReuse: %s,
  discardResponseBodies: false,
  scenarios: {
    load: {
      executor: 'constant-arrival-rate',
      rate: %d,
      timeUnit: '1s',
      duration: '%s',
      preAllocatedVUs: %d,
      maxVUs: %d,
      gracefulStop: '15s',
    },
  },
};

// One sample per request: value = wall time in ms from the call to the
// answer (connecting included), tags = what answered.
const req = new Trend('bench_req', true);

export default function () {
  const t0 = Date.now();
  const res = http.get(%q, { timeout: '10s' });
  const ms = Date.now() - t0;
  let sha = '';
  if (res.status === 200) {
    try { sha = String(res.json('git_sha')).slice(0, 7); } catch (e) { sha = 'unparsable'; }
  }
  req.add(ms, {
    status: String(res.status),
    sha: sha,
    err: res.error ? String(res.error) : '',
    start: String(t0),
  });
}
`

// Options is one k6 run.
type Options struct {
	K6  string   // the k6 binary
	Dir string   // where the script, the raw output and the log go
	Env []string // k6's environment (K6_NO_USAGE_REPORT=true among it)
	URL string
	// Rate is requests per second for Window.
	Rate   int
	Window time.Duration
	// ReuseConnections keeps connections alive; false opens one per request.
	ReuseConnections bool
}

// Load is one k6 run in the background.
type Load struct {
	cmd     *exec.Cmd
	out     string // --out json file
	log     string // k6's stdout and stderr
	done    chan struct{}
	err     error
	Started time.Time
}

// Start starts k6 for o in the background; ctx ending stops it (SIGINT).
func Start(ctx context.Context, o Options) (*Load, error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	reuse := "true"
	if o.ReuseConnections {
		reuse = "false"
	}
	// Enough VUs for 2 s of requests at once before k6 adds more, and room
	// for every request of a 10 s stall.
	script := fmt.Sprintf(k6Script, reuse, o.Rate, o.Window, max(2*o.Rate, 50), max(12*o.Rate, 100), o.URL)
	scriptPath := filepath.Join(o.Dir, "load.js")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		return nil, err
	}
	l := &Load{out: filepath.Join(o.Dir, "k6.json"), log: filepath.Join(o.Dir, "k6.log"), done: make(chan struct{})}
	logFile, err := os.Create(l.log)
	if err != nil {
		return nil, err
	}
	l.cmd = exec.CommandContext(ctx, o.K6, "run", "--quiet", "--no-color", "--out", "json="+l.out, scriptPath)
	l.cmd.Dir, l.cmd.Env = o.Dir, o.Env
	l.cmd.Stdout, l.cmd.Stderr = logFile, logFile
	l.cmd.Cancel = func() error { return l.cmd.Process.Signal(syscall.SIGINT) }
	l.cmd.WaitDelay = 20 * time.Second
	l.Started = time.Now()
	if err := l.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start k6: %w", err)
	}
	go func() {
		l.err = l.cmd.Wait()
		logFile.Close()
		close(l.done)
	}()
	return l, nil
}

// Wait waits for k6 to finish and returns what it recorded.
func (l *Load) Wait() (*Result, error) {
	<-l.done
	logTail := ""
	if data, err := os.ReadFile(l.log); err == nil {
		logTail = tail(string(data), 2000)
	}
	if l.err != nil {
		return nil, fmt.Errorf("k6: %v\n%s", l.err, logTail)
	}
	res, err := parseK6(l.out)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(l.out) // ~3 KB per request
	return res, nil
}

// Request is one request of the load.
type Request struct {
	Start, End time.Time
	Status     int
	SHA        string
	Err        string
}

// Failed reports a request that got no 2xx answer.
func (r Request) Failed() bool { return r.Status < 200 || r.Status > 299 }

// Latency is the request's wall time, connecting included.
func (r Request) Latency() time.Duration { return r.End.Sub(r.Start) }

// Result is what one k6 run recorded.
type Result struct {
	Requests []Request // by start time
	Dropped  int       // iterations k6 could not start (no free VU)
}

// parseK6 reads k6's JSON output: the bench_req samples and the dropped
// iterations.
func parseK6(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := &Result{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Bytes()
		isReq := bytes.Contains(line, []byte(`"metric":"bench_req"`))
		if !isReq && !bytes.Contains(line, []byte(`"metric":"dropped_iterations"`)) {
			continue
		}
		var p struct {
			Type string `json:"type"`
			Data struct {
				Time  time.Time         `json:"time"`
				Value float64           `json:"value"`
				Tags  map[string]string `json:"tags"`
			} `json:"data"`
		}
		if err := json.Unmarshal(line, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if p.Type != "Point" {
			continue
		}
		if !isReq {
			res.Dropped += int(p.Data.Value)
			continue
		}
		ms, err := strconv.ParseInt(p.Data.Tags["start"], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: sample without start tag", path)
		}
		start := time.UnixMilli(ms)
		status, _ := strconv.Atoi(p.Data.Tags["status"])
		res.Requests = append(res.Requests, Request{
			Start: start, End: start.Add(time.Duration(p.Data.Value * float64(time.Millisecond))),
			Status: status, SHA: p.Data.Tags["sha"], Err: p.Data.Tags["err"],
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(res.Requests) == 0 {
		return nil, fmt.Errorf("k6 recorded no request in %s", path)
	}
	slices.SortFunc(res.Requests, func(a, b Request) int { return a.Start.Compare(b.Start) })
	return res, nil
}

// addrRE matches the addresses and ports in k6's error messages.
var addrRE = regexp.MustCompile(`(\d+\.){3}\d+:\d+`)

// ErrKind is a request's failure without its addresses, e.g.
// "read: connection reset by peer" or "HTTP 502".
func ErrKind(r Request) string {
	if r.Err == "" {
		return fmt.Sprintf("HTTP %d", r.Status)
	}
	e := addrRE.ReplaceAllString(r.Err, "ADDR")
	e = strings.ReplaceAll(e, "ADDR->ADDR", "ADDR")
	// Get "url": dial tcp ADDR: connect: connection refused → keep the cause.
	if i := strings.Index(e, "\": "); i >= 0 && strings.HasPrefix(e, "Get ") {
		e = e[i+3:]
	}
	return e
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
