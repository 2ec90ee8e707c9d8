package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/testenv"
)

func TestDockerfileBuildFromScratch(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hello from a Dockerfile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nARG MSG=none\nCOPY hello /hello\nLABEL msg=$MSG\nCMD [\"/hello\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	art, err := Dockerfile{Context: dir, BuildArgs: []string{"MSG=hi"}, Labels: map[string]string{"org.opencontainers.image.revision": "abcdef0"}}.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer art.Cleanup()
	cf, err := art.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Labels["org.opencontainers.image.revision"] != "abcdef0" || cf.Config.Labels["msg"] != "hi" {
		t.Errorf("labels = %v", cf.Config.Labels)
	}
	layers, err := art.Image.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v", len(layers), err)
	}
	paths := map[string]bool{}
	rc, _ := layers[0].Uncompressed()
	defer rc.Close()
	for p := range tarNames(t, rc) {
		paths[p] = true
	}
	if !paths["hello"] {
		t.Errorf("layer lacks /hello: %v", paths)
	}
}

func TestDockerfileErrors(t *testing.T) {
	t.Parallel()
	testenv.Docker(t) // the error paths need the docker CLI to get past its first check
	dir := t.TempDir()
	_, err := Dockerfile{Context: dir}.Build(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing Dockerfile: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nRUN-THIS nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Dockerfile{Context: dir}.Build(context.Background())
	var ee *ExecError
	if err == nil || !errors.As(err, &ee) {
		t.Errorf("bad Dockerfile: %v", err)
	}
}
