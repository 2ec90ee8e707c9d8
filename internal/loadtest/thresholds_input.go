package loadtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ParseThresholdFlag parses thresholds given one per line as METRIC:EXPRESSION
// (http_req_duration:p(95)<300, http_req_duration{status:200}:p(99)<1000),
// several expressions on a line separated by commas; blank lines and lines
// starting with # are skipped.
func ParseThresholdFlag(text string) (map[string][]string, error) {
	out := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		metric, exprs, ok := cutOutsideBraces(line, ':')
		metric = strings.TrimSpace(metric)
		if !ok || metric == "" || strings.TrimSpace(exprs) == "" {
			return nil, fmt.Errorf("loadtest: threshold line %d %q: want METRIC:EXPRESSION, like http_req_duration:p(95)<300 or http_req_duration{status:200}:p(99)<1000", n, line)
		}
		for expr := range strings.SplitSeq(exprs, ",") {
			expr = strings.TrimSpace(expr)
			if err := ValidateThresholds(map[string][]string{metric: {expr}}); err != nil {
				return nil, fmt.Errorf("%w (line %d)", err, n)
			}
			if !slices.Contains(out[metric], expr) {
				out[metric] = append(out[metric], expr)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("loadtest: read thresholds: %w", err)
	}
	return out, nil
}

// cutOutsideBraces cuts s around the first sep that is not inside {}.
func cutOutsideBraces(s string, sep byte) (before, after string, found bool) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case sep:
			if depth == 0 {
				return s[:i], s[i+1:], true
			}
		}
	}
	return s, "", false
}

// ThresholdsFromInspect reads the thresholds of a script from the JSON that
// `k6 inspect SCRIPT` prints, taking both the string form and the object
// form ({"threshold": "...", "abortOnFail": true}) of each expression.
func ThresholdsFromInspect(data []byte) (map[string][]string, error) {
	var opts struct {
		Thresholds map[string][]json.RawMessage `json:"thresholds"`
	}
	if err := json.Unmarshal(data, &opts); err != nil {
		return nil, fmt.Errorf("loadtest: read the output of k6 inspect: %w; want the JSON options that k6 inspect SCRIPT prints", err)
	}
	out := make(map[string][]string, len(opts.Thresholds))
	for metric, raws := range opts.Thresholds {
		exprs := make([]string, 0, len(raws))
		for _, raw := range raws {
			var expr string
			if err := json.Unmarshal(raw, &expr); err != nil {
				var obj struct {
					Threshold *string `json:"threshold"`
				}
				if err := json.Unmarshal(raw, &obj); err != nil || obj.Threshold == nil {
					return nil, fmt.Errorf("loadtest: k6 inspect: threshold %s on %s is neither a string nor an object with a threshold field", raw, metric)
				}
				expr = *obj.Threshold
			}
			exprs = append(exprs, expr)
		}
		out[metric] = exprs
	}
	if err := ValidateThresholds(out); err != nil {
		return nil, err
	}
	return out, nil
}

// MergeThresholds merges metric → expressions maps, keeping the first
// occurrence of each expression on a metric, in order.
func MergeThresholds(sets ...map[string][]string) map[string][]string {
	out := map[string][]string{}
	for _, set := range sets {
		for metric, exprs := range set {
			for _, expr := range exprs {
				if !slices.Contains(out[metric], expr) {
					out[metric] = append(out[metric], expr)
				}
			}
		}
	}
	return out
}
