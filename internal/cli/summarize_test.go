package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/loadtest"
)

// k6Output is the start of a real k6 v1.8.1 --out json file: two requests,
// the second answered with a 500.
const k6Output = `{"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default","thresholds":[],"submetrics":null},"metric":"http_reqs"}
{"metric":"http_reqs","type":"Point","data":{"time":"2026-11-30T04:14:20.815661691Z","value":1,"tags":{"expected_response":"true","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"200","url":"http://127.0.0.1:18081/"}}}
{"type":"Metric","data":{"name":"http_req_duration","type":"trend","contains":"time","thresholds":[],"submetrics":[{"name":"http_req_duration{expected_response:true}","suffix":"expected_response:true","tags":{"expected_response":"true"}}]},"metric":"http_req_duration"}
{"metric":"http_req_duration","type":"Point","data":{"time":"2026-11-30T04:14:20.815661691Z","value":1.405444,"tags":{"expected_response":"true","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"200","url":"http://127.0.0.1:18081/"}}}
{"type":"Metric","data":{"name":"http_req_failed","type":"rate","contains":"default","thresholds":[],"submetrics":null},"metric":"http_req_failed"}
{"metric":"http_req_failed","type":"Point","data":{"time":"2026-11-30T04:14:20.815661691Z","value":0,"tags":{"expected_response":"true","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"200","url":"http://127.0.0.1:18081/"}}}
{"metric":"http_reqs","type":"Point","data":{"time":"2026-11-30T04:14:21.816031352Z","value":1,"tags":{"expected_response":"false","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"500","url":"http://127.0.0.1:18081/"}}}
{"metric":"http_req_duration","type":"Point","data":{"time":"2026-11-30T04:14:21.816031352Z","value":3.789386,"tags":{"expected_response":"false","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"500","url":"http://127.0.0.1:18081/"}}}
{"metric":"http_req_failed","type":"Point","data":{"time":"2026-11-30T04:14:21.816031352Z","value":1,"tags":{"expected_response":"false","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"500","url":"http://127.0.0.1:18081/"}}}
`

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkSummary fails unless data is the summary.json of k6Output.
func checkSummary(t *testing.T, data []byte) {
	t.Helper()
	var s loadtest.Summary
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("summary.json does not decode: %v\n%s", err, data)
	}
	if !bytes.Contains(data, []byte("\n  \"metrics\": {")) {
		t.Errorf("summary.json is not indented:\n%s", data)
	}
	d := s.Metrics["http_req_duration"]
	if s.SchemaVersion != loadtest.SchemaVersion || d == nil || d.Count != 2 || d.Min != 1.405444 || d.Max != 3.789386 || s.ErrorsByStatus["500"] != 1 || len(s.Groups) != 2 {
		t.Errorf("summary = %s; want schema %d, 2 durations from 1.405444 to 3.789386, one 500 and 2 groups", data, loadtest.SchemaVersion)
	}
}

func TestLoadtestSummarize(t *testing.T) {
	t.Parallel()
	truncated := gzipped(t, strings.Repeat(k6Output, 50))
	truncated = truncated[:len(truncated)/2]
	badLine := strings.Join(strings.SplitAfter(k6Output, "\n")[:3], "") + "k6 v1.8.1 starting\n"
	for _, tc := range []struct {
		name  string
		files map[string]string // in the test's directory
		args  []string          // after loadtest summarize; DIR/ is the test's directory
		code  int
		// stdout is whether the summary goes to stdout (else to DIR/summary.json).
		stdout bool
		log    []string // what the log line says, DIR/ replaced
	}{
		{name: "plain JSON to stdout", files: map[string]string{"raw.json": k6Output}, args: []string{"DIR/raw.json"}, stdout: true},
		{name: "gzip to --out", files: map[string]string{"raw.json.gz": gzipped(t, k6Output)}, args: []string{"DIR/raw.json.gz", "--out", "DIR/summary.json"}},
		{name: "--out= before the input", files: map[string]string{"raw.json": k6Output}, args: []string{"--out=DIR/summary.json", "DIR/raw.json"}},
		{name: "missing file", args: []string{"DIR/nope.json", "--out", "DIR/summary.json"}, code: 1,
			log: []string{"gantry loadtest summarize: DIR/nope.json: no such file; pass the file k6 wrote with --out json=FILE"}},
		{name: "truncated gzip", files: map[string]string{"raw.json.gz": truncated}, args: []string{"DIR/raw.json.gz", "--out", "DIR/summary.json"}, code: 1,
			log: []string{"gantry loadtest summarize: DIR/raw.json.gz: read k6 output after line ", "unexpected EOF; the file is cut short or damaged"}},
		{name: "not JSON on line 4", files: map[string]string{"raw.json": badLine}, args: []string{"DIR/raw.json"}, code: 1,
			log: []string{"gantry loadtest summarize: DIR/raw.json: line 4: not a k6 JSON line: ", "; pass the file k6 wrote with --out json=FILE"}},
		{name: "a directory", args: []string{"DIR"}, code: 1, log: []string{"gantry loadtest summarize: DIR: read k6 output after line 0: ", "is a directory"}},
		{name: "--out in a missing directory", files: map[string]string{"raw.json": k6Output}, args: []string{"DIR/raw.json", "--out", "DIR/no/summary.json"}, code: 1,
			log: []string{"gantry loadtest summarize: write DIR/no/summary.json: ", "check that its directory exists and is writable"}},
		{name: "no input", args: []string{"--out", "DIR/summary.json"}, code: 1,
			log: []string{"gantry loadtest summarize: name the k6 output file; usage: gantry loadtest summarize <k6-output.json[.gz]> [--out summary.json]"}},
		{name: "--out without a value", files: map[string]string{"raw.json": k6Output}, args: []string{"DIR/raw.json", "--out"}, code: 1,
			log: []string{"--out needs a file name; usage: "}},
		{name: "two inputs", args: []string{"a.json", "b.json"}, code: 1, log: []string{`one input file only (got "a.json" and "b.json")`}},
		{name: "unknown flag", args: []string{"a.json", "--format", "csv"}, code: 1, log: []string{`unknown flag "--format"`}},
		{name: "help", args: []string{"--help"}, log: []string{"Usage: gantry loadtest summarize <k6-output.json[.gz]> [--out summary.json]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"loadtest", "summarize"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "DIR", dir))
			}
			r := runCLI(t, nil, nil, args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.code, r.log)
			}
			summary, err := os.ReadFile(filepath.Join(dir, "summary.json"))
			switch {
			case tc.code != 0:
				if err == nil {
					t.Errorf("a failed run wrote summary.json")
				}
				if strings.Count(strings.TrimSuffix(r.log, "\n"), "\n") != 0 {
					t.Errorf("the error takes more than one line:\n%s", r.log)
				}
			case tc.stdout:
				checkSummary(t, []byte(r.log))
			case len(tc.files) > 0:
				if err != nil {
					t.Fatalf("no summary.json: %v\n%s", err, r.log)
				}
				checkSummary(t, summary)
				if r.log != "" {
					t.Errorf("a summary written to --out printed %q", r.log)
				}
			}
			for _, want := range tc.log {
				if want = strings.ReplaceAll(want, "DIR", dir); !strings.Contains(r.log, want) {
					t.Errorf("log lacks %q:\n%s", want, r.log)
				}
			}
		})
	}
}

// TestLoadtestSummarizeKeepsOutOnFailure checks that a failed summary leaves
// an earlier summary.json as it was.
func TestLoadtestSummarizeKeepsOutOnFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "summary.json")
	if err := os.WriteFile(out, []byte("earlier"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "raw.json"), []byte("{\"type\":\"Point\",\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, nil, nil, "loadtest", "summarize", filepath.Join(dir, "raw.json"), "--out", out); r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.log)
	}
	if data, err := os.ReadFile(out); err != nil || string(data) != "earlier" {
		t.Errorf("summary.json = %q, %v; want the earlier one", data, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("the directory holds %d files, want raw.json and summary.json only", len(entries))
	}
}

func TestHelpListsLoadtestSummarize(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, nil, "help")
	if r.code != 0 || !strings.Contains(r.log, "\n  loadtest summarize Summarize k6's raw JSON output") {
		t.Errorf("exit %d; help does not list loadtest summarize:\n%s", r.code, r.log)
	}
}

// TestLoadtestSummarizeStopsWhenCancelled checks that a cancelled context
// stops the summary before it reads the file, with a message saying so.
func TestLoadtestSummarizeStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	raw := filepath.Join(t.TempDir(), "raw.json")
	if err := os.WriteFile(raw, []byte(k6Output), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out bytes.Buffer
	code := Run(ctx, []string{"loadtest", "summarize", raw}, action.Env{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &out})
	if want := "gantry loadtest summarize: " + raw + ": cancelled: "; code != 1 || !strings.HasPrefix(out.String(), want) {
		t.Errorf("exit %d, %q; want 1 and %q", code, out.String(), want)
	}
}
