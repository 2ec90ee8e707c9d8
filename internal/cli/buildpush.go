package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/image"
)

// platformFileInputs are the per-platform files inputs a daemonless
// multi-platform build can use.
var platformFileInputs = []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}

func platformInputName(p string) string { return "files-" + strings.ReplaceAll(p, "/", "-") }

func buildPushSpec() *action.Spec {
	s := &action.Spec{
		Name:        "build-push",
		Description: "Build an image (daemonless, from a Dockerfile, or from a tarball/OCI layout) and push it to one or more registries, tagged sha-XXXXXXX.",
		Summary:     "Build an image daemonlessly (Dockerfile, tarball or OCI layout) and push it to one or more registries, tagged sha-XXXXXXX.",
		Inputs: []action.Input{
			{Name: "registries", Description: "Repositories to push to, one a line or comma separated, e.g. ghcr.io/acme/api.", Kind: action.List, Required: true},
			{Name: "sha", Description: "Commit the image is built from; tagged sha-<first 7>. Default: GITHUB_SHA, or the pull request head on pull_request events."},
			{Name: "tags", Description: "More tags, one a line (e.g. latest, v1.2.3).", Kind: action.List},
			{Name: "overwrite", Description: "Replace a sha- tag that already points at another digest.", Kind: action.Bool, Default: "false"},
			{Name: "context", Description: "Build context directory for a Dockerfile build (uses the local Docker engine)."},
			{Name: "dockerfile", Description: "Dockerfile path; default <context>/Dockerfile."},
			{Name: "build-args", Description: "Dockerfile build arguments, KEY=VALUE one a line.", Kind: action.List},
			{Name: "target", Description: "Dockerfile stage to build."},
			{Name: "base", Description: "Base image for a daemonless build, or scratch.", Default: "scratch"},
			{Name: "files", Description: "Daemonless build: SOURCE-GLOB:DEST[:MODE] one a line, e.g. dist/app:/app:0755; each line is one layer.", Kind: action.List},
			{Name: "entrypoint", Description: "Image entrypoint: a JSON array or words separated by spaces."},
			{Name: "cmd", Description: "Image default arguments: a JSON array or words separated by spaces."},
			{Name: "env", Description: "Image environment, KEY=VALUE one a line.", Kind: action.List},
			{Name: "workdir", Description: "Image working directory."},
			{Name: "user", Description: "Image user, e.g. 65532:65532."},
			{Name: "ports", Description: "Exposed ports, e.g. 8080 or 8080/tcp.", Kind: action.List},
			{Name: "labels", Description: "Extra labels, KEY=VALUE one a line.", Kind: action.List},
			{Name: "platforms", Description: "Platforms to build, e.g. linux/amd64,linux/arm64; several make an OCI index.", Kind: action.List, Default: "linux/amd64"},
			{Name: "image-tar", Description: "Push this docker save tarball or OCI archive as is."},
			{Name: "oci-layout", Description: "Push the image in this OCI layout directory as is."},
			{Name: "version", Description: "Value of the org.opencontainers.image.version label; default: the git tag on tag builds."},
		},
		Outputs: []action.Output{
			{Name: "digest", Description: "Digest of the pushed manifest or index."},
			{Name: "images", Description: "Every pushed image as repository@digest, one a line."},
			{Name: "tags", Description: "Every pushed tag as repository:tag, one a line."},
			{Name: "sha-tag", Description: "The sha-XXXXXXX tag."},
		},
	}
	for _, p := range platformFileInputs {
		s.Inputs = append(s.Inputs, action.Input{Name: platformInputName(p), Description: "Daemonless build: files only for " + p + ", as in files.", Kind: action.List})
	}
	s.Inputs = append(s.Inputs, authInputs()...)
	return s
}

func buildPushCommand() *Command { return &Command{Spec: buildPushSpec(), Run: runBuildPush} }

// buildPushInputs is build-push's validated input.
type buildPushInputs struct {
	repos     []name.Repository
	sha       string
	shaTag    string
	tags      []string // mutable tags
	source    string   // dockerfile, daemonless, tar, layout
	platforms []v1.Platform
	daemon    image.Daemonless
	docker    image.Dockerfile
	path      string
}

func readBuildPush(a *action.Action, in *action.Inputs) buildPushInputs {
	var b buildPushInputs
	b.repos = parseRepos(in, "registries", in.List("registries"))
	if in.String("registries") == "" {
		in.Required("registries")
	}
	b.sha = readCommit(a, in, "the commit SHA to build")
	if b.sha != "" {
		b.shaTag = commit.Tag(b.sha)
	}
	for _, t := range parseTags(in, "tags") {
		if t != b.shaTag {
			b.tags = append(b.tags, t)
		}
	}

	sources := map[string]bool{
		"dockerfile": in.String("context") != "" || in.String("dockerfile") != "",
		"tar":        in.String("image-tar") != "",
		"layout":     in.String("oci-layout") != "",
		"daemonless": len(in.Lines("files")) > 0 || anyPlatformFiles(in) || in.String("base") != image.Scratch,
	}
	var set []string
	for _, k := range []string{"dockerfile", "daemonless", "tar", "layout"} {
		if sources[k] {
			set = append(set, k)
		}
	}
	switch len(set) {
	case 0:
		in.Fail("files", "no image source; set files (daemonless), context (Dockerfile), image-tar or oci-layout")
	case 1:
		b.source = set[0]
	default:
		in.Fail("files", "several image sources given (%s); use exactly one of files/base, context/dockerfile, image-tar, oci-layout", strings.Join(set, ", "))
	}

	for _, p := range in.List("platforms") {
		pl, err := v1.ParsePlatform(p)
		if err != nil || pl.OS == "" || pl.Architecture == "" {
			in.Fail("platforms", "%q is not a platform such as linux/amd64", p)
			continue
		}
		b.platforms = append(b.platforms, *pl)
	}

	labels, created := ociLabels(a, in, b.sha)
	for _, kv := range in.Lines("labels") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			in.Fail("labels", "%q is not KEY=VALUE", kv)
			continue
		}
		labels[k] = v
	}

	switch b.source {
	case "dockerfile":
		ctxDir := in.String("context")
		if ctxDir == "" {
			ctxDir = "."
		}
		b.docker = image.Dockerfile{Context: ctxDir, Dockerfile: in.String("dockerfile"), BuildArgs: in.Lines("build-args"), Target: in.String("target"), Labels: labels, Logf: a.Infof}
		for _, p := range b.platforms {
			b.docker.Platforms = append(b.docker.Platforms, p.String())
		}
		if st, err := os.Stat(ctxDir); err != nil || !st.IsDir() {
			in.Fail("context", "%q is not a directory", ctxDir)
		}
		df := b.docker.Dockerfile
		if df == "" {
			df = ctxDir + "/Dockerfile"
		}
		if _, err := os.Stat(df); err != nil {
			in.Fail("dockerfile", "%q not found; set dockerfile to the Dockerfile's path", df)
		}
	case "tar":
		b.path = in.String("image-tar")
		if _, err := os.Stat(b.path); err != nil {
			in.Fail("image-tar", "%q not found", b.path)
		}
	case "layout":
		b.path = in.String("oci-layout")
		if _, err := os.Stat(b.path); err != nil {
			in.Fail("oci-layout", "%q not found", b.path)
		}
	case "daemonless":
		d := image.Daemonless{Root: ".", Base: in.String("base"), Platforms: b.platforms, Created: created, PlatformFiles: map[string][]image.FileMap{}}
		if d.Base != image.Scratch {
			if _, err := name.ParseReference(d.Base); err != nil {
				in.Fail("base", "%q is not an image reference or scratch: %v", d.Base, err)
			}
		}
		d.Files = parseFileMaps(in, "files")
		for _, p := range platformFileInputs {
			if fm := parseFileMaps(in, platformInputName(p)); len(fm) > 0 {
				d.PlatformFiles[p] = fm
			}
		}
		d.Config = image.Config{
			Entrypoint: parseArgv(in, "entrypoint"), Cmd: parseArgv(in, "cmd"),
			Env: in.Lines("env"), Workdir: in.String("workdir"), User: in.String("user"),
			Ports: in.List("ports"), Labels: labels,
		}
		for _, kv := range d.Config.Env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				in.Fail("env", "%q is not KEY=VALUE", kv)
			}
		}
		d.Annotations = labels
		b.daemon = d
	}
	return b
}

func anyPlatformFiles(in *action.Inputs) bool {
	for _, p := range platformFileInputs {
		if len(in.Lines(platformInputName(p))) > 0 {
			return true
		}
	}
	return false
}

func parseFileMaps(in *action.Inputs, input string) []image.FileMap {
	var out []image.FileMap
	for _, line := range in.Lines(input) {
		fm, err := image.ParseFileMap(line)
		if err == nil {
			err = fm.Check(".")
		}
		if err != nil {
			in.Fail(input, "%v", err)
			continue
		}
		out = append(out, fm)
	}
	return out
}

// parseArgv reads a JSON array or space-separated words; it never involves a
// shell.
func parseArgv(in *action.Inputs, input string) []string {
	v := in.String(input)
	if v == "" {
		return nil
	}
	if strings.HasPrefix(v, "[") {
		var out []string
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			in.Fail(input, "%q is not a JSON array of strings: %v", v, err)
		}
		return out
	}
	return strings.Fields(v)
}

// createdTime is the fixed creation time of a reproducible image:
// SOURCE_DATE_EPOCH, else the commit's time from git, else the Unix epoch.
func createdTime(a *action.Action, sha string) time.Time {
	if s := a.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	if sha != "" {
		if out, err := exec.Command("git", "show", "-s", "--format=%ct", sha, "--").Output(); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
				return time.Unix(n, 0).UTC()
			}
		}
	}
	return time.Unix(0, 0).UTC()
}

func runBuildPush(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	b := readBuildPush(a, in)
	resolver := newResolver(a, in)
	overwrite := in.Bool("overwrite")
	if err := in.Err(); err != nil {
		return err
	}

	var art image.Artifact
	err := a.Group("build ("+b.source+")", func() error {
		var err error
		start := time.Now()
		switch b.source {
		case "dockerfile":
			art, err = b.docker.Build(ctx)
		case "tar":
			art, err = image.LoadTar(b.path)
		case "layout":
			art, err = image.LoadLayout(b.path)
		case "daemonless":
			art, err = b.daemon.Build(ctx)
		}
		if err != nil {
			return fmt.Errorf("build: %w", err)
		}
		d, err := art.Digest()
		if err != nil {
			return fmt.Errorf("build: %w", err)
		}
		a.Infof("built %s in %.1fs", d, time.Since(start).Seconds())
		return nil
	})
	if art.Cleanup != nil {
		defer art.Cleanup()
	}
	if err != nil {
		return err
	}
	return pushAndReport(ctx, a, resolver, art, b.repos, b.shaTag, b.tags, overwrite, "build-push")
}

// ociLabels returns the OCI labels gantry puts on every image it builds (the
// commit, the repository, the version input or the tag being built, and the
// creation time) and that time.
func ociLabels(a *action.Action, in *action.Inputs, sha string) (map[string]string, time.Time) {
	labels := map[string]string{}
	if sha != "" {
		labels["org.opencontainers.image.revision"] = sha
	}
	if srv, repo := a.Getenv("GITHUB_SERVER_URL"), a.Getenv("GITHUB_REPOSITORY"); srv != "" && repo != "" {
		labels["org.opencontainers.image.source"] = srv + "/" + repo
	}
	ver := in.String("version")
	if ver == "" && a.Getenv("GITHUB_REF_TYPE") == "tag" {
		ver = a.Getenv("GITHUB_REF_NAME")
	}
	if ver != "" {
		labels["org.opencontainers.image.version"] = ver
	}
	created := createdTime(a, sha)
	labels["org.opencontainers.image.created"] = created.UTC().Format(time.RFC3339)
	return labels, created
}
