package loadtest

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// benchOutput is about size bytes of k6 output in the layout k6 v1.8.1
// writes (as the bench's recording), 15 lines per request, 400 requests a
// second; url is the requests' URL as it appears in the JSON.
func benchOutput(size int, url string) []byte {
	r := rand.New(rand.NewPCG(1, 1))
	var b bytes.Buffer
	b.WriteString(declarations)
	start := time.Date(2026, 11, 30, 4, 59, 51, 224658145, time.UTC)
	groups := []string{"::browse", "", "::checkout"}
	for i := 0; b.Len() < size; i++ {
		at := start.Add(time.Duration(i) * time.Second / 400)
		group := groups[i%len(groups)]
		status := []string{"200", "200", "200", "404", "500"}[i%5]
		tags := fmt.Sprintf(`{"expected_response":"%v","group":"%s","method":"GET","name":"%s","proto":"HTTP/1.1","scenario":"shop","status":"%s","url":"%[3]s"}`,
			status == "200", group, url+fmt.Sprint(i%4), status)
		ts := at.Format(time.RFC3339Nano)
		ms := math.Round(math.Exp(r.NormFloat64()*0.45)*40*1e6) / 1e6
		for _, m := range []struct {
			name  string
			value float64
		}{{"http_reqs", 1}, {"http_req_duration", ms}, {"http_req_blocked", ms / 50}, {"http_req_connecting", ms / 60}, {"http_req_tls_handshaking", 0},
			{"http_req_sending", ms / 90}, {"http_req_waiting", ms * 0.8}, {"http_req_receiving", ms / 10}, {"http_req_failed", float64(len(status) - 3)}} {
			fmt.Fprintf(&b, `{"metric":"%s","type":"Point","data":{"time":"%s","value":%s,"tags":%s}}`+"\n", m.name, ts, jsonFloat(m.value), tags)
		}
		fmt.Fprintf(&b, `{"metric":"checks","type":"Point","data":{"time":"%s","value":1,"tags":{"check":"items listed","group":"%s","scenario":"shop"}}}`+"\n", ts, group)
		fmt.Fprintf(&b, `{"metric":"group_duration","type":"Point","data":{"time":"%s","value":%s,"tags":{"group":"%s","scenario":"shop"}}}`+"\n", ts, jsonFloat(ms*1.3), group)
		for _, m := range []string{"data_sent", "data_received", "iteration_duration", "iterations"} {
			fmt.Fprintf(&b, `{"metric":"%s","type":"Point","data":{"time":"%s","value":%d,"tags":{"group":"","scenario":"shop"}}}`+"\n", m, ts, 80+i%1500)
		}
	}
	return b.Bytes()
}

// BenchmarkSummarize summarizes 32 MB of k6 output, with the scanner and
// with encoding/json alone, and with URLs that k6 escapes (query strings),
// which take encoding/json.
func BenchmarkSummarize(b *testing.B) {
	for _, in := range []struct{ name, url string }{
		{"plain", "http://127.0.0.1:37643/api/items/"},
		{"escaped", `http://127.0.0.1:37643/api/items?page=1\u0026id=`},
	} {
		data := benchOutput(32<<20, in.url)
		for _, dec := range []struct {
			name string
			dec  decoder
		}{{"scan", decodeFast}, {"json", decodeJSON}} {
			b.Run(in.name+"/"+dec.name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := summarize(bytes.NewReader(data), Options{Thresholds: map[string][]string{
						"http_req_duration":                         {"p(95)<500"},
						"http_req_duration{expected_response:true}": {"p(99)<900"},
					}}, dec.dec); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkScanPoint decodes one Point line.
func BenchmarkScanPoint(b *testing.B) {
	line := []byte(strings.TrimSpace(k6Point))
	var p point
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if !scanPoint(line, &p) {
			b.Fatal("not scanned")
		}
	}
}
