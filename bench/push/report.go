package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Targets the benchmark checks gantry against.
const (
	targetColdVsCraneCopy = 0.6 // gantry cold fan-out / three sequential crane copy
	targetRepushVsDigest  = 1.2 // gantry unchanged re-push / one crane digest round
)

// results is everything the report is made of.
type results struct {
	Config   config
	Layout   *Layout
	Samples  map[string][]sample // by tool name
	Machine  string
	Versions map[string]string
	Date     time.Time
}

// ok returns the tool's successful rounds.
func (r *results) ok(tool string) []sample {
	var out []sample
	for _, s := range r.Samples[tool] {
		if s.Err == nil {
			out = append(out, s)
		}
	}
	return out
}

// medianOf is the median of f over the tool's successful rounds (0 if none).
func (r *results) medianOf(tool string, f func(sample) float64) float64 {
	var xs []float64
	for _, s := range r.ok(tool) {
		xs = append(xs, f(s))
	}
	return median(xs)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func cold(s sample) float64      { return s.Cold.Seconds() }
func unchanged(s sample) float64 { return s.Unchanged.Seconds() }

// minimum is what the registries of one round must receive at least on a
// cold push: every blob and the manifest, once per registry.
func (r *results) minimum() (total, blobs int64) {
	blobs = registriesPerRound * r.Layout.BlobBytes()
	return blobs + registriesPerRound*r.Layout.ManifestSize, blobs
}

func (r *results) markdown() string {
	var w strings.Builder
	c := r.Config
	minTotal, minBlobs := r.minimum()
	fmt.Fprintf(&w, "\n## push: %d MB in %d layers to %d registries (%s)\n\n", c.SizeMB, c.Layers, registriesPerRound, r.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "Reproduce: `./scripts/tools.sh bench && %s` (from the repository root).\n\n", c.Command)
	fmt.Fprintf(&w, "- Machine: %s. Shared and noisy: read the medians and ratios, not absolute times.\n", r.Machine)
	if linkBytesPerSec > 0 {
		fmt.Fprintf(&w, "- Links: each registry's upload link is capped at %d Mbit/s by its proxy, as registries reached over a network are; the copy tools' source registry is not capped.\n", linkBytesPerSec*8/1_000_000)
	} else {
		fmt.Fprintf(&w, "- Links: loopback, uncapped: the 3 registry servers hashing and storing 900 MB on 2 cores are the bottleneck, which no client can parallelise away.\n")
	}
	fmt.Fprintf(&w, "- Versions: gantry %s; crane %s; regctl %s; skopeo %s; registry (distribution) %s.\n",
		r.Versions["gantry"], r.Versions["crane"], r.Versions["regctl"], r.Versions["skopeo"], r.Versions["registry"])
	fmt.Fprintf(&w, "- Image: `%s`, %d blobs (config + %d gzip layers of random data) = %d bytes, manifest %d bytes; one OCI layout all layout-based tools push from, and a source registry holding the same image for the copy tools.\n",
		r.Layout.Digest, len(r.Layout.Blobs), len(r.Layout.Blobs)-1, r.Layout.BlobBytes(), r.Layout.ManifestSize)
	fmt.Fprintf(&w, "- Each round: 3 fresh `registry serve` (filesystem storage) behind counting TCP proxies on 127.0.0.1; cold push, then the same command again (unchanged), then `crane digest` of the tag at the 3 registries one after another (the reference round). %d rounds per tool, tools interleaved; times are medians, wall clock, including process start.\n", c.Runs)
	fmt.Fprintf(&w, "- Minimum a cold push must send: %s of blobs + manifests (%s of blobs alone) over the 3 registries; 0 blob bytes when unchanged.\n\n", mb(minTotal), mb(minBlobs))

	w.WriteString("| Tool | Cold fan-out (s) | Unchanged re-push (s) | Cold: bytes sent | Sent / minimum | Blob bodies / blob minimum | Unchanged: bytes sent | Unchanged: requests | Read from source |\n")
	w.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	var failures []string
	for _, t := range tools {
		all, ok := r.Samples[t.Name], r.ok(t.Name)
		for i, s := range all {
			if s.Err != nil {
				failures = append(failures, fmt.Sprintf("- %s, round %d: %s", t.Name, i+1, firstLines(s.Err.Error(), 6)))
			}
		}
		if len(ok) == 0 {
			fmt.Fprintf(&w, "| %s | failed | failed | | | | | | |\n", t.Name)
			continue
		}
		name := t.Name
		if len(ok) < len(all) {
			name += fmt.Sprintf(" (%d of %d rounds failed)", len(all)-len(ok), len(all))
		}
		sent := r.medianOf(t.Name, func(s sample) float64 { return float64(sum(s.ColdCounts).Sent) })
		blob := r.medianOf(t.Name, func(s sample) float64 { return float64(sum(s.ColdCounts).BlobBody) })
		usent := r.medianOf(t.Name, func(s sample) float64 { return float64(sum(s.UnchangedCounts).Sent) })
		ureq := r.medianOf(t.Name, func(s sample) float64 { return float64(sum(s.UnchangedCounts).NRequests()) })
		src := r.medianOf(t.Name, func(s sample) float64 { return float64(s.SourceRead.Received) })
		srcCell := "–"
		if src > 0 {
			srcCell = mb(int64(src))
		}
		fmt.Fprintf(&w, "| %s | %.2f | %.3f | %s | %.4f× | %.4f× | %s | %.0f | %s |\n", name,
			r.medianOf(t.Name, cold), r.medianOf(t.Name, unchanged), mb(int64(sent)), sent/float64(minTotal), blob/float64(minBlobs),
			kb(int64(usent)), ureq, srcCell)
	}
	digestRound := r.digestRound()
	fmt.Fprintf(&w, "| reference: `crane digest` ×3 | | %.3f | | | | | | |\n\n", digestRound)
	if len(failures) > 0 {
		w.WriteString("Failures:\n\n" + strings.Join(failures, "\n") + "\n\n")
	}

	w.WriteString(r.targets(digestRound))
	w.WriteString(r.requests())
	w.WriteString(r.perRound())
	w.WriteString("What is counted: *bytes sent* are the raw TCP bytes from the tool to the 3 registries (request lines, headers, bodies, and the TLS probes of clients that try https first, listed as non-HTTP connections); *blob bodies* are the request bodies of uploads (`/blobs/uploads/`), parsed from a copy of the same stream; *minimum* is, per registry, the compressed size of the blobs it lacks plus the manifest. *Read from source* is what the copy tools downloaded from the source registry (response bytes). The proxies run in the benchmark process, on the same cores as the registries and the tools.\n")
	return w.String()
}

// digestRound is the median reference round over every successful round of
// every tool (it measures the registries, not the tool before it).
func (r *results) digestRound() float64 {
	var xs []float64
	for _, t := range tools {
		for _, s := range r.ok(t.Name) {
			xs = append(xs, s.DigestRound.Seconds())
		}
	}
	return median(xs)
}

// targets renders the three goals and whether this run met them.
func (r *results) targets(digestRound float64) string {
	var w strings.Builder
	const gantry, promote, craneCopy, cranePush = "gantry build-push", "gantry promote", "crane copy", "crane push"
	ratio := func(a, b float64) (float64, bool) {
		if a == 0 || b == 0 {
			return 0, false
		}
		return a / b, true
	}
	verdict := func(v float64, ok, met bool) string {
		switch {
		case !ok:
			return "not measured (a tool failed)"
		case met:
			return "**met**"
		}
		return "**not met**"
	}
	w.WriteString("| Target | Measured | Goal | Result |\n|---|--:|--:|---|\n")
	v, ok := ratio(r.medianOf(gantry, cold), r.medianOf(craneCopy, cold))
	fmt.Fprintf(&w, "| gantry build-push cold fan-out (from the layout) / three sequential `crane copy` (from the source registry) | %.2f | ≤ %.2f | %s |\n", v, targetColdVsCraneCopy, verdict(v, ok, v <= targetColdVsCraneCopy))
	v, ok = ratio(r.medianOf(gantry, unchanged), digestRound)
	fmt.Fprintf(&w, "| gantry build-push unchanged re-push / one `crane digest` round over 3 registries | %.2f | ≤ %.2f | %s |\n", v, targetRepushVsDigest, verdict(v, ok, v <= targetRepushVsDigest))
	_, minBlobs := r.minimum()
	blob := r.medianOf(gantry, func(s sample) float64 { return float64(sum(s.ColdCounts).BlobBody) })
	v, ok = ratio(blob, float64(minBlobs))
	fmt.Fprintf(&w, "| gantry build-push cold blob bytes / minimum | %.4f× (%d of %d bytes) | 1.00× | %s |\n", v, int64(blob), minBlobs, verdict(v, ok, int64(blob) == minBlobs))
	w.WriteString("\nContext (not targets): ")
	var ctx []string
	for _, p := range [][3]string{{promote, craneCopy, "gantry promote / crane copy, both from the source registry"}, {gantry, cranePush, "gantry build-push / crane push, both from the layout"}} {
		if v, ok := ratio(r.medianOf(p[0], cold), r.medianOf(p[1], cold)); ok {
			ctx = append(ctx, fmt.Sprintf("cold %s = %.2f", p[2], v))
		}
	}
	w.WriteString(strings.Join(ctx, "; ") + ".\n\n")
	return w.String()
}

// requests lists, per tool, the HTTP requests the registries saw in the
// tool's last successful round, summed over the 3 registries.
func (r *results) requests() string {
	var w strings.Builder
	w.WriteString("<details><summary>HTTP requests the 3 registries received (last round of each tool, summed)</summary>\n\n| Tool | Cold | Unchanged |\n|---|---|---|\n")
	for _, t := range tools {
		ok := r.ok(t.Name)
		if len(ok) == 0 {
			continue
		}
		s := ok[len(ok)-1]
		fmt.Fprintf(&w, "| %s | %s | %s |\n", t.Name, requestList(sum(s.ColdCounts)), requestList(sum(s.UnchangedCounts)))
	}
	w.WriteString("\n</details>\n\n")
	return w.String()
}

func requestList(c counts) string {
	var keys []string
	for k := range c.Requests {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, c.Requests[k])
	}
	return strings.Join(parts, ", ")
}

// perRound lists every round's times, so the spread behind the medians shows.
func (r *results) perRound() string {
	var w strings.Builder
	w.WriteString("<details><summary>Every round (cold s / unchanged s / digest round s / cold bytes sent per registry)</summary>\n\n| Tool | Rounds |\n|---|---|\n")
	for _, t := range tools {
		var parts []string
		for _, s := range r.Samples[t.Name] {
			if s.Err != nil {
				parts = append(parts, "failed")
				continue
			}
			var per []string
			for _, c := range s.ColdCounts {
				per = append(per, fmt.Sprint(c.Sent))
			}
			parts = append(parts, fmt.Sprintf("%.2f / %.3f / %.3f / %s", s.Cold.Seconds(), s.Unchanged.Seconds(), s.DigestRound.Seconds(), strings.Join(per, ", ")))
		}
		fmt.Fprintf(&w, "| %s | %s |\n", t.Name, strings.Join(parts, "<br>"))
	}
	w.WriteString("\n</details>\n\n")
	return w.String()
}

func sum(cs []counts) counts {
	var s counts
	for _, c := range cs {
		s = s.Add(c)
	}
	return s
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
func kb(n int64) string { return fmt.Sprintf("%.1f kB", float64(n)/1e3) }

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, " ")
}
