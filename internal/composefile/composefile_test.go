package composefile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `services:
  app:
    image: ${REGISTRY:-example.com}/app:latest
    expose: ["8080"]
    labels:
      gantry.edge: "true"
    deploy:
      replicas: 2
    healthcheck:
      test: ["CMD", "/app", "-health"]
  db:
    image: postgres:16
    ports: ["5432:5432"]
  worker:
    image: example.com/worker
    labels:
      gantry.port: "9000"
`

func TestLoad(t *testing.T) {
	t.Parallel()
	f, err := Load(context.Background(), write(t, "compose.yml", good), "shop", []string{"REGISTRY=reg.local"})
	if err != nil {
		t.Fatal(err)
	}
	app := f.Services["app"]
	if !app.Edge || app.Port != 8080 || app.Replicas != 2 || !app.HasHealthcheck || app.Image != "reg.local/app:latest" {
		t.Errorf("app = %+v", app)
	}
	db := f.Services["db"]
	if db.Edge || db.Port != 5432 || len(db.Published) != 1 || db.Published[0] != "5432" {
		t.Errorf("db = %+v", db)
	}
	if err := db.ValidateForEdge(); err == nil || !strings.Contains(err.Error(), "publishes host port 5432") {
		t.Errorf("db ValidateForEdge = %v", err)
	}
	if err := app.ValidateForEdge(); err != nil {
		t.Errorf("app ValidateForEdge = %v", err)
	}
	if f.Services["worker"].Port != 9000 {
		t.Errorf("worker = %+v", f.Services["worker"])
	}
	if strings.Join(f.Names(), ",") != "app,db,worker" {
		t.Errorf("names = %v", f.Names())
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, content, want string }{
		{"yaml syntax", "services:\n  app:\n    image: x\n   bad: [\n", "line"},
		{"unknown key", "services:\n  app:\n    image: x\n    imagee: y\n", "imagee"},
		{"bad port label", "services:\n  app:\n    image: x\n    labels: {gantry.port: web}\n", "gantry.port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(context.Background(), write(t, "compose.yml", tc.content), "p", nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line mentioning %q", err, tc.want)
			}
		})
	}
}

// TestOverrideMergesWithCompose checks the override is a file docker
// compose accepts on top of the user's file, pinning images and adding the
// edge.
func TestOverrideMergesWithCompose(t *testing.T) {
	t.Parallel()
	base := write(t, "compose.yml", good)
	ov, err := Override(map[string]string{"app": "reg.local/app@sha256:" + strings.Repeat("a", 64)}, &Edge{Image: "caddy:2.10.2", Ports: []string{"80:80"}})
	if err != nil {
		t.Fatal(err)
	}
	ovPath := filepath.Join(filepath.Dir(base), "override.yml")
	if err := os.WriteFile(ovPath, ov, 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{base, ovPath}, cli.WithName("shop"), cli.WithWorkingDirectory(filepath.Dir(base)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose rejects the override: %v", err)
	}
	if img := p.Services["app"].Image; !strings.HasSuffix(img, strings.Repeat("a", 64)) {
		t.Errorf("app image = %s", img)
	}
	edge, ok := p.Services[EdgeService]
	if !ok || edge.Image != "caddy:2.10.2" || len(edge.Ports) != 1 {
		t.Errorf("edge = %+v", edge)
	}
	// The admin API listens inside the edge's container only.
	if a := edge.Environment["CADDY_ADMIN"]; a == nil || *a != "127.0.0.1:2019" || len(edge.Expose) != 0 {
		t.Errorf("edge admin: CADDY_ADMIN %v, expose %v; want 127.0.0.1:2019 and nothing exposed", a, edge.Expose)
	}
	if p.Services["app"].Deploy == nil || *p.Services["app"].Deploy.Replicas != 2 {
		t.Error("override lost the user's settings")
	}
}
