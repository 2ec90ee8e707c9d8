// Package ghdeploy records deploys as GitHub Deployments, so that a repository's Environments
// page shows who deployed which commit where and when, and reads them back for a rollback.
// Recording is best effort: a failure is a warning, and a deploy never waits on GitHub for long.
package ghdeploy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/githubapi"
)

// GitHub's deployment status states that gantry posts.
const (
	StateInProgress = "in_progress"
	StateSuccess    = "success"
	StateFailure    = "failure"
	StateInactive   = "inactive"
)

const (
	// MaxDescription is the longest description GitHub accepts on a deployment status, in characters.
	MaxDescription = 140
	// Task is the task of every deployment gantry records.
	Task = "deploy"
	// DefaultTimeout bounds each Start, Finish and Previous, retries included.
	DefaultTimeout = time.Minute

	// Short retry defaults: a deploy goes on rather than wait for GitHub.
	defaultAttempts = 3
	defaultBackoff  = 500 * time.Millisecond
	defaultMaxWait  = 10 * time.Second

	// tool marks the payload of the deployments gantry records.
	tool = "gantry"
	// maxLooked is how many recent deployments of an environment Previous looks through.
	maxLooked = 100
)

// ErrNoPrevious is Previous finding no earlier successful deployment of another commit.
var ErrNoPrevious = errors.New("no earlier successful GitHub Deployment of another commit")

// Recorder records the deploys of one repository as GitHub Deployments.
type Recorder struct {
	Client *github.Client
	Owner  string
	Repo   string
	// Retry waits out rate limits and retries server errors; its zero fields take short defaults
	// (3 attempts, 500 ms backoff, 10 s longest wait), since a deploy should not wait on GitHub.
	Retry githubapi.Retrier
	// Timeout bounds each Start, Finish and Previous; 0 means DefaultTimeout.
	Timeout time.Duration
	// Warnf reports what could not be recorded; nil reports nothing.
	Warnf func(format string, args ...any)
	// Logf reports what was recorded; nil reports nothing.
	Logf func(format string, args ...any)
}

// FromActions returns a Recorder for the repository of the Actions run (GITHUB_REPOSITORY, the API
// at GITHUB_API_URL) that authenticates with token. Outside Actions (no GITHUB_REPOSITORY) or
// without a token it returns nil and no error: there is nothing to record to.
func FromActions(getenv func(string) string, token string, transport http.RoundTripper) (*Recorder, error) {
	if getenv("GITHUB_REPOSITORY") == "" || token == "" {
		return nil, nil
	}
	owner, repo, err := githubapi.RepositoryFromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("ghdeploy: %w", err)
	}
	client, err := githubapi.ClientFromEnv(getenv, token, transport)
	if err != nil {
		return nil, fmt.Errorf("ghdeploy: %w", err)
	}
	return &Recorder{Client: client, Owner: owner, Repo: repo}, nil
}

// Deploy is one deploy to record.
type Deploy struct {
	Environment string // the GitHub environment, e.g. production or the service's name
	SHA         string // the commit deployed: the deployment's ref
	Description string // what, by whom and why; cut to MaxDescription
	Actor       string // who started the deploy (GITHUB_ACTOR), kept in the payload
	LogURL      string // the run's page, linked from every status
	// Images are the images deployed, service → repository@sha256:..., kept in the payload so that
	// a rollback can redeploy them.
	Images map[string]string
	// Transient marks an environment that goes away, such as a preview.
	Transient bool
	// Production overrides GitHub's default, which is true for an environment named production.
	Production *bool
}

// payload is what gantry keeps in a deployment's payload.
type payload struct {
	Tool   string            `json:"tool"`
	Actor  string            `json:"actor,omitempty"`
	Images map[string]string `json:"images,omitempty"`
	// Key tells this deployment apart, to find it after a create whose answer was lost.
	Key string `json:"key"`
}

// Deployment is a recorded deploy awaiting its outcome. A nil Deployment records nothing, so a
// caller need not check whether Start recorded anything.
type Deployment struct {
	r      *Recorder
	id     int64
	env    string
	logURL string
}

// ID is the deployment's ID on GitHub; 0 for a nil Deployment.
func (d *Deployment) ID() int64 {
	if d == nil {
		return 0
	}
	return d.id
}

// Start records the beginning of a deploy: a Deployment of d.SHA to d.Environment that never waits
// for status checks or merges, and an in_progress status. When GitHub refuses or fails, it warns
// and returns nil; a nil Recorder records nothing.
func (r *Recorder) Start(ctx context.Context, d Deploy) *Deployment {
	if r == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	created, err := r.create(ctx, d)
	if err != nil {
		r.warn("record the deploy to environment "+d.Environment, err)
		return nil
	}
	dep := &Deployment{r: r, id: created.GetID(), env: d.Environment, logURL: d.LogURL}
	if err := dep.status(ctx, StateInProgress, "", d.Description); err != nil {
		r.warn(fmt.Sprintf("mark deployment %d in progress", dep.id), err)
	} else {
		r.logf("GitHub Deployment %d: %s to environment %s, in progress", dep.id, commit.Short(d.SHA), d.Environment)
	}
	return dep
}

// Finish records the outcome: success, with environmentURL (the verified URL, "" for none)
// and auto_inactive so that GitHub marks the environment's previous deployment inactive; or
// failure, with the first line of description as the reason. A cancelled ctx still gets
// DefaultTimeout to record it, since a cancelled deploy is worth recording too.
func (d *Deployment) Finish(ctx context.Context, ok bool, environmentURL, description string) {
	if d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.r.timeout())
	defer cancel()
	state := StateFailure
	if ok {
		state = StateSuccess
	}
	if err := d.status(ctx, state, environmentURL, description); err != nil {
		d.r.warn(fmt.Sprintf("record the outcome of deployment %d to environment %s", d.id, d.env), err)
		return
	}
	d.r.logf("GitHub Deployment %d: %s", d.id, state)
}

// create makes the deployment. A create that ended in doubt (a 5xx, a broken connection) is looked
// for before it is tried again, so that a deploy is never recorded twice.
func (r *Recorder) create(ctx context.Context, d Deploy) (*github.Deployment, error) {
	key := rand.Text()
	req := &github.DeploymentRequest{
		Ref:              github.Ptr(d.SHA),
		Task:             github.Ptr(Task),
		AutoMerge:        github.Ptr(false),
		RequiredContexts: &[]string{},
		Payload:          payload{Tool: tool, Actor: d.Actor, Images: d.Images, Key: key},
		Environment:      github.Ptr(d.Environment),
		Description:      github.Ptr(cut(d.Description)),
	}
	if d.Transient {
		req.TransientEnvironment = github.Ptr(true)
	}
	req.ProductionEnvironment = d.Production
	retry := r.retry()
	for attempt := 1; ; attempt++ {
		var made *github.Deployment
		err := retry.Do(ctx, false, func(ctx context.Context) error {
			var err error
			made, _, err = r.Client.Repositories.CreateDeployment(ctx, r.Owner, r.Repo, req)
			return err
		})
		var uncertain *githubapi.UncertainError
		switch {
		case err == nil && made.GetID() == 0:
			return nil, errors.New("GitHub answered without a deployment (an auto-merge answer?)")
		case err == nil:
			return made, nil
		case !errors.As(err, &uncertain) || attempt >= retry.MaxAttempts():
			return nil, err
		}
		if err := retry.Wait(ctx, attempt); err != nil {
			return nil, err
		}
		found, ferr := r.findKey(ctx, d, key)
		if ferr != nil {
			return nil, ferr
		}
		if found != nil {
			return found, nil
		}
	}
}

// findKey returns the deployment of d whose payload carries key, or nil.
func (r *Recorder) findKey(ctx context.Context, d Deploy, key string) (*github.Deployment, error) {
	var list []*github.Deployment
	err := r.retry().Do(ctx, true, func(ctx context.Context) error {
		var err error
		list, _, err = r.Client.Repositories.ListDeployments(ctx, r.Owner, r.Repo, &github.DeploymentsListOptions{
			Ref: d.SHA, Environment: d.Environment, Task: Task, ListOptions: github.ListOptions{PerPage: 30},
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, dep := range list {
		if p, ok := readPayload(dep); ok && p.Key == key {
			return dep, nil
		}
	}
	return nil, nil
}

// status posts a status. Posting one twice says the same thing twice, so it is retried after
// server errors too.
func (d *Deployment) status(ctx context.Context, state, environmentURL, description string) error {
	req := &github.DeploymentStatusRequest{
		State:       github.Ptr(state),
		Description: github.Ptr(cut(description)),
	}
	if d.logURL != "" {
		req.LogURL = github.Ptr(d.logURL)
	}
	if state == StateSuccess {
		req.AutoInactive = github.Ptr(true)
		if environmentURL != "" {
			req.EnvironmentURL = github.Ptr(environmentURL)
		}
	}
	return d.r.retry().Do(ctx, true, func(ctx context.Context) error {
		_, _, err := d.r.Client.Repositories.CreateDeploymentStatus(ctx, d.r.Owner, d.r.Repo, d.id, req)
		return err
	})
}

// Record is an earlier deployment, as Previous finds it.
type Record struct {
	ID          int64
	SHA         string
	Environment string
	Description string
	// Creator is the login GitHub authenticated when the deployment was created; the payload's
	// actor is not read, since anyone who may create deployments can write it.
	Creator   string
	CreatedAt time.Time
	// Images are the images the payload names, service → image; nil for a deployment that another
	// tool recorded, or a deploy that named no images. Anyone with `deployments: write` can plant
	// them: use them only through TrustedImages.
	Images map[string]string
}

// TrustedImages returns rec's images when each is pinned by digest (repository@sha256:...) to a
// repository that trusted lists for its service: the repositories the target itself uses (its
// Compose file, its own history). Anything else is refused with an error naming the deployment.
func (rec Record) TrustedImages(trusted map[string][]string) (map[string]string, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("GitHub Deployment %d (commit %s) refused: %s", rec.ID, commit.Short(rec.SHA), fmt.Sprintf(format, args...))
	}
	if _, err := commit.Validate(rec.SHA); err != nil {
		return nil, refuse("%v", err)
	}
	services := make([]string, 0, len(rec.Images))
	for s := range rec.Images {
		services = append(services, s)
	}
	sort.Strings(services)
	out := make(map[string]string, len(rec.Images))
	for _, s := range services {
		img := rec.Images[s]
		repos, ok := trusted[s]
		if !ok {
			return nil, refuse("its payload names service %q, which is not in the target's Compose file", s)
		}
		d, err := name.NewDigest(img)
		if err != nil {
			return nil, refuse("its payload's image for service %s, %q, is not pinned by digest (repository@sha256:...)", s, img)
		}
		repo := d.Context().Name()
		if !slices.Contains(repos, repo) {
			known := "none"
			if len(repos) > 0 {
				known = strings.Join(repos, ", ")
			}
			return nil, refuse("its payload's image for service %s is from repository %s, which the target does not use (its Compose file and history name: %s)", s, repo, known)
		}
		out[s] = d.String()
	}
	return out, nil
}

// Repository is the repository of an image reference, normalized as TrustedImages compares them
// (docker.io/library/x is index.docker.io/library/x); ok is false for a reference that names none.
func Repository(ref string) (string, bool) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", false
	}
	return r.Context().Name(), true
}

// Previous returns the newest deployment to environment that succeeded with another commit than
// current, as `rollback --to previous` means it; current "" stands for the commit of the newest
// successful deployment, the one serving now. It looks through the environment's last 100
// deployments and fails with ErrNoPrevious when none qualifies.
func (r *Recorder) Previous(ctx context.Context, environment, current string) (Record, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	var list []*github.Deployment
	err := r.retry().Do(ctx, true, func(ctx context.Context) error {
		var err error
		list, _, err = r.Client.Repositories.ListDeployments(ctx, r.Owner, r.Repo, &github.DeploymentsListOptions{
			Environment: environment, ListOptions: github.ListOptions{PerPage: maxLooked},
		})
		return err
	})
	if err != nil {
		return Record{}, r.explain("list the GitHub Deployments of environment "+environment, err, "read")
	}
	for _, dep := range list { // newest first
		ok, err := r.succeeded(ctx, dep.GetID())
		if err != nil {
			return Record{}, r.explain(fmt.Sprintf("read the statuses of GitHub Deployment %d", dep.GetID()), err, "read")
		}
		switch {
		case !ok:
		case current == "":
			current = dep.GetSHA()
		case !commit.Matches(dep.GetSHA(), current):
			return record(dep), nil
		}
	}
	if current == "" {
		return Record{}, fmt.Errorf("%w: environment %s has no successful deployment on GitHub", ErrNoPrevious, environment)
	}
	return Record{}, fmt.Errorf("%w: environment %s has none before %s among its last %d deployments", ErrNoPrevious, environment, commit.Short(current), maxLooked)
}

// succeeded reports whether a deployment ever had a success status.
func (r *Recorder) succeeded(ctx context.Context, id int64) (bool, error) {
	var statuses []*github.DeploymentStatus
	err := r.retry().Do(ctx, true, func(ctx context.Context) error {
		var err error
		statuses, _, err = r.Client.Repositories.ListDeploymentStatuses(ctx, r.Owner, r.Repo, id, &github.ListOptions{PerPage: 100})
		return err
	})
	if err != nil {
		return false, err
	}
	for _, st := range statuses {
		if st.GetState() == StateSuccess {
			return true, nil
		}
	}
	return false, nil
}

func record(dep *github.Deployment) Record {
	rec := Record{
		ID: dep.GetID(), SHA: dep.GetSHA(), Environment: dep.GetEnvironment(), Description: dep.GetDescription(),
		Creator: dep.GetCreator().GetLogin(), CreatedAt: dep.GetCreatedAt().Time,
	}
	if p, ok := readPayload(dep); ok {
		rec.Images = p.Images
	}
	return rec
}

// readPayload decodes the payload of a deployment gantry recorded; ok is false for another tool's.
func readPayload(dep *github.Deployment) (payload, bool) {
	var p payload
	if json.Unmarshal(dep.Payload, &p) != nil || p.Tool != tool {
		return payload{}, false
	}
	return p, true
}

// warn reports a failed call of Start or Finish, with what to do about it.
func (r *Recorder) warn(what string, err error) {
	if r.Warnf != nil {
		r.Warnf("%v; the deploy goes on", r.explain("GitHub Deployment: could not "+what, err, "write"))
	}
}

// explain says what failed and, for a refused token, what to change; access is the permission
// the call needs, read or write.
func (r *Recorder) explain(what string, err error, access string) error {
	var denied *githubapi.PermissionError
	switch {
	case errors.As(err, &denied):
		return fmt.Errorf("%s: %w; the job needs `permissions: deployments: %s` (a pull request from a fork gets a read-only token)", what, err, access)
	case errors.Is(err, githubapi.ErrBadCredentials):
		return fmt.Errorf("%s: %w; check the github-token input", what, err)
	case githubapi.StatusCode(err) == http.StatusNotFound:
		return fmt.Errorf("%s: repository %s/%s not found, or the token cannot see it: %w", what, r.Owner, r.Repo, err)
	case githubapi.StatusCode(err) == http.StatusUnprocessableEntity:
		return fmt.Errorf("%s: %w (is the commit pushed to %s/%s?)", what, err, r.Owner, r.Repo)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (r *Recorder) retry() githubapi.Retrier {
	rt := r.Retry
	if rt.Attempts <= 0 {
		rt.Attempts = defaultAttempts
	}
	if rt.Backoff <= 0 {
		rt.Backoff = defaultBackoff
	}
	if rt.MaxWait <= 0 {
		rt.MaxWait = defaultMaxWait
	}
	return rt
}

func (r *Recorder) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

func (r *Recorder) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// cut returns the first line of s, at most MaxDescription characters long.
func cut(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= MaxDescription {
		return s
	}
	return string([]rune(s)[:MaxDescription-1]) + "…"
}
