package loadtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// rawPoint is the part of a k6 JSON line FailedInWindow reads.
type rawPoint struct {
	Type   string `json:"type"`
	Metric string `json:"metric"`
	Data   struct {
		Time  time.Time `json:"time"`
		Value float64   `json:"value"`
		Tags  struct {
			Status string `json:"status"`
		} `json:"tags"`
	} `json:"data"`
}

// FailedInWindow reads k6's raw JSON output at rawPath (gzipped or not) in
// one streaming pass and counts the HTTP requests whose samples are timed
// within [from, to): total is the http_reqs samples, failed those k6 counted
// in http_req_failed (which honours the script's expected statuses). A run
// without http_req_failed (a script that turned it off) has its failures
// counted by status instead: 0 (no answer) or 400 and above. A zero from or
// to leaves that side of the window open. k6 times a request's samples when
// its answer has arrived.
func FailedInWindow(rawPath string, from, to time.Time) (failed, total int64, err error) {
	f, err := os.Open(rawPath)
	if err != nil {
		return 0, 0, fmt.Errorf("k6 output: %w", err)
	}
	defer f.Close()
	failed, total, err = failedInWindow(f, from, to)
	if err != nil {
		return 0, 0, fmt.Errorf("k6 output %s: %w", rawPath, err)
	}
	return failed, total, nil
}

func failedInWindow(r io.Reader, from, to time.Time) (failed, total int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, 0, fmt.Errorf("read gzip header: %w", err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	var (
		byFlag, byStatus int64
		sawFlag          bool
		pt               rawPoint
		n                int
	)
	er := &errReader{r: r}
	sc := bufio.NewScanner(er)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	for sc.Scan() {
		n++
		line := sc.Bytes()
		// Only lines about http_reqs and http_req_failed are decoded.
		if !bytes.Contains(line, []byte("http_req")) {
			continue
		}
		pt = rawPoint{}
		if err := json.Unmarshal(line, &pt); err != nil {
			if er.err != nil {
				// The line was cut short by a broken file.
				return 0, 0, fmt.Errorf("after line %d: %w", n-1, er.err)
			}
			return 0, 0, fmt.Errorf("line %d: not a k6 JSON line: %w", n, err)
		}
		if pt.Type != "Point" || (pt.Metric != "http_reqs" && pt.Metric != "http_req_failed") {
			continue
		}
		if pt.Metric == "http_req_failed" {
			sawFlag = true
		}
		t := pt.Data.Time
		if (!from.IsZero() && t.Before(from)) || (!to.IsZero() && !t.Before(to)) {
			continue
		}
		switch pt.Metric {
		case "http_reqs":
			total++
			if code, err := strconv.Atoi(pt.Data.Tags.Status); err == nil && (code == 0 || code >= 400) {
				byStatus++
			}
		case "http_req_failed":
			if pt.Data.Value != 0 {
				byFlag++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("after line %d: %w", n, err)
	}
	if sawFlag {
		return byFlag, total, nil
	}
	return byStatus, total, nil
}
