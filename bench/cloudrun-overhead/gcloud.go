//go:build linux

package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// What is published or reported about the Google Cloud SDK on runners; none
// of it can be measured here (no network but the Go module proxy and
// Debian's archive). Sources are cited in the report.
const (
	// gcloudArchive is the archive setup-gcloud downloads on Linux x86_64.
	gcloudArchive = "google-cloud-cli-linux-x86_64.tar.gz"
	// gcloudArchiveMB is its size on Google's install page as stored by
	// the search index (cloud.google.com/sdk/docs/install, "150.5 MB"; the
	// page's date and gcloud version are not shown).
	gcloudArchiveMB = 150.5
	// gcloudArchiveMB472 is the size of the 472.0.0 versioned archive on the
	// same page at an earlier date ("202.1 MB").
	gcloudArchiveMB472 = 202.1
)

// gcloudInfo is what this machine has of the Google Cloud SDK.
type gcloudInfo struct {
	// Apt is, per package name, what apt-cache policy says; Offered is
	// whether any repository in the package index offers it.
	Apt     map[string]aptPolicy
	Offered bool
	// Path and Version of an installed gcloud ("" when none).
	Path, Version string
	// InstalledKiB is dpkg's Installed-Size of google-cloud-cli (0 when
	// not installed from a package).
	InstalledKiB int64
}

type aptPolicy struct {
	Installed, Candidate string
	Sources              []string // where the versions in the table come from
}

var gcloudPackages = []string{"google-cloud-cli", "google-cloud-sdk"}

func probeGcloud(ctx context.Context) gcloudInfo {
	g := gcloudInfo{Apt: map[string]aptPolicy{}}
	for _, pkg := range gcloudPackages {
		out, err := exec.CommandContext(ctx, "apt-cache", "policy", pkg).Output()
		if err != nil {
			continue
		}
		p := parsePolicy(string(out))
		g.Apt[pkg] = p
		for _, src := range p.Sources {
			if src != "/var/lib/dpkg/status" {
				g.Offered = true
			}
		}
	}
	if path, err := exec.LookPath("gcloud"); err == nil {
		g.Path = path
		g.Version = "unknown"
		if out, err := exec.CommandContext(ctx, path, "--version").Output(); err == nil {
			line, _, _ := strings.Cut(string(out), "\n")
			g.Version = strings.TrimSpace(line)
		}
	}
	if out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Installed-Size}", "google-cloud-cli").Output(); err == nil {
		g.InstalledKiB, _ = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	}
	return g
}

// parsePolicy reads the output of apt-cache policy for one package.
func parsePolicy(out string) aptPolicy {
	var p aptPolicy
	inTable := false
	for _, line := range strings.Split(out, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "Installed:"):
			p.Installed = strings.TrimSpace(strings.TrimPrefix(t, "Installed:"))
		case strings.HasPrefix(t, "Candidate:"):
			p.Candidate = strings.TrimSpace(strings.TrimPrefix(t, "Candidate:"))
		case strings.HasPrefix(t, "Version table:"):
			inTable = true
		case inTable:
			// Source lines are "<priority> <source...>" under a version line.
			f := strings.Fields(t)
			if len(f) >= 2 {
				if _, err := strconv.Atoi(f[0]); err == nil {
					p.Sources = append(p.Sources, strings.Join(f[1:], " "))
				}
			}
		}
	}
	return p
}

func (g gcloudInfo) summary() string {
	var parts []string
	for _, pkg := range gcloudPackages {
		p, ok := g.Apt[pkg]
		if !ok {
			parts = append(parts, pkg+": apt-cache policy failed")
			continue
		}
		src := "no source"
		if len(p.Sources) > 0 {
			src = strings.Join(p.Sources, ", ")
		}
		parts = append(parts, fmt.Sprintf("%s: installed %s, candidate %s (%s)", pkg, p.Installed, p.Candidate, src))
	}
	s := strings.Join(parts, "; ")
	if g.Offered {
		s += "; offered by the package index"
	} else {
		s += "; not offered by any repository in the package index"
	}
	if g.Path != "" {
		s += fmt.Sprintf("; %s at %s", g.Version, g.Path)
	}
	return s
}
