// Package commit resolves and checks the commit SHA that an image or a
// deploy is for, and the sha-XXXXXXX tag derived from it.
package commit

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// MinLen is the shortest SHA prefix gantry accepts: shorter ones collide.
const MinLen = 7

var hexRE = regexp.MustCompile(`^[0-9a-fA-F]+$`)

// Validate checks that sha is 7 to 40 (or 64, for SHA-256 repositories) hex
// characters and returns it in lower case.
func Validate(sha string) (string, error) {
	sha = strings.TrimSpace(sha)
	switch {
	case sha == "":
		return "", fmt.Errorf("is empty; set it to a commit SHA (7 to 40 hex characters)")
	case !hexRE.MatchString(sha):
		return "", fmt.Errorf("%q is not a hex commit SHA; want 7 to 40 hex characters", sha)
	case len(sha) < MinLen:
		return "", fmt.Errorf("%q is too short; want at least %d hex characters", sha, MinLen)
	case len(sha) > 40 && len(sha) != 64:
		return "", fmt.Errorf("%q is too long; want 7 to 40 hex characters", sha)
	}
	return strings.ToLower(sha), nil
}

// Tag returns the image tag for sha: "sha-" and its first 7 characters.
func Tag(sha string) string { return "sha-" + strings.ToLower(sha)[:MinLen] }

// Short returns sha cut to MinLen characters for display; shorter text is
// returned as it is.
func Short(sha string) string { return sha[:min(len(sha), MinLen)] }

// FromEnv returns the commit a workflow run is about: on pull_request events
// the head commit of the pull request (GITHUB_SHA is then a merge commit no
// one will deploy), else GITHUB_SHA.
func FromEnv(getenv func(string) string) string {
	switch getenv("GITHUB_EVENT_NAME") {
	case "pull_request", "pull_request_target":
		if sha := prHead(getenv("GITHUB_EVENT_PATH")); sha != "" {
			return sha
		}
	}
	return getenv("GITHUB_SHA")
}

func prHead(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var ev struct {
		PullRequest struct {
			Head struct {
				SHA string `json:"sha"`
			} `json:"head"`
		} `json:"pull_request"`
	}
	if json.Unmarshal(b, &ev) != nil {
		return ""
	}
	return ev.PullRequest.Head.SHA
}

// Matches reports whether two SHAs name the same commit: one is a prefix of
// the other, case-insensitively, and both have at least MinLen characters.
func Matches(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSpace(a)), strings.ToLower(strings.TrimSpace(b))
	if len(a) < MinLen || len(b) < MinLen {
		return false
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	return strings.HasPrefix(b, a)
}
