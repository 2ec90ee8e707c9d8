package swarm

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/edge"
)

func TestRenderStack(t *testing.T) {
	file := `services:
  web:
    image: app:${TAG}
    expose: ["8080"]
    labels: {gantry.edge: "true"}
    networks: [front]
    deploy:
      replicas: 3
      labels: {team: a}
  db:
    image: postgres
networks:
  front: {}
`
	e := edgeSpec{image: "edge@sha256:1", ports: []map[string]any{{"target": 80, "published": 8080, "protocol": "tcp", "mode": "host"}}, nodeID: "n1"}
	tests := []struct {
		name string
		plan colorPlan
		// want: service → image and replicas (-1: the file's own).
		want map[string][2]any
	}{
		{"first deploy", colorPlan{name: "web", port: 8080, next: "blue", nextService: "web-blue", nextImage: "app@sha256:2"},
			map[string][2]any{"web-blue": {"app@sha256:2", float64(3)}}},
		{"blue serves, green gets the release with blue's replicas", colorPlan{name: "web", port: 8080, live: "blue", liveService: "web-blue", liveImage: "app@sha256:1", liveReplicas: 4,
			next: "green", nextService: "web-green", nextImage: "app@sha256:2", nextReplicas: 4},
			map[string][2]any{"web-blue": {"app@sha256:1", float64(4)}, "web-green": {"app@sha256:2", float64(4)}}},
		{"no image given: the file's, for docker stack deploy to interpolate", colorPlan{name: "web", port: 8080, next: "blue", nextService: "web-blue"},
			map[string][2]any{"web-blue": {"app:${TAG}", float64(3)}}},
		{"only the live color, not deployed", colorPlan{name: "web", port: 8080, live: "green", liveService: "web-green", liveImage: "app@sha256:1", liveReplicas: 2},
			map[string][2]any{"web-green": {"app@sha256:1", float64(2)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.plan
			out, err := renderStack([]byte(file), []*colorPlan{&p}, e)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Services map[string]map[string]any `json:"services"`
				Volumes  map[string]any            `json:"volumes"`
			}
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if _, ok := doc.Services["web"]; ok {
				t.Errorf("the edge service itself is still in the stack:\n%s", out)
			}
			if _, ok := doc.Services["db"]; !ok {
				t.Errorf("db is gone:\n%s", out)
			}
			got := map[string][2]any{}
			for name, s := range doc.Services {
				if !strings.HasPrefix(name, "web-") {
					continue
				}
				d := s["deploy"].(map[string]any)
				got[name] = [2]any{s["image"], d["replicas"]}
				if d["endpoint_mode"] != "dnsrr" || d["labels"].(map[string]any)["team"] != "a" || d["labels"].(map[string]any)["gantry.color-of"] != "web" {
					t.Errorf("%s deploy: %v", name, d)
				}
				if !reflect.DeepEqual(s["networks"], []any{"front"}) {
					t.Errorf("%s networks: %v", name, s["networks"])
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("colors = %v, want %v", got, tt.want)
			}
			ed := doc.Services["gantry-edge"]
			if ed["image"] != "edge@sha256:1" || !reflect.DeepEqual(ed["networks"], []any{"front"}) ||
				!strings.Contains(string(out), `"node.id == n1"`) || !strings.Contains(string(out), `"mode": "host"`) {
				t.Errorf("edge service: %v", ed)
			}
			if env, _ := ed["environment"].(map[string]any); env["CADDY_ADMIN"] != "127.0.0.1:2019" {
				t.Errorf("edge environment: %v; the admin API must listen inside the container only", ed["environment"])
			}
			if _, ok := doc.Volumes["gantry-edge-config"]; !ok {
				t.Errorf("volumes: %v", doc.Volumes)
			}
		})
	}
}

func TestColorOfDial(t *testing.T) {
	tests := []struct {
		ups  []edge.Upstream
		want string
	}{
		{[]edge.Upstream{{Dial: "web-green:8080", Weight: 1}}, "green"},
		{[]edge.Upstream{{Dial: "web-blue:8080", Weight: 90}, {Dial: "web-green:8080", Weight: 10}}, "blue"},
		{[]edge.Upstream{{Dial: "api-blue:8080", Weight: 1}}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := colorOfDial("web", tt.ups); got != tt.want {
			t.Errorf("colorOfDial(%v) = %q, want %q", tt.ups, got, tt.want)
		}
	}
}

func TestParseEdgePort(t *testing.T) {
	for in, ok := range map[string]bool{"80:80": true, "8080": true, "0:80": false, "80:x": false, "": false, "70000:80": false} {
		if _, _, err := parseEdgePort(in); (err == nil) != ok {
			t.Errorf("parseEdgePort(%q) error %v, want ok=%v", in, err, ok)
		}
	}
}
