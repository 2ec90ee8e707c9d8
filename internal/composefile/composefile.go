// Package composefile reads a Compose file the way docker compose does
// (compose-go), before anything is sent to a host, and writes the override
// file through which gantry pins images and adds its edge proxy.
package composefile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"

	"github.com/gantry-dev/gantry/internal/edge"
)

// EdgeLabel marks a service that is served through the edge proxy
// (blue-green, canary, rolling), e.g. `labels: {gantry.edge: "true"}`.
const EdgeLabel = "gantry.edge"

// Service is what a deploy needs to know about one service.
type Service struct {
	Name     string
	Image    string
	Replicas int
	// Port is the container port gantry verifies and the edge proxies to:
	// the label gantry.port, else the first ports target, else the first
	// expose entry; 0 when unknown.
	Port int
	// Published lists host ports the service publishes ("8080:80" → 8080).
	Published      []string
	Edge           bool
	HasHealthcheck bool
	// Hosts are the request host names the edge routes to this service
	// (label gantry.hosts, comma separated); empty: every request.
	Hosts []string
}

// File is a loaded Compose file.
type File struct {
	Path     string
	Data     []byte
	Project  string
	Services map[string]Service
}

var projectRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidProject reports whether name is a valid Compose project name.
func ValidProject(name string) bool { return projectRE.MatchString(name) }

// Load parses and validates path with env (KEY=VALUE) for interpolation.
// The error names the file and, for YAML errors, the line.
func Load(ctx context.Context, path, project string, env []string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithName(project),
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithEnv(env),
		cli.WithDiscardEnvFile,
		cli.WithResolvedPaths(false),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid Compose file: %s", path, oneLine(err.Error()))
	}
	f := &File{Path: path, Data: data, Project: project, Services: map[string]Service{}}
	for name, s := range p.Services {
		svc := Service{Name: name, Image: s.Image, Replicas: s.GetScale(), HasHealthcheck: s.HealthCheck != nil && !s.HealthCheck.Disable}
		if v, ok := s.Labels[EdgeLabel]; ok && v != "false" {
			svc.Edge = true
		}
		for _, h := range strings.Split(s.Labels["gantry.hosts"], ",") {
			if h = strings.TrimSpace(h); h != "" {
				svc.Hosts = append(svc.Hosts, h)
			}
		}
		if v, ok := s.Labels["gantry.port"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("%s: service %s: label gantry.port %q is not a port number", path, name, v)
			}
			svc.Port = n
		}
		for _, port := range s.Ports {
			if svc.Port == 0 {
				svc.Port = int(port.Target)
			}
			if port.Published != "" {
				svc.Published = append(svc.Published, port.Published)
			}
		}
		for _, e := range s.Expose {
			if n, err := strconv.Atoi(strings.Split(e, "/")[0]); err == nil && svc.Port == 0 {
				svc.Port = n
			}
		}
		f.Services[name] = svc
	}
	return f, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// CheckServices returns an error naming the first of names that is not a
// service of f, and the services f has.
func (f *File) CheckServices(names []string) error {
	for _, s := range names {
		if _, ok := f.Services[s]; !ok {
			return fmt.Errorf("service %q is not in %s (it has: %s)", s, f.Path, strings.Join(f.Names(), ", "))
		}
	}
	return nil
}

// HasEdge tells whether a service is labelled gantry.edge.
func (f *File) HasEdge() bool {
	for _, s := range f.Services {
		if s.Edge {
			return true
		}
	}
	return false
}

// Names returns the service names, sorted.
func (f *File) Names() []string {
	out := make([]string, 0, len(f.Services))
	for n := range f.Services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Edge describes gantry's edge proxy service in the override.
type Edge struct {
	Image string
	// Ports are the host ports the edge publishes, as in Compose ("80:80").
	Ports []string
}

// EdgeService is the name of gantry's edge proxy service.
const EdgeService = "gantry-edge"

// Override renders the override file: images pinned by digest and, when e
// is set, the edge proxy service. JSON is valid YAML, and no user text is
// spliced into it by hand.
func Override(images map[string]string, e *Edge) ([]byte, error) {
	services := map[string]any{}
	for svc, img := range images {
		services[svc] = map[string]any{"image": img}
	}
	doc := map[string]any{"services": services}
	if e != nil {
		services[EdgeService] = map[string]any{
			"image": e.Image,
			// Entrypoint, not command: it replaces whatever the image runs
			// (the official image's Caddyfile, a test image's bootstrap).
			"entrypoint": edge.ImageEntrypoint(),
			"ports":      e.Ports,
			// The admin API listens inside the container only, where the
			// deploy reaches it through docker exec; no other container can.
			"environment": edge.ImageEnvironment(),
			"volumes":     []string{"gantry-edge-config:/config", "gantry-edge-data:/data"},
			"restart":     "unless-stopped",
			"labels":      map[string]string{"gantry.role": "edge"},
		}
		doc["volumes"] = map[string]any{"gantry-edge-config": map[string]any{}, "gantry-edge-data": map[string]any{}}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// ValidateForEdge reports a mistake that docker compose would accept but a
// zero-downtime deploy cannot work with.
func (s Service) ValidateForEdge() error {
	if len(s.Published) > 0 {
		return fmt.Errorf("service %s publishes host port %s; with an edge strategy two versions run side by side, so only the edge publishes ports: remove `ports:` from %s and set edge-ports instead", s.Name, strings.Join(s.Published, ", "), s.Name)
	}
	if s.Port == 0 {
		return fmt.Errorf("service %s has no known container port; add `expose: [\"8080\"]` or a gantry.port label so the edge knows where to send traffic", s.Name)
	}
	return nil
}
