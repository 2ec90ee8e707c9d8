// Package push writes one image to many repositories: every registry at
// once, each blob at most once per registry (existence check first, then a
// cross-repository mount), with a conflict check on the immutable tag before
// anything is written.
package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/gantry-dev/gantry/internal/image"
)

// Target is one repository to push to, with the credentials for its registry.
type Target struct {
	Repo name.Repository
	Auth authn.Authenticator
}

// Options controls a push.
type Options struct {
	// ImmutableTag (sha-XXXXXXX) is written first: if it exists with another
	// digest the push fails unless Overwrite; if it exists with this digest
	// the repository is up to date. Empty: the image is pushed by digest.
	ImmutableTag string
	// Tags are mutable tags (latest, production) pointed at the digest after.
	Tags      []string
	Overwrite bool
	// Transport is the base HTTP transport; nil means http.DefaultTransport.
	Transport http.RoundTripper
	Logf      func(string, ...any)
	// Jobs is the number of blobs uploaded at once per repository.
	Jobs      int
	Backoff   remote.Backoff
	UserAgent string
}

// DefaultBackoff retries a failing request 5 times over about 30 s.
var DefaultBackoff = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 5}

// retryCodes are the statuses worth retrying: timeouts, rate limits and
// server errors.
var retryCodes = []int{408, 429, 500, 502, 503, 504}

// Result is what happened at one registry.
type Result struct {
	Registry string
	Repos    []string
	Digest   v1.Hash
	// UploadedBytes counts blob bytes sent; PresentBytes the compressed size
	// of blobs never sent because the registry had them or mounted them.
	UploadedBytes, PresentBytes int64
	// BlobsUploaded were sent (once per registry); BlobsMounted were mounted
	// into at least one repository from another; BlobsPresent were neither.
	BlobsUploaded, BlobsMounted, BlobsPresent int
	// UpToDate is true when every repository already had the image under
	// its immutable tag, so only manifests were checked.
	UpToDate bool
	Requests int64
	Duration time.Duration
	Err      error
}

// Error is a failure at one registry, with the HTTP status when the
// registry answered.
type Error struct {
	Registry string
	Repo     string
	Status   int
	Err      error
}

func (e *Error) Error() string {
	where := e.Registry
	if e.Repo != "" {
		where = e.Repo
	}
	if e.Status != 0 {
		return fmt.Sprintf("%s: HTTP %d %s: %v", where, e.Status, http.StatusText(e.Status), trimTransport(e.Err))
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func trimTransport(err error) string {
	var te *transport.Error
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs := make([]string, 0, len(te.Errors))
		for _, d := range te.Errors {
			msgs = append(msgs, string(d.Code)+": "+d.Message)
		}
		return strings.Join(msgs, "; ")
	}
	return err.Error()
}

func wrap(repo name.Repository, err error) error {
	e := &Error{Registry: repo.RegistryStr(), Repo: repo.String(), Err: err}
	var te *transport.Error
	if errors.As(err, &te) {
		e.Status = te.StatusCode
	}
	return e
}

// ConflictError is an immutable tag that already points at another digest.
type ConflictError struct {
	Ref      string
	Existing v1.Hash
	Want     v1.Hash
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s already exists with digest %s, not %s; refusing to move an immutable tag (set overwrite: true to replace it)", e.Ref, e.Existing, e.Want)
}

// Push writes art to every target and returns one result per registry, in
// the order the registries first appear. It returns an error naming every
// registry that failed; the other registries are still pushed. Nothing is
// written anywhere when a preflight check (credentials, tag conflict) fails.
func Push(ctx context.Context, art image.Artifact, targets []Target, o Options) ([]Result, error) {
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Jobs == 0 {
		o.Jobs = 4
	}
	if o.Backoff.Steps == 0 {
		o.Backoff = DefaultBackoff
	}
	digest, err := art.Digest()
	if err != nil {
		return nil, fmt.Errorf("compute digest: %w", err)
	}
	groups := groupByRegistry(targets)
	ps := make([]*registryPush, len(groups))
	for i, g := range groups {
		ps[i] = &registryPush{o: o, art: art, digest: digest, targets: g, meter: newMeter(o.Transport)}
	}

	// Preflight every registry before writing to any.
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.preflightErr = p.preflight(ctx) }()
	}
	wg.Wait()
	var perrs []error
	for _, p := range ps {
		if p.preflightErr != nil {
			perrs = append(perrs, p.preflightErr)
		}
	}
	if len(perrs) > 0 {
		return nil, fmt.Errorf("nothing was pushed: %w", errors.Join(perrs...))
	}

	results := make([]Result, len(ps))
	for i, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = p.push(ctx) }()
	}
	wg.Wait()
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return results, errors.Join(errs...)
}

func groupByRegistry(ts []Target) [][]Target {
	var order []string
	by := map[string][]Target{}
	for _, t := range ts {
		r := t.Repo.RegistryStr()
		if _, ok := by[r]; !ok {
			order = append(order, r)
		}
		by[r] = append(by[r], t)
	}
	out := make([][]Target, len(order))
	for i, r := range order {
		out[i] = by[r]
	}
	return out
}

// registryPush is the work for the repositories of one registry.
type registryPush struct {
	o            Options
	art          image.Artifact
	digest       v1.Hash
	targets      []Target
	meter        *meter
	upToDate     []bool
	preflightErr error
	clients      map[string]http.RoundTripper
}

// client returns one authenticated transport per repository, with a push
// token, shared by the manifest checks, the push-permission check and the
// extra tags, so they cost one ping and one token fetch in all. remote.Write
// makes its own, because it adds pull scopes for cross-repository mounts.
func (p *registryPush) client(ctx context.Context, t Target) (http.RoundTripper, error) {
	if p.clients == nil {
		p.clients = map[string]http.RoundTripper{}
	}
	if tr, ok := p.clients[t.Repo.String()]; ok {
		return tr, nil
	}
	var base http.RoundTripper = transport.NewRetry(p.meter, transport.WithRetryBackoff(p.o.Backoff), transport.WithRetryStatusCodes(retryCodes...))
	if p.o.UserAgent != "" {
		base = transport.NewUserAgent(base, p.o.UserAgent)
	}
	tr, err := transport.NewWithContext(ctx, t.Repo.Registry, t.Auth, base, []string{t.Repo.Scope(transport.PushScope)})
	if err != nil {
		return nil, err
	}
	p.clients[t.Repo.String()] = tr
	return tr, nil
}

// head reads a manifest descriptor through the repository's shared client.
func (p *registryPush) head(ctx context.Context, t Target, ref name.Reference) (*v1.Descriptor, error) {
	tr, err := p.client(ctx, t)
	if err != nil {
		return nil, err
	}
	return remote.Head(ref, remote.WithContext(ctx), remote.WithTransport(tr))
}

func (p *registryPush) opts(ctx context.Context, t Target) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(t.Auth),
		remote.WithTransport(p.meter),
		remote.WithJobs(p.o.Jobs),
		remote.WithRetryBackoff(p.o.Backoff),
		remote.WithRetryStatusCodes(retryCodes...),
		remote.WithUserAgent(p.o.UserAgent),
	}
}

// immutableRef is the reference whose presence means "already pushed".
func (p *registryPush) immutableRef(repo name.Repository) name.Reference {
	if p.o.ImmutableTag != "" {
		return repo.Tag(p.o.ImmutableTag)
	}
	return repo.Digest(p.digest.String())
}

// preflight checks each repository's immutable tag and, where a push is
// needed, that the credentials may push.
func (p *registryPush) preflight(ctx context.Context) error {
	p.upToDate = make([]bool, len(p.targets))
	for i, t := range p.targets {
		ref := p.immutableRef(t.Repo)
		desc, err := p.head(ctx, t, ref)
		switch {
		case err == nil && desc.Digest == p.digest:
			p.upToDate[i] = true
			continue
		case err == nil && !p.o.Overwrite:
			return &Error{Registry: t.Repo.RegistryStr(), Repo: t.Repo.String(), Err: &ConflictError{Ref: ref.String(), Existing: desc.Digest, Want: p.digest}}
		case err != nil && !isNotFound(err):
			return authHint(wrap(t.Repo, err))
		}
		if err := p.checkPush(ctx, t); err != nil {
			return authHint(wrap(t.Repo, err))
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

func authHint(err error) error {
	var e *Error
	if errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden) {
		return fmt.Errorf("%w; the registry refused the credentials: set username/password (or the registry's token input), run docker login, or grant push access", err)
	}
	return err
}

// checkPush starts and cancels a blob upload, the only check every registry
// answers truthfully (a token handshake alone passes on some registries that
// then refuse the push). go-containerregistry's CheckPushPermission does the
// same but takes no context, so a cancelled run could hang on it.
func (p *registryPush) checkPush(ctx context.Context, t Target) error {
	tr, err := p.client(ctx, t)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: tr}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/uploads/", t.Repo.Scheme(), t.Repo.RegistryStr(), t.Repo.RepositoryStr())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted); err != nil {
		return err
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		if lu, err := req.URL.Parse(loc); err == nil {
			if del, err := http.NewRequestWithContext(ctx, http.MethodDelete, lu.String(), nil); err == nil {
				if r, err := client.Do(del); err == nil {
					r.Body.Close()
				}
			}
		}
	}
	return nil
}

func (p *registryPush) push(ctx context.Context) Result {
	start := time.Now()
	reg := p.targets[0].Repo.RegistryStr()
	res := Result{Registry: reg, Digest: p.digest, UpToDate: true}
	var mountFrom name.Reference
	for i, t := range p.targets {
		res.Repos = append(res.Repos, t.Repo.String())
		if p.upToDate[i] {
			mountFrom = t.Repo.Digest(p.digest.String())
		} else {
			res.UpToDate = false
			if err := p.write(ctx, t, mountFrom); err != nil {
				res.Err = err
				break
			}
			mountFrom = t.Repo.Digest(p.digest.String())
		}
		if err := p.tagRest(ctx, t); err != nil {
			res.Err = err
			break
		}
	}
	res.Duration = time.Since(start)
	res.Requests = p.meter.requests.Load()
	res.UploadedBytes = p.meter.sent.Load()
	if blobs, err := p.art.Blobs(); err == nil {
		for _, b := range blobs {
			d := b.Digest.String()
			up, mounted := p.meter.wasUploaded(d), p.meter.wasMounted(d)
			if up {
				res.BlobsUploaded++
			} else {
				res.PresentBytes += b.Size
			}
			if mounted {
				res.BlobsMounted++
			}
			if !up && !mounted {
				res.BlobsPresent++
			}
		}
	}
	return res
}

// write pushes the image to one repository; mountFrom, when set, is the same
// image in another repository of this registry, so blobs are mounted, not sent.
func (p *registryPush) write(ctx context.Context, t Target, mountFrom name.Reference) error {
	ref := p.immutableRef(t.Repo)
	updates := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() { defer close(done); p.progress(t.Repo.String(), updates) }()
	opts := append(p.opts(ctx, t), remote.WithProgress(updates))
	var err error
	switch {
	case p.art.Index != nil:
		idx := p.art.Index
		if mountFrom != nil {
			idx = mountableIndex{idx: idx, from: mountFrom}
		}
		err = remote.WriteIndex(ref, idx, opts...)
	default:
		img := p.art.Image
		if mountFrom != nil {
			img = mountableImage{Image: img, from: mountFrom}
		}
		err = remote.Write(ref, img, opts...)
	}
	<-done
	if err != nil {
		return wrap(t.Repo, err)
	}
	return nil
}

// tagRest points the other tags at the digest, skipping those already there.
func (p *registryPush) tagRest(ctx context.Context, t Target) error {
	for _, tag := range p.o.Tags {
		ref := t.Repo.Tag(tag)
		if d, err := p.head(ctx, t, ref); err == nil && d.Digest == p.digest {
			continue
		}
		tr, err := p.client(ctx, t)
		if err != nil {
			return wrap(t.Repo, err)
		}
		if err := remote.Tag(ref, p.art.Taggable(), remote.WithContext(ctx), remote.WithTransport(tr)); err != nil {
			return wrap(t.Repo, fmt.Errorf("tag %s: %w", tag, err))
		}
	}
	return nil
}

// progressEvery is the least time between two progress lines of a push, so
// that short pushes print one line and long ones a line every few seconds.
const progressEvery = 3 * time.Second

// progress logs a push's progress at 10% steps, at most every progressEvery,
// and once at the end.
func (p *registryPush) progress(repo string, updates <-chan v1.Update) {
	last, lastAt := 0, time.Now()
	var final v1.Update
	for u := range updates {
		if u.Total <= 0 {
			continue
		}
		final = u
		pct := int(u.Complete * 100 / u.Total)
		if pct/10 > last/10 && pct < 100 && time.Since(lastAt) >= progressEvery {
			last, lastAt = pct, time.Now()
			p.o.Logf("%s: %d%% (%s of %s checked or sent, %s uploaded)", repo, pct, HumanBytes(u.Complete), HumanBytes(u.Total), HumanBytes(p.meter.sent.Load()))
		}
	}
	if final.Total > 0 {
		p.o.Logf("%s: %d%% (%s of %s checked or sent, %s uploaded)", repo, final.Complete*100/final.Total, HumanBytes(final.Complete), HumanBytes(final.Total), HumanBytes(p.meter.sent.Load()))
	}
}

// HumanBytes formats n as B, kB, MB or GB (decimal units, as registries show).
func HumanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// SortedRepos returns every repository pushed, sorted, for outputs.
func SortedRepos(rs []Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Repos...)
	}
	sort.Strings(out)
	return out
}
