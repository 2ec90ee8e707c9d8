package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/testenv"
)

// differentialThresholds select sub-metrics by tags the summary decodes
// anyway and by others (proto, custom, error_code), so both ways of looking
// a tag up are compared.
var differentialThresholds = map[string][]string{
	"http_req_duration":                                  {"p(95)<300", "avg<100", "med<50"},
	"http_req_duration{status:200}":                      {"p(99)<500"},
	"http_req_duration{proto:HTTP/1.1}":                  {"max<1000", "p(90)<200"},
	"http_req_duration{name:Grüße — ログイン,method:GET}":    {"p(50)<40"},
	"http_reqs{custom:ünï}":                              {"count>0"},
	"http_reqs{expected_response:true}":                  {"rate>1"},
	"checks{check:status is 200}":                        {"rate>0.9"},
	"http_req_failed{scenario:default,error_code:1211}":  {"rate<0.1"},
	"iteration_duration{group:::g}":                      {"min>0"},
	"vus":                                                {"value>0"},
	"custom_trend{custom:a&b}":                           {"p(99)<1"},
	"http_req_duration{expected_response:true,proto:h2}": {"avg<1"},
}

// summarizeBoth summarizes input with the scanner and with encoding/json
// alone, and fails unless both give the same error or the same summary.
func summarizeBoth(t testing.TB, input []byte, opt Options) *Summary {
	t.Helper()
	fast, ferr := summarize(bytes.NewReader(input), opt, decodeFast)
	slow, serr := summarize(bytes.NewReader(input), opt, decodeJSON)
	if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
		t.Fatalf("scanner error: %v\nencoding/json error: %v", ferr, serr)
	}
	if ferr != nil {
		return nil
	}
	// The JSON tells -0 from 0, and DeepEqual the rest (time locations). A
	// time before year 0 in UTC (a year-0 time with an offset) is not
	// encodable.
	fj, ferr := json.Marshal(fast)
	sj, serr := json.Marshal(slow)
	if (ferr == nil) != (serr == nil) || !bytes.Equal(fj, sj) || !reflect.DeepEqual(fast, slow) {
		t.Fatalf("the scanner's summary differs from encoding/json's:\nscanner:       %s\nencoding/json: %s", fj, sj)
	}
	return fast
}

// scanned reports how many of the lines of input scanPoint accepts.
func scanned(input []byte) (n int) {
	var p point
	for l := range bytes.Lines(input) {
		if scanPoint(bytes.TrimSpace(l), &p) {
			n++
		}
	}
	return n
}

// declarations are the Metric lines of a k6 output, as k6 writes them.
const declarations = `{"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default","thresholds":[],"submetrics":null},"metric":"http_reqs"}
{"type":"Metric","data":{"name":"http_req_duration","type":"trend","contains":"time","thresholds":[],"submetrics":null},"metric":"http_req_duration"}
{"type":"Metric","data":{"name":"http_req_failed","type":"rate","contains":"default","thresholds":[],"submetrics":null},"metric":"http_req_failed"}
{"type":"Metric","data":{"name":"checks","type":"rate","contains":"default","thresholds":[],"submetrics":null},"metric":"checks"}
{"type":"Metric","data":{"name":"vus","type":"gauge","contains":"default","thresholds":[],"submetrics":null},"metric":"vus"}
{"type":"Metric","data":{"name":"iteration_duration","type":"trend","contains":"time","thresholds":[],"submetrics":null},"metric":"iteration_duration"}
`

// A Point line as k6 writes it, for the table below.
const k6Point = `{"metric":"http_req_duration","type":"Point","data":{"time":"2026-11-30T04:54:01.123456789Z","value":12.345678,"tags":{"expected_response":"true","group":"::browse","method":"GET","name":"http://127.0.0.1:8080/api/items","proto":"HTTP/1.1","scenario":"shop","status":"200","tls_version":"","url":"http://127.0.0.1:8080/api/items"}}}`

func TestScanPointAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	pt := func(metric, time, value, tags string) string {
		return `{"metric":"` + metric + `","type":"Point","data":{"time":"` + time + `","value":` + value + `,"tags":` + tags + `}}`
	}
	const tm, tg = "2026-11-30T04:54:01.5Z", `{"name":"a","status":"200","method":"GET","scenario":"s"}`
	tests := []struct {
		name    string
		line    string
		scanned bool // whether the scanner, not encoding/json, decodes it
	}{
		{"k6's layout", k6Point, true},
		{"metric line", strings.SplitN(declarations, "\n", 2)[0], false},
		{"keys reordered", `{"data":{"tags":{"status":"200","name":"a"},"value":3,"time":"` + tm + `"},"type":"Point","metric":"http_req_duration"}`, true},
		{"odd whitespace", " {\t\"metric\" :\"http_req_duration\" ,\r\"type\": \"Point\",\"data\" : { \"time\" : \"" + tm + "\" , \"value\" : 3 , \"tags\" : { \"name\" : \"a\" } } }\r", true},
		{"tags null", pt("vus", tm, "4", "null"), true},
		{"tags empty", pt("vus", tm, "4", "{}"), true},
		{"tags missing", `{"metric":"vus","type":"Point","data":{"time":"` + tm + `","value":4}}`, true},
		{"some tags missing", pt("http_req_duration", tm, "4", `{"method":"GET"}`), true},
		{"unicode tags", pt("http_req_duration", tm, "4", `{"name":"Grüße — ログイン 🚀","custom":"ünï"}`), true},
		{"escaped ampersand", pt("http_req_duration", tm, "4", `{"name":"http://a/?x=1\u0026y=2"}`), false},
		{"escaped quote in an unread tag", pt("http_req_duration", tm, "4", `{"custom":"\"q\""}`), false},
		{"escaped key", pt("http_req_duration", tm, "4", `{"n\u0061me":"b"}`), false},
		{"escaped metric", `{"metric":"http_req_dur\u0061tion","type":"Point","data":{"time":"` + tm + `","value":4}}`, false},
		{"escaped surrogate pair", pt("http_req_duration", tm, "4", `{"name":"\ud83d\ude80"}`), false},
		{"lone surrogate", pt("http_req_duration", tm, "4", `{"name":"\ud83d"}`), false},
		{"invalid UTF-8", pt("http_req_duration", tm, "4", "{\"name\":\"a\xffb\"}"), false},
		{"invalid UTF-8 in an unread tag", pt("http_req_duration", tm, "4", "{\"custom\":\"\xc3\"}"), false},
		{"control character", pt("http_req_duration", tm, "4", "{\"name\":\"a\tb\"}"), false},
		{"DEL is fine", pt("http_req_duration", tm, "4", "{\"name\":\"a\x7fb\"}"), true},
		{"key in capitals", pt("http_req_duration", tm, "4", `{"NAME":"b"}`), false},
		{"key folding with the Kelvin sign", `{"metric":"checks","type":"Point","data":{"time":"` + tm + `","value":1,"tags":{"chec\u212a":"c"}}}`, false},
		{"raw Kelvin sign in a key", "{\"metric\":\"checks\",\"type\":\"Point\",\"data\":{\"time\":\"" + tm + "\",\"value\":1,\"tags\":{\"chec\u212a\":\"c\"}}}", false},
		{"unknown tag that folds to none", pt("http_req_duration", tm, "4", `{"Proto":"HTTP/2"}`), true},
		{"top-level key in capitals", `{"Metric":"vus","type":"Point","data":{"time":"` + tm + `","value":4}}`, false},
		{"unknown top-level key", `{"metric":"vus","type":"Point","data":{"time":"` + tm + `","value":4},"extra":1}`, false},
		{"unknown data key", `{"metric":"vus","type":"Point","data":{"time":"` + tm + `","value":4,"metadata":{}}}`, false},
		{"duplicate tag", pt("http_req_duration", tm, "4", `{"name":"a","name":"b"}`), true},
		{"duplicate key", `{"metric":"vus","metric":"vus","type":"Point","data":{"time":"` + tm + `","value":4}}`, false},
		{"tag not a string", pt("http_req_duration", tm, "4", `{"status":200}`), false},
		{"unknown tag not a string", pt("http_req_duration", tm, "4", `{"custom":1}`), false},
		{"tag null", pt("http_req_duration", tm, "4", `{"status":null}`), false},
		{"value null", pt("vus", tm, "null", "null"), false},
		{"value missing", `{"metric":"vus","type":"Point","data":{"time":"` + tm + `"}}`, false},
		{"value a string", pt("vus", tm, `"4"`, "null"), false},
		{"negative value", pt("vus", tm, "-4.5", "null"), true},
		{"negative zero", pt("http_req_duration", tm, "-0", tg), true},
		{"exponent", pt("http_req_duration", tm, "1.5e-7", tg), true},
		{"exponent in capitals with a sign", pt("http_req_duration", tm, "-2E+3", tg), true},
		{"long number", pt("http_req_duration", tm, "1234567890.123456789012345678901234567890", tg), true},
		{"tiny number", pt("http_req_duration", tm, "1e-400", tg), true},
		{"number out of range", pt("http_req_duration", tm, "1e400", tg), false},
		{"leading zero", pt("http_req_duration", tm, "012", tg), false},
		{"plus sign", pt("http_req_duration", tm, "+1", tg), false},
		{"bare point", pt("http_req_duration", tm, "1.", tg), false},
		{"hex", pt("http_req_duration", tm, "0x10", tg), false},
		{"offset", pt("http_req_duration", "2026-11-30T06:54:01.123+02:00", "1", tg), true},
		{"negative offset", pt("http_req_duration", "2026-11-29T23:54:01-05:00", "1", tg), true},
		{"no fraction", pt("http_req_duration", "2026-11-30T04:54:01Z", "1", tg), true},
		{"twelve fraction digits", pt("http_req_duration", "2026-11-30T04:54:01.123456789999Z", "1", tg), true},
		{"leap day", pt("http_req_duration", "2024-02-29T00:00:00Z", "1", tg), true},
		{"no leap day", pt("http_req_duration", "2100-02-29T00:00:00Z", "1", tg), false},
		{"lower-case t", pt("http_req_duration", "2026-11-30t04:54:01Z", "1", tg), false},
		{"lower-case z", pt("http_req_duration", "2026-11-30T04:54:01z", "1", tg), false},
		{"comma before the fraction", pt("http_req_duration", "2026-11-30T04:54:01,5Z", "1", tg), false},
		{"one-digit hour", pt("http_req_duration", "2026-11-30T4:54:01Z", "1", tg), false},
		{"hour 24", pt("http_req_duration", "2026-11-30T24:00:00Z", "1", tg), false},
		{"offset hour 24", pt("http_req_duration", "2026-11-30T04:54:01+24:00", "1", tg), false},
		{"no zone", pt("http_req_duration", "2026-11-30T04:54:01", "1", tg), false},
		{"zero time", pt("http_req_duration", "0001-01-01T00:00:00Z", "1", tg), true},
		{"year 0", pt("http_req_duration", "0000-03-01T00:00:00Z", "1", tg), true},
		{"time null", `{"metric":"vus","type":"Point","data":{"time":null,"value":4}}`, false},
		{"empty metric", pt("", tm, "1", tg), true},
		{"no metric", `{"type":"Point","data":{"time":"` + tm + `","value":4}}`, false},
		{"no type", `{"metric":"vus","data":{"time":"` + tm + `","value":4}}`, false},
		{"unknown type", `{"metric":"vus","type":"Pointy","data":{"time":"` + tm + `","value":4}}`, false},
		{"trailing comma", `{"metric":"vus","type":"Point","data":{"time":"` + tm + `","value":4},}`, false},
		{"trailing garbage", pt("vus", tm, "4", "null") + "x", false},
		{"two objects", pt("vus", tm, "4", "null") + pt("vus", tm, "4", "null"), false},
		{"truncated", pt("vus", tm, "4", "null")[:60], false},
		{"missing colon", `{"metric" "vus","type":"Point","data":{"time":"` + tm + `","value":4}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var p point
			if got := scanPoint(bytes.TrimSpace([]byte(tt.line)), &p); got != tt.scanned {
				t.Errorf("scanPoint accepts %q: %v; want %v", tt.line, got, tt.scanned)
			}
			checkScan(t, tt.line)
			input := declarations + tt.line + "\n" + pt("http_req_duration", "2026-11-30T04:54:02Z", "7", tg) + "\n"
			summarizeBoth(t, []byte(input), Options{Thresholds: differentialThresholds})
		})
	}
}

// checkScan fails if scanPoint accepts text and decodes it differently from
// encoding/json: the metric, the time (the same instant), the value (to the
// bit), the tags the summary reads and every other tag.
func checkScan(t testing.TB, text string) {
	t.Helper()
	b := bytes.TrimSpace([]byte(text))
	var p point
	if !scanPoint(b, &p) {
		return
	}
	var l struct {
		Type   string `json:"type"`
		Metric string `json:"metric"`
		Data   struct {
			Time  time.Time         `json:"time"`
			Value float64           `json:"value"`
			Tags  map[string]string `json:"tags"`
		} `json:"data"`
	}
	var ln line
	if err := json.Unmarshal(b, &ln); err != nil {
		t.Fatalf("scanPoint accepts %q, which encoding/json rejects: %v", text, err)
	}
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("scanPoint accepts %q, whose tags encoding/json rejects: %v", text, err)
	}
	var want point
	want.decoded(&ln)
	switch {
	case ln.Type != "Point":
		t.Fatalf("scanPoint accepts %q of type %q", text, ln.Type)
	case string(p.metric) != string(want.metric):
		t.Fatalf("%q: metric %q; encoding/json %q", text, p.metric, want.metric)
	case !p.time.Equal(want.time):
		t.Fatalf("%q: time %v; encoding/json %v", text, p.time, want.time)
	case math.Float64bits(p.value) != math.Float64bits(want.value):
		t.Fatalf("%q: value %v; encoding/json %v", text, p.value, want.value)
	}
	for i := range p.tags {
		if string(p.tags[i]) != string(want.tags[i]) {
			t.Fatalf("%q: tag %s = %q; encoding/json %q", text, tagKeys[i], p.tags[i], want.tags[i])
		}
	}
	for k, v := range l.Data.Tags {
		if got, ok := lookupTag(p.rawTags, k); !ok || string(got) != v {
			t.Fatalf("%q: tag %q = %q, %v; encoding/json %q", text, k, got, ok, v)
		}
	}
	for _, k := range []string{"proto", "custom", "error_code", "absent"} {
		if _, ok := lookupTag(p.rawTags, k); ok != hasKey(l.Data.Tags, k) {
			t.Fatalf("%q: tag %q present: %v; encoding/json disagrees", text, k, ok)
		}
	}
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// synth makes k6 Point lines, most in k6's own layout and some shuffled,
// spaced and escaped; scanned says whether scanPoint should accept each.
type synth struct {
	r     *rand.Rand
	start time.Time
}

var (
	synthMetrics = []string{"http_req_duration", "http_reqs", "http_req_failed", "checks", "vus", "iteration_duration", "data_sent", "custom_trend", "ünï_metric"}
	// synthValues are tag values; those with a backslash are escaped.
	synthValues = []string{"", "200", "500", "0", "GET", "POST", "default", "shop", "::g", "::browse", "true", "false", "HTTP/1.1", "h2", "1211",
		"status is 200", "http://app/", "Grüße — ログイン", "ünï", "🚀", "a&b", `a\u0026b`, `\"q\"`, `back\\slash`, `\/`, `\u00fcn\u00ef`, `\ud83d\ude80`}
	synthTagKeys = []string{"name", "url", "method", "status", "scenario", "check", "group", "expected_response", "proto", "custom", "error_code", "tls_version"}
)

func (g *synth) pick(from []string) string { return from[g.r.IntN(len(from))] }

func (g *synth) space() string {
	if g.r.IntN(8) != 0 {
		return ""
	}
	return g.pick([]string{" ", "\t", "  ", "\r", " \t "})
}

// time is a time around the run's start, sometimes minutes late, in UTC or
// at an offset, with 0 to 12 fraction digits.
func (g *synth) time() string {
	at := g.start.Add(time.Duration(g.r.Int64N(int64(600 * time.Second))))
	if g.r.IntN(50) == 0 {
		at = at.Add(-time.Duration(g.r.Int64N(int64(400 * time.Second)))) // late
	}
	zone := time.UTC
	if g.r.IntN(4) == 0 {
		zone = time.FixedZone("", (g.r.IntN(48)-24)*1800)
	}
	s := at.In(zone).Format("2006-01-02T15:04:05")
	if digits := g.r.IntN(13); digits > 0 {
		s += "." + fmt.Sprintf("%09d", at.Nanosecond())[:min(digits, 9)] + strings.Repeat("7", max(0, digits-9))
	}
	if _, off := at.In(zone).Zone(); off == 0 && g.r.IntN(2) == 0 {
		return s + "Z"
	}
	return s + at.In(zone).Format("-07:00")
}

func (g *synth) value() string {
	v := math.Exp(g.r.NormFloat64()*2) * 40
	switch g.r.IntN(10) {
	case 0:
		return strconv.Itoa(g.r.IntN(3))
	case 1:
		return strconv.FormatFloat(-v, 'f', -1, 64)
	case 2:
		return strconv.FormatFloat(v/1e9, 'e', -1, 64)
	case 3:
		return strings.ToUpper(strconv.FormatFloat(v*1e25, 'e', 3, 64))
	case 4:
		return "-0"
	case 5:
		return strconv.FormatFloat(v, 'f', 20, 64)
	}
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

func (g *synth) line() (line string, scanned bool) {
	scanned = true
	str := func(s string) string {
		if strings.Contains(s, `\`) {
			scanned = false
		}
		return `"` + s + `"`
	}
	member := func(k, v string) string { return g.space() + str(k) + g.space() + ":" + g.space() + v + g.space() }
	object := func(members []string) string {
		if g.r.IntN(4) == 0 {
			g.r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		}
		return "{" + strings.Join(members, ",") + "}"
	}
	var tags string
	switch g.r.IntN(10) {
	case 0:
		tags = "null"
	case 1:
		tags = "{}"
	default:
		keys := append([]string(nil), synthTagKeys...)
		g.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		var ms []string
		for _, k := range keys[:g.r.IntN(len(keys))] {
			ms = append(ms, member(k, str(g.pick(synthValues))))
		}
		tags = object(ms)
	}
	data := []string{member("time", str(g.time())), member("value", g.value()), member("tags", tags)}
	return object([]string{member("metric", str(g.pick(synthMetrics))), member("type", str("Point")), member("data", object(data))}), scanned
}

// TestSummarizeScannerMatchesEncodingJSON summarizes synthesized lines of
// every shape both ways.
func TestSummarizeScannerMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			g := &synth{r: rand.New(rand.NewPCG(seed, 99)), start: time.Date(2026, 11, 30, 4, 54, 1, 0, time.UTC)}
			var b bytes.Buffer
			b.WriteString(declarations)
			var want int
			for range 20_000 {
				l, ok := g.line()
				checkScan(t, l)
				b.WriteString(l + "\n")
				if ok {
					want++
				}
			}
			if got := scanned(b.Bytes()); got != want {
				t.Errorf("the scanner took %d lines; want the %d without escapes", got, want)
			}
			s := summarizeBoth(t, b.Bytes(), Options{Thresholds: differentialThresholds})
			if len(s.Series) < 600 || len(s.Groups) == 0 || len(s.Checks) == 0 {
				t.Errorf("a thin summary: %d seconds, %d groups, %d checks", len(s.Series), len(s.Groups), len(s.Checks))
			}
		})
	}
}

// TestSummarizeScannerMatchesEncodingJSONOnBenchLines summarizes lines in
// the bench's format (bench/summarize/synth.go): a k6 recording repeated
// with fresh values formatted as encoding/json formats them.
func TestSummarizeScannerMatchesEncodingJSONOnBenchLines(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 3))
	tags := []string{
		`{"expected_response":"true","group":"::browse","method":"GET","name":"http://127.0.0.1:41234/api/items","proto":"HTTP/1.1","scenario":"shop","status":"200","tls_version":"","url":"http://127.0.0.1:41234/api/items"}`,
		`{"expected_response":"false","group":"::checkout","method":"POST","name":"http://127.0.0.1:41234/api/orders","proto":"HTTP/1.1","scenario":"shop","status":"500","tls_version":"","url":"http://127.0.0.1:41234/api/orders"}`,
		`{"expected_response":"false","group":"","method":"GET","name":"http://127.0.0.1:41234/api/items/:id","proto":"HTTP/1.1","scenario":"shop","status":"404","tls_version":"","url":"http://127.0.0.1:41234/api/items/912"}`,
	}
	loc := time.FixedZone("", 3600)
	start := time.Date(2026, 11, 30, 4, 54, 1, 987654321, loc)
	var b bytes.Buffer
	b.WriteString(declarations)
	for i := range 30_000 {
		at := start.Add(time.Duration(i) * 3 * time.Millisecond)
		metric := synthMetrics[i%7]
		v := math.Round(math.Exp(r.NormFloat64())*40*1e6) / 1e6
		if i%11 == 0 {
			v = 1e-7 * float64(i%5)
		}
		fmt.Fprintf(&b, `{"metric":"%s","type":"Point","data":{"time":"%s","value":%s,"tags":%s}}`+"\n",
			metric, at.Format(time.RFC3339Nano), jsonFloat(v), tags[i%len(tags)])
	}
	if got, want := scanned(b.Bytes()), 30_000; got != want {
		t.Errorf("the scanner took %d lines; want all %d Points", got, want)
	}
	summarizeBoth(t, b.Bytes(), Options{Thresholds: differentialThresholds})
}

// jsonFloat formats v as encoding/json does.
func jsonFloat(v float64) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// k6Differential sends requests with query strings (k6 1.x escapes their
// & < > in its JSON output, 2.x does not), named ones with Unicode, custom
// tags (one with quotes, which both escape), groups and checks, some failing.
const k6Differential = `
import http from 'k6/http';
import { check, group } from 'k6';

export const options = {
  scenarios: {
    default: { executor: 'constant-arrival-rate', rate: 40, timeUnit: '1s', duration: '2s', preAllocatedVUs: 4, maxVUs: 10 },
  },
  thresholds: { 'http_req_duration{expected_response:true}': ['p(95)<5000'] },
};

export default function () {
  group('g', () => {
    const res = http.get(__ENV.TARGET + '/items?fail=' + (__ITER % 4 === 0 ? '1' : '') + '&x=<y>', { tags: { custom: 'ünï' } });
    check(res, { 'status is 200': (r) => r.status === 200 });
  });
  http.get(__ENV.TARGET + '/login', { tags: { name: 'Grüße — ログイン' } });
  http.post(__ENV.TARGET + '/orders', '{}', { tags: { custom: 'a&b "quoted"' } });
}
`

// TestSummarizeScannerMatchesEncodingJSONOnK6 summarizes a real k6 output
// of each major version both ways.
func TestSummarizeScannerMatchesEncodingJSONOnK6(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6b testenv.K6Build) {
		t.Parallel()
		summarizeK6BothWays(t, k6b.Path)
	})
}

func summarizeK6BothWays(t *testing.T, k6 string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "injected failure", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	script := filepath.Join(dir, "script.js")
	if err := os.WriteFile(script, []byte(k6Differential), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.json")
	cmd := exec.CommandContext(t.Context(), k6, "run", "--quiet", "--address=", "--out", "json="+out, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "K6_NO_USAGE_REPORT=true", "TARGET="+srv.URL)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("k6 run: %v\n%s", err, output)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var points, plain int
	for l := range bytes.Lines(data) {
		checkScan(t, string(l))
		if bytes.Contains(l, []byte(`"type":"Point"`)) {
			points++
			if !bytes.Contains(l, []byte(`\`)) {
				plain++
			}
		}
	}
	if got := scanned(data); got != plain || plain == 0 || plain == points {
		t.Errorf("the scanner took %d of %d Point lines; want the %d without escapes (and some with)", got, points, plain)
	}
	s := summarizeBoth(t, data, Options{Thresholds: differentialThresholds})
	if len(s.Groups) < 3 || s.ErrorsByStatus["503"] == 0 {
		t.Errorf("groups %+v, errors %v; want the three requests and some 503s", s.Groups, s.ErrorsByStatus)
	}
}

// TestParseTimeAgreesWithTime compares parseTime with time.Time's
// UnmarshalJSON on valid and invalid times.
func TestParseTimeAgreesWithTime(t *testing.T) {
	t.Parallel()
	times := []string{
		"2026-11-30T04:54:01.123456789Z", "2026-11-30T04:54:01Z", "2026-11-30T04:54:01.1Z", "2026-11-30T04:54:01.000000000001Z",
		"2026-11-30T06:54:01.5+02:00", "2026-11-29T23:54:01.5-05:00", "2026-11-30T04:54:01+23:59", "2026-11-30T04:54:01-23:59",
		"2026-11-30T04:54:01+00:00", "2026-11-30T04:54:01-00:00", "0000-01-01T00:00:00Z", "0000-02-29T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
		"0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z", "1900-02-28T12:00:00Z", "2000-02-29T12:00:00Z", "2262-04-12T00:00:00Z",
		"2024-02-30T00:00:00Z", "1900-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-00T00:00:00Z",
		"2026-11-30T24:00:00Z", "2026-11-30T23:60:00Z", "2026-11-30T23:59:60Z", "2026-11-30T04:54:01+24:00", "2026-11-30T04:54:01+23:60",
		"2026-11-30T04:54:01.Z", "2026-11-30T04:54:01.5", "2026-11-30T04:54:01", "2026-11-30T04:54:01+0200", "2026-11-30 04:54:01Z",
		"2026-11-30t04:54:01Z", "2026-11-30T04:54:01z", "2026-11-30T4:54:01Z", "26-11-30T04:54:01Z", "+2026-11-30T04:54:01Z",
		"2026-11-30T04:54:01.5ZZ", "2026-11-30T04:54:01,5Z", "2026-1a-30T04:54:01Z", "2026-11-30T04:54:01.5+02:00:00", "",
	}
	// Times as k6 writes them (time.RFC3339Nano), which parseTime must take.
	var k6Times []string
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		at := time.Unix(r.Int64N(400*365*86400)-100*365*86400, r.Int64N(1e9)).In(time.FixedZone("", (r.IntN(96)-48)*900))
		k6Times = append(k6Times, at.Format(time.RFC3339Nano), at.Format(time.RFC3339), at.UTC().Format(time.RFC3339Nano))
	}
	for i, s := range append(times, k6Times...) {
		var want time.Time
		werr := want.UnmarshalJSON([]byte(`"` + s + `"`))
		got, ok := parseTime([]byte(s))
		switch {
		case ok && werr != nil:
			t.Errorf("parseTime(%q) = %v; time rejects it: %v", s, got, werr)
		case ok && !got.Equal(want):
			t.Errorf("parseTime(%q) = %v; time says %v", s, got, want)
		case !ok && i >= len(times):
			t.Errorf("parseTime(%q) rejects a time in k6's layout (time: %v, %v)", s, want, werr)
		}
	}
}

// TestScanPointDoesNotAllocate: summarizing a Point line of a metric and
// group seen before allocates nothing.
func TestScanPointDoesNotAllocate(t *testing.T) {
	a := newAccumulator(decodeFast)
	a.watch(mustThresholds(t, differentialThresholds))
	lines := [][]byte{
		[]byte(k6Point),
		[]byte(strings.Replace(k6Point, `"http_req_duration"`, `"http_reqs"`, 1)),
		[]byte(strings.Replace(strings.Replace(k6Point, `"http_req_duration"`, `"http_reqs"`, 1), `"200"`, `"503"`, 1)),
		[]byte(strings.Replace(k6Point, `"http_req_duration"`, `"checks"`, 1)),
		[]byte(strings.Replace(k6Point, `"http_req_duration"`, `"vus"`, 1)),
		[]byte(strings.Replace(k6Point, `"http_req_duration"`, `"http_req_failed"`, 1)),
	}
	for _, l := range lines {
		if err := a.add(l); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range lines {
		if got := testing.AllocsPerRun(100, func() { _ = a.add(l) }); got != 0 {
			t.Errorf("%.1f allocations per line like %s", got, l)
		}
	}
}

func mustThresholds(t testing.TB, m map[string][]string) []threshold {
	t.Helper()
	ts, err := parseThresholds(m)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// FuzzScanPoint holds scanPoint to encoding/json: a line it accepts must
// decode the same, and a stream with the line must summarize the same.
func FuzzScanPoint(f *testing.F) {
	f.Add(k6Point)
	f.Add(`{"data":{"tags":{"status":"200","name":"a"},"value":-3e-2,"time":"2026-11-30T06:54:01.5+02:00"},"type":"Point","metric":"http_reqs"}`)
	f.Add(`{"metric":"vus","type":"Point","data":{"time":"2026-11-30T04:54:01Z","value":4,"tags":null}}`)
	f.Add(`{"metric":"checks","type":"Point","data":{"time":"2026-11-30T04:54:01.5Z","value":1,"tags":{"check":"ok","group":"::g","custom":"ünï"}}}`)
	f.Add(`{"metric":"http_req_duration","type":"Point","data":{"time":"2026-11-30T04:54:01Z","value":1,"tags":{"name":"a\u0026b","NAME":"x"}}}`)
	f.Add(strings.SplitN(declarations, "\n", 2)[0])
	g := &synth{r: rand.New(rand.NewPCG(5, 5)), start: time.Date(2026, 11, 30, 4, 54, 1, 0, time.UTC)}
	for range 20 {
		l, _ := g.line()
		f.Add(l)
	}
	ts := Options{Thresholds: differentialThresholds}
	next := `{"metric":"http_req_duration","type":"Point","data":{"time":"2026-11-30T04:57:01Z","value":7,"tags":{"name":"a","status":"200"}}}`
	f.Fuzz(func(t *testing.T, line string) {
		checkScan(t, line)
		summarizeBoth(t, []byte(declarations+line+"\n"+next+"\n"+line+"\n"), ts)
	})
}
