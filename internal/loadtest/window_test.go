package loadtest_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// rawLine is one line of k6's JSON output as k6 1.8.1 writes it.
func rawLine(metric string, at time.Time, value float64, status string) string {
	return fmt.Sprintf(`{"metric":%q,"type":"Point","data":{"time":%q,"value":%g,"tags":{"expected_response":"true","group":"","method":"GET","name":"target","proto":"HTTP/1.1","scenario":"load","status":%q,"url":"target"}}}`+"\n",
		metric, at.Format(time.RFC3339Nano), value, status)
}

// request is the lines k6 writes for one request: http_reqs, a duration
// and, unless failedFlag is negative, http_req_failed.
func request(at time.Time, status string, failedFlag int) string {
	s := rawLine("http_reqs", at, 1, status) + rawLine("http_req_duration", at, 1.5, status)
	if failedFlag >= 0 {
		s += rawLine("http_req_failed", at, float64(failedFlag), status)
	}
	return s
}

const metricLines = `{"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default","thresholds":[],"submetrics":null},"metric":"http_reqs"}
{"type":"Metric","data":{"name":"http_req_failed","type":"rate","contains":"default","thresholds":["rate<0.01"],"submetrics":null},"metric":"http_req_failed"}
`

func TestFailedInWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 30, 4, 13, 7, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	// One request every 100 ms from t0 to t0+900ms: 500s at 300 and 400,
	// a 404 the script expects at 500 (http_req_failed 0), no answer at 600.
	var withFlag, withoutFlag strings.Builder
	withFlag.WriteString(metricLines)
	withoutFlag.WriteString(metricLines)
	for i := range 10 {
		status, flag := "200", 0
		switch i {
		case 3, 4:
			status, flag = "500", 1
		case 5:
			status = "404"
		case 6:
			status, flag = "0", 1
		}
		withFlag.WriteString(request(at(i*100), status, flag))
		withoutFlag.WriteString(request(at(i*100), status, -1))
		withFlag.WriteString(rawLine("vus", at(i*100), 2, ""))
	}
	// k6 writes times with the runner's zone offset.
	withFlag.WriteString(request(at(1000).In(time.FixedZone("", 2*3600)), "503", 1))

	dir := t.TempDir()
	write := func(name, data string, gz bool) string {
		p := filepath.Join(dir, name)
		var b bytes.Buffer
		if gz {
			zw := gzip.NewWriter(&b)
			_, _ = zw.Write([]byte(data))
			_ = zw.Close()
		} else {
			b.WriteString(data)
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagGz := write("flag.json.gz", withFlag.String(), true)
	flagPlain := write("flag.json", withFlag.String(), false)
	noFlag := write("noflag.json.gz", withoutFlag.String(), true)

	tests := []struct {
		name        string
		path        string
		from, to    time.Time
		failed, all int64
	}{
		{"whole run", flagGz, time.Time{}, time.Time{}, 4, 11},
		{"plain JSON", flagPlain, time.Time{}, time.Time{}, 4, 11},
		{"from is in, to is out", flagGz, at(300), at(700), 3, 4},
		{"expected 404 is no failure", flagGz, at(500), at(600), 0, 1},
		{"only before", flagGz, time.Time{}, at(300), 0, 3},
		{"only after, other zone", flagGz, at(700), time.Time{}, 1, 4},
		{"empty window", flagGz, at(250), at(290), 0, 0},
		{"by status without http_req_failed", noFlag, time.Time{}, time.Time{}, 4, 10},
		{"by status in a window", noFlag, at(450), at(650), 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			failed, all, err := loadtest.FailedInWindow(tc.path, tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if failed != tc.failed || all != tc.all {
				t.Errorf("FailedInWindow = %d failed of %d; want %d of %d", failed, all, tc.failed, tc.all)
			}
		})
	}
}

func TestFailedInWindowRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := request(time.Now(), "200", 0)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(strings.Repeat(good, 100)))
	_ = zw.Close()
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"malformed line", []byte(good + `{"metric":"http_reqs","type":"Point","data":{"time":"yesterday"}}` + "\n"), "line 4: not a k6 JSON line"},
		{"truncated gzip", gz.Bytes()[:gz.Len()/2], "unexpected EOF"},
		{"bad gzip header", []byte{0x1f, 0x8b, 0, 0}, "read gzip header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := loadtest.FailedInWindow(p, time.Time{}, time.Time{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("FailedInWindow: %v; want an error naming %s and containing %q", err, p, tc.want)
			}
		})
	}
	if _, _, err := loadtest.FailedInWindow(filepath.Join(dir, "missing.json.gz"), time.Time{}, time.Time{}); err == nil {
		t.Error("FailedInWindow of a missing file: no error")
	}
}
