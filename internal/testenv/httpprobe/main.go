// Command httpprobe sends HTTP requests and prints what came of each on one
// line, "HTTP <status> <body>" or "error <message>", always exiting 0. Its
// argument is a JSON array of {"method", "url", "host", "body"}. Tests run it
// in a container (testenv.HTTPFrom) to see what another container on a
// network can reach.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

type probe struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	Host   string `json:"host"`
	Body   string `json:"body"`
}

func main() {
	var probes []probe
	if len(os.Args) != 2 || json.Unmarshal([]byte(os.Args[1]), &probes) != nil {
		fmt.Fprintln(os.Stderr, `usage: httpprobe '[{"method":"GET","url":"http://...","host":"","body":""}]'`)
		os.Exit(2)
	}
	for _, p := range probes {
		fmt.Println(send(p))
	}
}

func send(p probe) string {
	req, err := http.NewRequest(p.Method, p.URL, strings.NewReader(p.Body))
	if err != nil {
		return "error " + err.Error()
	}
	if p.Host != "" {
		req.Host = p.Host
	}
	if p.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "error " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Sprintf("HTTP %d %s", resp.StatusCode, strings.Join(strings.Fields(string(b)), " "))
}
