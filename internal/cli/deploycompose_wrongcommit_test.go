package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/verify"
)

// TestDeployComposeWrongCommitFailsFast: a new container whose /health
// reports another commit than the deploy's, checked at its own address, fails
// the deploy after verify.WrongCommitAnswers answers, with verify-timeout at
// its default (2m), saying "serves X, not Y"; the old version keeps serving.
func TestDeployComposeWrongCommitFailsFast(t *testing.T) {
	h := startComposeHost(t)
	workspace(t, map[string]string{"compose.yml": appCompose})
	v1 := h.app(t, sha1, "v1")
	if r := h.deploy(t, sha1, v1); r.code != 0 {
		t.Fatalf("first deploy: %s", r.log)
	}
	// The image reports sha1, the deploy says sha3: built from another commit.
	var args []string
	for in := h.deployArgs(sha3, v1); len(in) > 0; in = in[1:] {
		if in[0] == "--verify-timeout" {
			in = in[1:] // the default, 2m
			continue
		}
		args = append(args, in[0])
	}
	start := time.Now()
	r := runCLI(t, map[string]string{"GITHUB_ACTOR": "tester", "GITHUB_ACTIONS": "true"}, nil, args...)
	took := time.Since(start)
	t.Logf("deploy of a container serving the wrong commit failed after %s in all (verify-timeout 2m)", took.Round(100*time.Millisecond))
	if r.code != 1 || r.outputs["result"] != "failed" {
		t.Fatalf("exit %d result %q, want 1 failed\n%s", r.code, r.outputs["result"], r.log)
	}
	want := "serves 1111111, not 3333333 (3 answers in a row after "
	if verify.WrongCommitAnswers != 3 || !strings.Contains(r.log, want) || !strings.Contains(r.summary, "serves 1111111, not 3333333") {
		t.Errorf("log and summary do not say %q:\n%s\n%s", want, r.log, r.summary)
	}
	for _, line := range strings.Split(r.log, "\n") {
		if i := strings.Index(line, want); i >= 0 {
			t.Logf("detected: %s", line[i:])
			break
		}
	}
	if strings.Contains(r.log, "after 2m0s") || strings.Contains(r.log, "old version is still answering") {
		t.Errorf("the deploy waited for the timeout or blamed the old version:\n%s", r.log)
	}
	if !strings.Contains(r.summary, "previous version kept serving") {
		t.Errorf("summary does not say the previous version kept serving:\n%s", r.summary)
	}
	if got := h.served(t); got != sha1 {
		t.Errorf("serving %s after the failed deploy, want %s", got, sha1)
	}
	if imgs := h.images(t, "web"); len(imgs) != 1 || imgs[0] != v1 {
		t.Errorf("containers left: %q, want only the v1 one", imgs)
	}
}
