package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/image"
	"github.com/gantry-dev/gantry/internal/push"
	"github.com/gantry-dev/gantry/internal/registryauth"
)

// pushAndReport pushes art to repos, then sets the outputs and writes the
// job summary; it is the shared tail of build-push and promote.
func pushAndReport(ctx context.Context, a *action.Action, r *registryauth.Resolver, art image.Artifact, repos []name.Repository, shaTag string, mutable []string, overwrite bool, verb string) error {
	var tags []string
	if shaTag != "" {
		tags = append(tags, shaTag)
	}
	tags = append(tags, mutable...)
	digest, err := art.Digest()
	if err != nil {
		return err
	}
	var ts []push.Target
	var providers []registryauth.Provider
	if err := a.Group("credentials", func() error {
		var err error
		ts, providers, err = targets(ctx, r, repos)
		for i, t := range ts {
			a.Infof("%s: %s", t.Repo, providers[i])
		}
		return err
	}); err != nil {
		return err
	}
	start := time.Now()
	var results []push.Result
	noun := "repositories"
	if len(repos) == 1 {
		noun = "repository"
	}
	perr := a.Group(fmt.Sprintf("push %s to %d %s", digest, len(repos), noun), func() error {
		var err error
		results, err = push.Push(ctx, art, ts, push.Options{ImmutableTag: shaTag, Tags: mutable, Overwrite: overwrite, Transport: a.Transport(), Logf: a.Infof, UserAgent: userAgent()})
		for _, res := range results {
			state := "pushed"
			switch {
			case res.Err != nil:
				state = "FAILED"
			case res.UpToDate:
				state = "already up to date"
			}
			a.Infof("%s: %s; %s uploaded, %s already present (%d blobs sent, %d mounted, %d present), %d requests, %.1fs",
				res.Registry, state, push.HumanBytes(res.UploadedBytes), push.HumanBytes(res.PresentBytes),
				res.BlobsUploaded, res.BlobsMounted, res.BlobsPresent, res.Requests, res.Duration.Seconds())
		}
		return err
	})

	var images, fullTags []string
	for _, res := range results {
		if res.Err != nil {
			continue
		}
		for _, repo := range res.Repos {
			images = append(images, repo+"@"+digest.String())
			for _, t := range tags {
				fullTags = append(fullTags, repo+":"+t)
			}
		}
	}
	if len(images) > 0 {
		a.SetOutput("digest", digest.String())
		a.SetOutput("images", strings.Join(images, "\n"))
		if a.Spec().HasOutput("tags") {
			a.SetOutput("tags", strings.Join(fullTags, "\n"))
		}
	}
	if a.Spec().HasOutput("sha-tag") && shaTag != "" {
		a.SetOutput("sha-tag", shaTag)
	}
	writePushSummary(a, verb, digest.String(), tags, results, perr, time.Since(start))
	return perr
}

func writePushSummary(a *action.Action, verb, digest string, tags []string, results []push.Result, err error, took time.Duration) {
	s := a.Summary()
	verdict := "✅"
	if err != nil {
		verdict = "❌"
	}
	fmt.Fprintf(s, "### %s %s\n\n", verdict, verb)
	fmt.Fprintf(s, "Digest %s", action.Code(digest))
	if len(tags) > 0 {
		quoted := make([]string, len(tags))
		for i, t := range tags {
			quoted[i] = action.Code(t)
		}
		fmt.Fprintf(s, ", tags %s", strings.Join(quoted, " "))
	}
	fmt.Fprintf(s, ", %.1fs in all.\n\n", took.Seconds())
	if len(results) > 0 {
		rows := make([][]string, 0, len(results))
		for _, r := range results {
			status := "pushed"
			switch {
			case r.Err != nil:
				status = "❌ " + action.Escape(r.Err.Error())
			case r.UpToDate:
				status = "up to date"
			}
			repos := make([]string, len(r.Repos))
			for i, repo := range r.Repos {
				repos[i] = action.Code(repo)
			}
			rows = append(rows, []string{action.Escape(r.Registry), strings.Join(repos, "<br>"), status,
				fmt.Sprintf("%s (%d blobs)", push.HumanBytes(r.UploadedBytes), r.BlobsUploaded),
				fmt.Sprintf("%s (%d blobs, %d mounted)", push.HumanBytes(r.PresentBytes), r.BlobsPresent+r.BlobsMounted, r.BlobsMounted),
				fmt.Sprintf("%.1f", r.Duration.Seconds())})
		}
		s.WriteString(action.Table([]string{"Registry", "Repositories", "Result", "Uploaded", "Already present", "Seconds"}, rows))
	}
	if err != nil {
		fmt.Fprintf(s, "\n%s\n", action.Escape(err.Error()))
	}
}
