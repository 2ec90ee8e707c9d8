package main

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

// k6Script is the load: a constant arrival rate of GET requests on the
// /health URL, each on a new connection, each recorded with its wall time
// (connection included), status, error and the commit that answered.
const k6Script = `import http from 'k6/http';
import { Trend } from 'k6/metrics';

export const options = {
  noConnectionReuse: true,
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

// load is one k6 run in the background.
type load struct {
	cmd     *exec.Cmd
	out     string // --out json file
	log     string // k6's stdout and stderr
	done    chan struct{}
	err     error
	Started time.Time
}

// startLoad starts k6 against url for the configured window.
func (b *bench) startLoad(ctx context.Context, name, url string) (*load, error) {
	dir := filepath.Join(b.tmp, "load-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Enough VUs for 2 s of requests at once before k6 adds more, and room
	// for every request of a 10 s stall.
	script := fmt.Sprintf(k6Script, b.c.Rate, b.c.Window, max(2*b.c.Rate, 50), max(12*b.c.Rate, 100), url)
	scriptPath := filepath.Join(dir, "load.js")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		return nil, err
	}
	l := &load{out: filepath.Join(dir, "k6.json"), log: filepath.Join(dir, "k6.log"), done: make(chan struct{})}
	logFile, err := os.Create(l.log)
	if err != nil {
		return nil, err
	}
	l.cmd = exec.CommandContext(ctx, b.bin["k6"], "run", "--quiet", "--no-color", "--out", "json="+l.out, scriptPath)
	l.cmd.Dir, l.cmd.Env = dir, b.env
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
func (l *load) Wait() (*loadResult, error) {
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

// request is one request of the load.
type request struct {
	Start, End time.Time
	Status     int
	SHA        string
	Err        string
}

func (r request) Failed() bool { return r.Status < 200 || r.Status > 299 }

func (r request) Latency() time.Duration { return r.End.Sub(r.Start) }

// loadResult is what one k6 run recorded.
type loadResult struct {
	Requests []request // by start time
	Dropped  int       // iterations k6 could not start (no free VU)
}

// parseK6 reads k6's JSON output: the bench_req samples and the dropped
// iterations.
func parseK6(path string) (*loadResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := &loadResult{}
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
		res.Requests = append(res.Requests, request{
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
	slices.SortFunc(res.Requests, func(a, b request) int { return a.Start.Compare(b.Start) })
	return res, nil
}

// addrRE matches the addresses and ports in k6's error messages.
var addrRE = regexp.MustCompile(`(\d+\.){3}\d+:\d+`)

// errKind is a request's failure without its addresses, e.g. "EOF",
// "read: connection reset by peer" or "HTTP 502".
func errKind(r request) string {
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
