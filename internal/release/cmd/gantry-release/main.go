// Command gantry-release cuts a gantry release; .github/workflows/release.yml runs it with go run.
//
//	gantry-release check   -version vX.Y.Z                      refuse a bad or already published version
//	gantry-release prepare -version vX.Y.Z -edge-image IMG@sha  make the release commits S and R, tag R
//	gantry-release publish -version vX.Y.Z -commit R -dist dist draft, upload, publish, move v1 and v1.2
//
// It reads GITHUB_REPOSITORY, GITHUB_API_URL and GITHUB_TOKEN, and writes step outputs to
// GITHUB_OUTPUT when set.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/githubapi"
	"github.com/gantry-dev/gantry/internal/release"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gantry-release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("want a command: check, prepare or publish")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	version := fs.String("version", "", "the release's version, vX.Y.Z")
	edgeImage := fs.String("edge-image", "", "prepare: the edge image built for the release, name:tag@sha256:…")
	commit := fs.String("commit", "", "publish: the release commit R (prepare's output commit)")
	dist := fs.String("dist", "dist", "publish: goreleaser's output directory")
	dir := fs.String("dir", ".", "the checkout")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	v, err := release.ParseVersion(*version)
	if err != nil {
		return err
	}
	full := getenv("GITHUB_REPOSITORY")
	owner, name, err := githubapi.RepositoryFromEnv(getenv)
	if err != nil {
		return err
	}
	client := func() (*github.Client, error) {
		return githubapi.ClientFromEnv(getenv, getenv("GITHUB_TOKEN"), nil)
	}
	switch args[0] {
	case "check":
		c, err := client()
		if err != nil {
			return err
		}
		if err := release.CheckNew(ctx, c, owner, name, v); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s of %s is not published yet\n", v, full)
		return output(getenv, "version="+v.String())
	case "prepare":
		p, err := release.Prepare(ctx, release.PrepareOptions{Dir: *dir, Repo: full, Version: v, EdgeImage: *edgeImage})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "release %s: M %s, S %s (VERSION, edge image), R %s (internal uses: at S), tagged locally\n", v, p.Base, p.S, p.R)
		return output(getenv, "commit="+p.R, "pinned-to="+p.S)
	case "publish":
		c, err := client()
		if err != nil {
			return err
		}
		assets, err := release.Assets(*dist)
		if err != nil {
			return err
		}
		out, err := release.Publish(ctx, release.PublishOptions{Client: c, Owner: owner, Repo: name, Version: v, Commit: *commit,
			Assets: assets, GitDir: *dir, Remote: "origin", Log: stdout})
		if err != nil {
			return err
		}
		return output(getenv, "url="+out.Release.GetHTMLURL())
	}
	return fmt.Errorf("unknown command %q: want check, prepare or publish", args[0])
}

// output appends name=value lines to GITHUB_OUTPUT, when the run has one.
func output(getenv func(string) string, lines ...string) error {
	path := getenv("GITHUB_OUTPUT")
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(f, l); err != nil {
			_ = f.Close()
			return err
		}
	}
	return f.Close()
}
