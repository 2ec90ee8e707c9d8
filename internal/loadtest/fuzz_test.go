package loadtest

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzParseThresholdFlag: thresholds text is refused, or read into metrics
// and expressions k6 accepts; written back one METRIC:EXPRESSION a line,
// they read back the same.
func FuzzParseThresholdFlag(f *testing.F) {
	for _, s := range []string{
		"http_req_duration:p(95)<300",
		"http_req_duration{status:200}:p(99)<1000, avg<200\n# comment\n\nhttp_req_failed:rate<0.01",
		"checks:rate>0.99\nhttp_reqs:count>10",
		"http_req_duration{expected_response:true}:p(90)<=250",
		"iterations:", ":p(95)<1", "x{a:b:c", "http_req_duration:p(95)<300,,", "my_trend:max<5\nmy_trend:max<5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		m, err := ParseThresholdFlag(text)
		if err != nil {
			if m != nil {
				t.Fatalf("ParseThresholdFlag(%q) returns thresholds with error %v", text, err)
			}
			return
		}
		if verr := ValidateThresholds(m); verr != nil {
			t.Fatalf("ParseThresholdFlag(%q) = %q, which k6 would refuse: %v", text, m, verr)
		}
		var lines []string
		for metric, exprs := range m {
			if metric == "" || metric != strings.TrimSpace(metric) || len(exprs) == 0 {
				t.Fatalf("ParseThresholdFlag(%q): metric %q with %q", text, metric, exprs)
			}
			for _, e := range exprs {
				if e == "" || strings.ContainsAny(e, ",\n") {
					t.Fatalf("ParseThresholdFlag(%q): metric %q expression %q", text, metric, e)
				}
				lines = append(lines, metric+":"+e)
			}
		}
		slices.Sort(lines)
		again, err := ParseThresholdFlag(strings.Join(lines, "\n"))
		if err != nil {
			t.Fatalf("thresholds %q written back as %q do not read back: %v", m, lines, err)
		}
		for k := range again {
			slices.Sort(again[k])
		}
		want := map[string][]string{}
		for k, v := range m {
			want[k] = slices.Sorted(slices.Values(v))
		}
		if !reflect.DeepEqual(again, want) {
			t.Fatalf("thresholds %q read back as %q", want, again)
		}
	})
}
