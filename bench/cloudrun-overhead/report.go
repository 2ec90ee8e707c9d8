//go:build linux

package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Targets from the issue.
const (
	targetFirstCall  = 2 * time.Second // step start → first Cloud Run API call
	targetDownloadMB = 30.0            // bytes a fresh runner downloads, in MB (10^6)
)

// results is everything the report is made of.
type results struct {
	Config        config
	Release       *release
	Gantry        map[int][]gantrySample // by link cap in Mbit/s
	Gcloud        gcloudInfo
	GcloudSamples []gcloudSample
	Machine       string
	Versions      map[string]string
	Date          time.Time
}

func okGantry(ss []gantrySample) []gantrySample {
	var out []gantrySample
	for _, s := range ss {
		if s.Err == nil {
			out = append(out, s)
		}
	}
	return out
}

func okGcloud(ss []gcloudSample) []gcloudSample {
	var out []gcloudSample
	for _, s := range ss {
		if s.Err == nil {
			out = append(out, s)
		}
	}
	return out
}

// stat is the median and range of some samples.
type stat struct {
	Median, Min, Max float64
	N                int
}

func statOf[S any](ss []S, f func(S) float64) stat {
	if len(ss) == 0 {
		return stat{}
	}
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	slices.Sort(xs)
	st := stat{Min: xs[0], Max: xs[len(xs)-1], N: len(xs)}
	if n := len(xs); n%2 == 0 {
		st.Median = (xs[n/2-1] + xs[n/2]) / 2
	} else {
		st.Median = xs[n/2]
	}
	return st
}

// secs renders a time stat: median (min–max).
func (s stat) secs() string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f", s.Median)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

func sec(d time.Duration) float64 { return d.Seconds() }
func mb(n int64) string           { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }

func (r *results) markdown() string {
	var w strings.Builder
	c := r.Config
	fmt.Fprintf(&w, "\n## cloudrun-overhead: a fresh runner's step start → first Cloud Run API call (%s)\n\n", r.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "Reproduce: `%s` (from the repository root).\n\n", c.Command)
	fmt.Fprintf(&w, "- Machine: %s. Shared and noisy: read the medians and ranges, not single rounds.\n", r.Machine)
	fmt.Fprintf(&w, "- Versions: gantry %s; %s; %s; gcloud: %s.\n", r.Versions["gantry"], r.Versions["curl"], r.Versions["bash"], r.Versions["gcloud"])
	fmt.Fprintf(&w, "- gantry, each round: what `actions/deploy-cloudrun` runs on a fresh runner. Its install step: the project's `scripts/install.sh` (HEAD's, as the action's checkout at a release tag) with `GANTRY_ACTION_REF=%s`, an empty `RUNNER_TOOL_CACHE` and `RUNNER_TEMP`, downloading from a release server on 127.0.0.1 (`GANTRY_RELEASE_BASE_URL`) that counts the bytes it sends, headers included. The release is built as `.goreleaser.yaml` builds it (linux_amd64_v1, `CGO_ENABLED=0 -trimpath -ldflags \"-s -w -X …/internal/version.Version=%s\"`): binary %d bytes (%s), `%s` %d bytes (%s, gzip best compression, as goreleaser), `%s` %d bytes (this line only; the real one lists all 4 platforms). Then its run step: `\"$GANTRY_BIN\" deploy-cloudrun` with the inputs as `INPUT_` variables, credentials from a Workload Identity Federation exchange with `githubfake` (OIDC) and `googlefake` (STS, IAM), against `runfake` (Cloud Run Admin API v2, gRPC, only the fake IAM's tokens accepted) reached through `GANTRY_CLOUDRUN_ENDPOINT`. A TCP proxy in front of the fake notes the first HTTP/2 HEADERS frame from gantry: that is the first Cloud Run call. Input `verify: false` (the fake's `*.run.app` URLs are not reachable from another process; verify comes after the first call anyway); every deploy must end `result=success`. Fresh fakes and directories every round; %d rounds per configuration.\n",
		c.Version, r.Release.Version, r.Release.BinarySize, mb(r.Release.BinarySize), linuxAsset, len(r.Release.Archive), strings.Join(r.Release.Files, " + "), checksumsTx, len(r.Release.Checksums), c.Runs)
	w.WriteString("- Links: *loopback* is uncapped (no latency, no TLS, no redirect: on github.com the archive is a 302 to objects.githubusercontent.com over TLS, a few round trips more); a capped link paces every byte the release server sends at that rate, as a runner's download speed would. Not modelled either: what the runner itself spends starting each step of the composite action (a `bash` per step).\n")
	w.WriteString(r.gcloudAvailability())
	w.WriteString("\n")

	w.WriteString("| Tool | What is downloaded | Bytes downloaded | Install (s) | Step start → first Cloud Run API call (s) |\n|---|---|--:|--:|--:|\n")
	var failures []string
	for _, mbit := range c.LinksMbit {
		all := r.Gantry[mbit]
		ok := okGantry(all)
		for i, s := range all {
			if s.Err != nil {
				failures = append(failures, fmt.Sprintf("- gantry (%s), round %d: %s", linkName(mbit), i+1, firstLines(s.Err.Error(), 8)))
			}
		}
		name := fmt.Sprintf("gantry: `scripts/install.sh` + `gantry deploy-cloudrun` (%s)", linkName(mbit))
		if len(ok) < len(all) {
			name += fmt.Sprintf(" (%d of %d rounds failed)", len(all)-len(ok), len(all))
		}
		if len(ok) == 0 {
			fmt.Fprintf(&w, "| %s | failed | | | |\n", name)
			continue
		}
		dl := statOf(ok, func(s gantrySample) float64 { return float64(s.Downloaded) })
		fmt.Fprintf(&w, "| %s | `%s` + `%s` (binary %s unpacked) | %s | %s | **%s** |\n", name, checksumsTx, linuxAsset, mb(r.Release.BinarySize),
			mb(int64(dl.Median)), statOf(ok, func(s gantrySample) float64 { return sec(s.Install) }).secs(),
			statOf(ok, func(s gantrySample) float64 { return sec(s.FirstCall) }).secs())
	}
	gOK := okGcloud(r.GcloudSamples)
	for i, s := range r.GcloudSamples {
		if s.Err != nil {
			failures = append(failures, fmt.Sprintf("- gcloud, round %d: %s", i+1, firstLines(s.Err.Error(), 8)))
		}
	}
	after, share, installed := "", "", ""
	switch {
	case len(gOK) > 0:
		after = statOf(gOK, func(s gcloudSample) float64 { return sec(s.FirstCall) }).secs()
		share = "the reported install + " + after + " (the installed gcloud's share, measured here)"
		installed = "**" + after + "** (measured here)"
	case len(r.GcloudSamples) > 0:
		share, installed = "the reported install + the installed gcloud's share (failed here, see below)", "failed here (see below)"
	case r.Gcloud.Path == "":
		share, installed = "the reported install + the installed gcloud's share (not measured: no gcloud on PATH)", "not measured (no gcloud on PATH)"
	default:
		share, installed = "the reported install + the installed gcloud's share (not measured: -gcloud=false)", "not measured (-gcloud=false)"
	}
	fmt.Fprintf(&w, "| Google Cloud SDK on a fresh runner: `google-github-actions/setup-gcloud` + `gcloud run deploy` | `%s` | ≈ %.1f MB (published; not downloadable here) | 50 s to over 60 s (reported by users, not measured here) | %s |\n",
		gcloudArchive, gcloudArchiveMB, share)
	fmt.Fprintf(&w, "| Google Cloud SDK already installed (GitHub's image, `skip_install: true`): `gcloud run deploy` | nothing | 0 | 0 | %s |\n\n", installed)
	if len(failures) > 0 {
		w.WriteString("Failures:\n\n" + strings.Join(failures, "\n") + "\n\n")
	}

	w.WriteString(r.targets())
	w.WriteString(r.breakdown())
	w.WriteString(r.gcloudNotes())
	w.WriteString(r.perRound())
	return w.String()
}

// gcloudAvailability says what this machine's package index and PATH have
// of the Google Cloud SDK.
func (r *results) gcloudAvailability() string {
	g := r.Gcloud
	var w strings.Builder
	w.WriteString("- Google Cloud SDK here: ")
	var pol []string
	for _, pkg := range gcloudPackages {
		p, ok := g.Apt[pkg]
		if !ok {
			pol = append(pol, fmt.Sprintf("`apt-cache policy %s` failed", pkg))
			continue
		}
		src := "no source"
		if len(p.Sources) > 0 {
			src = "source " + strings.Join(p.Sources, ", ")
		}
		pol = append(pol, fmt.Sprintf("`%s` installed %s, candidate %s (%s)", pkg, p.Installed, p.Candidate, src))
	}
	w.WriteString("`apt-cache policy`: " + strings.Join(pol, "; ") + ". ")
	if g.Offered {
		w.WriteString("A repository in Debian's package index offers it, but the benchmark does not install packages. ")
	} else {
		w.WriteString("No repository in this machine's package index (Debian bookworm) offers it, so its download cannot be measured here. ")
	}
	if g.Path != "" {
		fmt.Fprintf(&w, "This machine has it preinstalled (%s, `%s`, dpkg Installed-Size of google-cloud-cli alone %.0f MB), so what gcloud costs *after* its install is measured. ", g.Version, g.Path, float64(g.InstalledKiB)*1024/1e6)
	}
	w.WriteString("The Go module proxy was not asked: gcloud is a Python distribution, not a Go module, and the proxy serves Go modules only.\n")
	return w.String()
}

// targets renders the two goals per gantry configuration.
func (r *results) targets() string {
	var w strings.Builder
	w.WriteString("| Target | Configuration | Measured | Goal | Result |\n|---|---|--:|--:|---|\n")
	verdict := func(met bool) string {
		if met {
			return "**met**"
		}
		return "**not met**"
	}
	for _, mbit := range r.Config.LinksMbit {
		ok := okGantry(r.Gantry[mbit])
		if len(ok) == 0 {
			fmt.Fprintf(&w, "| step start → first Cloud Run API call | gantry, %s | not measured | ≤ %.0f s | – |\n", linkName(mbit), targetFirstCall.Seconds())
			continue
		}
		fc := statOf(ok, func(s gantrySample) float64 { return sec(s.FirstCall) })
		dl := statOf(ok, func(s gantrySample) float64 { return float64(s.Downloaded) })
		fmt.Fprintf(&w, "| step start → first Cloud Run API call | gantry, %s | %.2f s median, %.2f s worst | ≤ %.0f s | %s |\n",
			linkName(mbit), fc.Median, fc.Max, targetFirstCall.Seconds(), verdict(fc.Max <= targetFirstCall.Seconds()))
		fmt.Fprintf(&w, "| bytes downloaded | gantry, %s | %.2f MB | ≤ %.0f MB | %s |\n",
			linkName(mbit), dl.Max/1e6, targetDownloadMB, verdict(dl.Max/1e6 <= targetDownloadMB))
	}
	fmt.Fprintf(&w, "| bytes downloaded | Google Cloud SDK | ≈ %.1f MB (published) | ≤ %.0f MB | not met (published size) |\n\n", gcloudArchiveMB, targetDownloadMB)
	w.WriteString("Results count the worst round: a target is met only when every round met it.\n\n")
	return w.String()
}

// breakdown shows where the time to the first call goes (medians).
func (r *results) breakdown() string {
	var w strings.Builder
	w.WriteString("Where the time goes (medians, seconds from the step's start; gantry's token exchange runs inside `deploy-cloudrun`):\n\n")
	w.WriteString("| Configuration | install.sh exited | deploy process started | OIDC token | STS exchange | generateAccessToken | first Cloud Run call | of which after the process started | first call | deploy finished (`result=success`) |\n|---|--:|--:|--:|--:|--:|--:|--:|---|--:|\n")
	for _, mbit := range r.Config.LinksMbit {
		ok := okGantry(r.Gantry[mbit])
		if len(ok) == 0 {
			continue
		}
		m := func(f func(gantrySample) time.Duration) string {
			return fmt.Sprintf("%.3f", statOf(ok, func(s gantrySample) float64 { return sec(f(s)) }).Median)
		}
		fmt.Fprintf(&w, "| gantry, %s | %s | %s | %s | %s | %s | %s | %s | gRPC `%s` | %s |\n", linkName(mbit),
			m(func(s gantrySample) time.Duration { return s.Install }), m(func(s gantrySample) time.Duration { return s.GantryStart }),
			m(func(s gantrySample) time.Duration { return s.OIDC }), m(func(s gantrySample) time.Duration { return s.STS }),
			m(func(s gantrySample) time.Duration { return s.IAM }), m(func(s gantrySample) time.Duration { return s.FirstCall }),
			m(func(s gantrySample) time.Duration { return s.FirstCall - s.GantryStart }),
			ok[0].FirstMethod, m(func(s gantrySample) time.Duration { return s.DeployDone }))
	}
	if ok := okGcloud(r.GcloudSamples); len(ok) > 0 {
		m := func(f func(gcloudSample) time.Duration) string {
			return fmt.Sprintf("%.3f", statOf(ok, func(s gcloudSample) float64 { return sec(f(s)) }).Median)
		}
		fmt.Fprintf(&w, "| gcloud, installed | – | 0 | %s | %s | %s | %s | %s | REST `%s` | stopped there |\n",
			m(func(s gcloudSample) time.Duration { return s.OIDC }), m(func(s gcloudSample) time.Duration { return s.STS }),
			m(func(s gcloudSample) time.Duration { return s.IAM }), m(func(s gcloudSample) time.Duration { return s.FirstCall }),
			m(func(s gcloudSample) time.Duration { return s.FirstCall }), ok[0].FirstTarget)
	}
	w.WriteString("\n")
	return w.String()
}

// gcloudNotes explains the gcloud row and cites the reported figures.
func (r *results) gcloudNotes() string {
	var w strings.Builder
	w.WriteString("Google Cloud SDK rows:\n\n")
	fmt.Fprintf(&w, "- Download size, published, not measured here: `%s` is %.1f MB on Google's install page (https://cloud.google.com/sdk/docs/install, as stored by this session's search index; the page names no version or date); the versioned 472.0.0 archive was listed at %.1f MB (https://cloud.google.com/sdk/docs/downloads-yum). Unpacked, the Debian package google-cloud-cli alone installs %.0f MB here.\n",
		gcloudArchive, gcloudArchiveMB, gcloudArchiveMB472, float64(r.Gcloud.InstalledKiB)*1024/1e6)
	w.WriteString("- Install time, reported by setup-gcloud users on GitHub-hosted runners, not measured here: \"waiting 50 seconds to install an SDK\" (google-github-actions/setup-gcloud#649, 2023); \"takes over a minute\" (#610, 2023, with gke-gcloud-auth-plugin; the maintainer: \"a few hundred megabytes\"); \"about 1 minute to every single one of our CI jobs\" (#635, 2023); \"more than a minute\" (#701, 2025), after which the maintainer found the tool-cache copy \"adding almost a minute to every installation … when the installation itself is only 10-20s\" (google-github-actions/setup-cloud-sdk#343) and added an option to skip it (setup-gcloud#718). GitHub's Ubuntu images also carry a preinstalled gcloud, which `skip_install: true` uses at whatever version the image has.\n")
	if ok := okGcloud(r.GcloudSamples); len(ok) > 0 {
		fmt.Fprintf(&w, "- Measured here: the installed gcloud (%s) running `gcloud run deploy %s --image=… --region=%s --project=%s --quiet` as a workflow does after `google-github-actions/auth` (an `external_account` credentials file in `CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE`, gcloud fetching the OIDC token and exchanging it itself, its OIDC, STS and IAM URLs pointed at the same fakes) and setup-gcloud (prompts and update checks off), with a fresh `CLOUDSDK_CONFIG`. All its HTTP goes through a proxy of the benchmark's: plain http to the fakes is passed to them; a CONNECT to `*.googleapis.com` is answered by the benchmark over TLS (a certificate of its own, trusted through `CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE`), where Service Usage says the Cloud Run API is enabled and the first request at a Cloud Run host, `%s`, is the first Cloud Run call (noted on arrival, answered 404; gcloud is stopped there, as runfake serves the v2 gRPC API and gcloud uses the v1 REST API); anything else is refused. Requests before it: %s. The page cache holds gcloud's files (it ran before the rounds), as it would right after an install.\n",
			r.Gcloud.Version, runService, runRegion, runProject, ok[0].FirstTarget, beforeList(ok[0].Before))
	}
	w.WriteString("\n")
	return w.String()
}

func beforeList(b []string) string {
	if len(b) == 0 {
		return "none"
	}
	return "`" + strings.Join(b, "`, `") + "`"
}

// perRound lists every round, so the spread behind the medians shows.
func (r *results) perRound() string {
	var w strings.Builder
	w.WriteString("<details><summary>Every round (install s / first Cloud Run call s / bytes downloaded / Cloud Run calls of the deploy)</summary>\n\n| Configuration | Rounds |\n|---|---|\n")
	for _, mbit := range r.Config.LinksMbit {
		var parts []string
		for _, s := range r.Gantry[mbit] {
			if s.Err != nil {
				parts = append(parts, "failed")
				continue
			}
			parts = append(parts, fmt.Sprintf("%.2f / %.2f / %d / %d", sec(s.Install), sec(s.FirstCall), s.Downloaded, s.Calls))
		}
		fmt.Fprintf(&w, "| gantry, %s | %s |\n", linkName(mbit), strings.Join(parts, "<br>"))
	}
	if len(r.GcloudSamples) > 0 {
		var parts []string
		for _, s := range r.GcloudSamples {
			if s.Err != nil {
				parts = append(parts, "failed")
				continue
			}
			parts = append(parts, fmt.Sprintf("– / %.2f / – / –", sec(s.FirstCall)))
		}
		fmt.Fprintf(&w, "| gcloud (installed) | %s |\n", strings.Join(parts, "<br>"))
	}
	if ok := okGantry(r.Gantry[r.Config.LinksMbit[0]]); len(ok) > 0 {
		fmt.Fprintf(&w, "\nRequests the release server answered per gantry install: %s.\n", "`"+strings.Join(ok[0].Requests, "`, `")+"`")
	}
	w.WriteString("\n</details>\n\n")
	return w.String()
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, " ")
}
