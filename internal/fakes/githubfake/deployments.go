package githubfake

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-github/v84/github"
)

// Deployment states GitHub accepts in a deployment status.
var deploymentStates = []string{"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// deployment is a deployment as GitHub answers it: go-github's type plus the fields it lacks.
type deployment struct {
	*github.Deployment
	OriginalEnvironment   string `json:"original_environment"`
	TransientEnvironment  bool   `json:"transient_environment"`
	ProductionEnvironment bool   `json:"production_environment"`

	statuses []*github.DeploymentStatus // oldest first
}

// clone copies d so that a later change does not reach an answer already handed out.
func (d *deployment) clone() *deployment {
	gd := *d.Deployment
	cp := *d
	cp.Deployment = &gd
	cp.statuses = nil
	return &cp
}

func (d *deployment) state() string {
	if len(d.statuses) == 0 {
		return ""
	}
	return d.statuses[len(d.statuses)-1].GetState()
}

// SetRef makes ref (a branch or tag name) resolve to sha in repo, for creating deployments of it;
// a full 40-hex SHA always resolves to itself.
func (s *Server) SetRef(repo, ref, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addRepo(repo).refs[ref] = sha
}

// Deployments returns the deployments of repo, oldest first.
func (s *Server) Deployments(repo string) []*github.Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*github.Deployment
	if r := s.repos[repoKey(repo)]; r != nil {
		for _, d := range r.deployments {
			out = append(out, d.clone().Deployment)
		}
	}
	return out
}

// DeploymentStatuses returns the statuses of deployment id in repo, oldest first, those GitHub
// added itself (auto_inactive) included.
func (s *Server) DeploymentStatuses(repo string, id int64) []*github.DeploymentStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*github.DeploymentStatus
	if r := s.repos[repoKey(repo)]; r != nil {
		if d := findDeployment(r, id); d != nil {
			for _, st := range d.statuses {
				cp := *st
				out = append(out, &cp)
			}
		}
	}
	return out
}

func findDeployment(r *repository, id int64) *deployment {
	for _, d := range r.deployments {
		if d.GetID() == id {
			return d
		}
	}
	return nil
}

// deployment returns the repository and deployment the path names; ok false carries GitHub's 404.
func (s *Server) deployment(rq *request) (*repository, *deployment, response, bool) {
	r := s.repo(rq)
	if r == nil {
		return nil, nil, rq.notFound(), false
	}
	id, err := strconv.ParseInt(rq.r.PathValue("deployment_id"), 10, 64)
	if err != nil {
		return nil, nil, rq.notFound(), false
	}
	d := findDeployment(r, id)
	if d == nil {
		return nil, nil, rq.notFound(), false
	}
	return r, d, response{}, true
}

func (s *Server) createDeployment(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	var in github.DeploymentRequest
	if resp, ok := rq.decode(&in); !ok {
		return resp
	}
	ref := in.GetRef()
	if ref == "" {
		return rq.fail(http.StatusUnprocessableEntity, "Invalid request.\n\n\"ref\" wasn't supplied.")
	}
	sha := r.refs[ref]
	if sha == "" {
		sha = r.refs[strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/")]
	}
	if sha == "" && fullSHA.MatchString(ref) {
		sha = ref
	}
	if sha == "" {
		return rq.fail(http.StatusUnprocessableEntity, "No ref found for: "+ref)
	}
	env := in.GetEnvironment()
	if env == "" {
		env = "production"
	}
	task := in.GetTask()
	if task == "" {
		task = "deploy"
	}
	payload := json.RawMessage(`{}`)
	if in.Payload != nil {
		b, err := json.Marshal(in.Payload)
		if err != nil {
			return rq.fail(http.StatusBadRequest, "Problems parsing JSON")
		}
		payload = b
	}
	production := env == "production"
	if in.ProductionEnvironment != nil {
		production = *in.ProductionEnvironment
	}
	id := s.newID()
	now := s.timestamp()
	repoURL := rq.base + "/repos/" + r.owner + "/" + r.name
	self := repoURL + "/deployments/" + strconv.FormatInt(id, 10)
	d := &deployment{
		Deployment: &github.Deployment{
			URL:           github.Ptr(self),
			ID:            github.Ptr(id),
			NodeID:        github.Ptr("DE_fake" + strconv.FormatInt(id, 36)),
			SHA:           github.Ptr(sha),
			Ref:           github.Ptr(ref),
			Task:          github.Ptr(task),
			Payload:       payload,
			Environment:   github.Ptr(env),
			Description:   github.Ptr(in.GetDescription()),
			Creator:       rq.id.User,
			CreatedAt:     now,
			UpdatedAt:     now,
			StatusesURL:   github.Ptr(self + "/statuses"),
			RepositoryURL: github.Ptr(repoURL),
		},
		OriginalEnvironment:   env,
		TransientEnvironment:  in.GetTransientEnvironment(),
		ProductionEnvironment: production,
	}
	r.deployments = append(r.deployments, d)
	return response{http.StatusCreated, d.clone()}
}

func (s *Server) listDeployments(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	q := rq.r.URL.Query()
	list := []*deployment{}
	for _, d := range slices.Backward(r.deployments) { // newest first, as GitHub lists them
		if match(q.Get("sha"), d.GetSHA()) && match(q.Get("ref"), d.GetRef()) &&
			match(q.Get("task"), d.GetTask()) && match(q.Get("environment"), d.GetEnvironment()) {
			list = append(list, d.clone())
		}
	}
	return response{http.StatusOK, paginate(rq, list)}
}

// match reports whether a list filter (empty: none) admits value.
func match(filter, value string) bool { return filter == "" || filter == value }

func (s *Server) getDeployment(rq *request) response {
	_, d, resp, ok := s.deployment(rq)
	if !ok {
		return resp
	}
	return response{http.StatusOK, d.clone()}
}

func (s *Server) listDeploymentStatuses(rq *request) response {
	_, d, resp, ok := s.deployment(rq)
	if !ok {
		return resp
	}
	list := slices.Clone(d.statuses)
	slices.Reverse(list) // newest first, as GitHub lists them
	return response{http.StatusOK, paginate(rq, list)}
}

func (s *Server) getDeploymentStatus(rq *request) response {
	_, d, resp, ok := s.deployment(rq)
	if !ok {
		return resp
	}
	for _, st := range d.statuses {
		if strconv.FormatInt(st.GetID(), 10) == rq.r.PathValue("status_id") {
			return response{http.StatusOK, st}
		}
	}
	return rq.notFound()
}

// createDeploymentStatus adds a status. Like GitHub, a status may move the deployment to another
// environment, and a success status with auto_inactive (the default) adds an inactive status to
// the older deployments of the same environment whose latest status is success.
func (s *Server) createDeploymentStatus(rq *request) response {
	r, d, resp, ok := s.deployment(rq)
	if !ok {
		return resp
	}
	var in struct {
		github.DeploymentStatusRequest
		TargetURL *string `json:"target_url,omitempty"` // the deprecated name of log_url
	}
	if resp, ok := rq.decode(&in); !ok {
		return resp
	}
	state := in.GetState()
	if !slices.Contains(deploymentStates, state) {
		return rq.fail(http.StatusUnprocessableEntity, "Validation Failed", github.Error{
			Resource: "DeploymentStatus", Field: "state", Code: "invalid",
			Message: "state is not included in the list",
		})
	}
	if env := in.GetEnvironment(); env != "" && env != d.GetEnvironment() {
		gd := *d.Deployment
		gd.Environment = github.Ptr(env)
		gd.UpdatedAt = s.timestamp()
		d.Deployment = &gd
	}
	logURL := in.GetLogURL()
	if logURL == "" && in.TargetURL != nil {
		logURL = *in.TargetURL
	}
	st := s.addStatus(d, state, in.GetDescription(), logURL, in.GetEnvironmentURL(), rq.id.User)
	if state == "success" && (in.AutoInactive == nil || *in.AutoInactive) {
		for _, old := range r.deployments {
			if old.GetID() < d.GetID() && old.GetEnvironment() == d.GetEnvironment() && old.state() == "success" {
				s.addStatus(old, "inactive", "", "", "", rq.id.User)
			}
		}
	}
	return response{http.StatusCreated, st}
}

func (s *Server) addStatus(d *deployment, state, description, logURL, envURL string, creator *github.User) *github.DeploymentStatus {
	id := s.newID()
	now := s.timestamp()
	st := &github.DeploymentStatus{
		ID:             github.Ptr(id),
		NodeID:         github.Ptr("DES_fake" + strconv.FormatInt(id, 36)),
		URL:            github.Ptr(d.GetStatusesURL() + "/" + strconv.FormatInt(id, 10)),
		State:          github.Ptr(state),
		Creator:        creator,
		Description:    github.Ptr(description),
		Environment:    github.Ptr(d.GetEnvironment()),
		TargetURL:      github.Ptr(logURL),
		LogURL:         github.Ptr(logURL),
		EnvironmentURL: github.Ptr(envURL),
		CreatedAt:      now,
		UpdatedAt:      now,
		DeploymentURL:  github.Ptr(d.GetURL()),
		RepositoryURL:  github.Ptr(d.GetRepositoryURL()),
	}
	d.statuses = append(d.statuses, st)
	return st
}
