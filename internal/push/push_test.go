package push

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-dev/gantry/internal/image"
)

var fast = remote.Backoff{Duration: 5 * time.Millisecond, Factor: 1, Steps: 3}

// newRegistry starts an in-memory registry; wrap may intercept requests.
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func target(t *testing.T, repo string) Target {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	return Target{Repo: r, Auth: authn.Anonymous}
}

func randomImage(t *testing.T) image.Artifact {
	t.Helper()
	img, err := random.Image(64*1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	return image.Artifact{Image: img}
}

func blobBytes(t *testing.T, art image.Artifact) int64 {
	t.Helper()
	bs, err := art.Blobs()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, b := range bs {
		n += b.Size
	}
	return n
}

func digestAt(t *testing.T, ref string) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return d.Digest
}

func TestPushTwoRegistriesThenRerunMovesNothing(t *testing.T) {
	t.Parallel()
	r1, r2 := newRegistry(t, nil), newRegistry(t, nil)
	art := randomImage(t)
	want, _ := art.Digest()
	ts := []Target{target(t, r1+"/acme/api"), target(t, r2+"/acme/api")}
	o := Options{ImmutableTag: "sha-abcdef0", Tags: []string{"latest"}, Backoff: fast}

	res, err := Push(context.Background(), art, ts, o)
	if err != nil {
		t.Fatal(err)
	}
	total := blobBytes(t, art)
	for _, r := range res {
		if r.UpToDate || r.UploadedBytes < total || r.BlobsUploaded != 4 || r.PresentBytes != 0 {
			t.Errorf("%s cold: %+v, want all %d bytes uploaded", r.Registry, r, total)
		}
	}
	for _, reg := range []string{r1, r2} {
		for _, tag := range []string{"sha-abcdef0", "latest"} {
			if got := digestAt(t, reg+"/acme/api:"+tag); got != want {
				t.Errorf("%s:%s = %s, want %s", reg, tag, got, want)
			}
		}
	}

	res, err = Push(context.Background(), art, ts, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.UpToDate || r.UploadedBytes != 0 || r.BlobsUploaded != 0 || r.PresentBytes != total {
			t.Errorf("%s re-run: %+v, want nothing uploaded", r.Registry, r)
		}
		// ping + HEAD sha tag + HEAD latest
		if r.Requests > 3 {
			t.Errorf("%s re-run made %d requests, want at most 3", r.Registry, r.Requests)
		}
	}
}

func TestConflictPushesNothing(t *testing.T) {
	t.Parallel()
	r1, r2 := newRegistry(t, nil), newRegistry(t, nil)
	first, second := randomImage(t), randomImage(t)
	o := Options{ImmutableTag: "sha-abcdef0", Backoff: fast}
	if _, err := Push(context.Background(), first, []Target{target(t, r2+"/api")}, o); err != nil {
		t.Fatal(err)
	}
	_, err := Push(context.Background(), second, []Target{target(t, r1+"/api"), target(t, r2+"/api")}, o)
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "nothing was pushed") || !strings.Contains(err.Error(), "overwrite: true") {
		t.Fatalf("err = %v, want a conflict that pushed nothing", err)
	}
	if _, herr := remote.Head(ref(t, r1+"/api:sha-abcdef0")); herr == nil {
		t.Error("the registry without a conflict was pushed to anyway")
	}
	o.Overwrite = true
	if _, err := Push(context.Background(), second, []Target{target(t, r1+"/api"), target(t, r2+"/api")}, o); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	want, _ := second.Digest()
	if got := digestAt(t, r2+"/api:sha-abcdef0"); got != want {
		t.Errorf("overwrite left %s", got)
	}
}

func TestRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	var fails atomic.Int32
	reg := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodHead && fails.Add(1) <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	art := randomImage(t)
	if _, err := Push(context.Background(), art, []Target{target(t, reg+"/api")}, Options{ImmutableTag: "sha-abcdef0", Backoff: fast}); err != nil {
		t.Fatalf("503s should be retried: %v", err)
	}
	if fails.Load() < 3 {
		t.Errorf("the failing handler ran %d times; the test did not exercise retries", fails.Load())
	}
}

func TestFailingRegistryNamedOthersPushed(t *testing.T) {
	t.Parallel()
	good := newRegistry(t, nil)
	bad := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodPut {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	art := randomImage(t)
	res, err := Push(context.Background(), art, []Target{target(t, bad+"/api"), target(t, good+"/api")}, Options{ImmutableTag: "sha-abcdef0", Backoff: fast})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("err = %v, want the failing registry and its status", err)
	}
	if len(res) != 2 || res[1].Err != nil {
		t.Fatalf("results = %+v", res)
	}
	want, _ := art.Digest()
	if got := digestAt(t, good+"/api:sha-abcdef0"); got != want {
		t.Errorf("good registry not pushed")
	}
}

func TestUnauthorizedRegistryFailsBeforeAnyPush(t *testing.T) {
	t.Parallel()
	open := newRegistry(t, nil)
	locked := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pass" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	art := randomImage(t)
	_, err := Push(context.Background(), art, []Target{target(t, open+"/api"), target(t, locked+"/api")}, Options{ImmutableTag: "sha-abcdef0", Backoff: fast})
	if err == nil || !strings.Contains(err.Error(), "nothing was pushed") || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "username/password") {
		t.Fatalf("err = %v", err)
	}
	if _, herr := remote.Head(ref(t, open+"/api:sha-abcdef0")); herr == nil {
		t.Error("open registry was pushed although another one refused credentials")
	}
	withCreds := target(t, locked+"/api")
	withCreds.Auth = &authn.Basic{Username: "user", Password: "pass"}
	if _, err := Push(context.Background(), art, []Target{withCreds}, Options{ImmutableTag: "sha-abcdef0", Backoff: fast}); err != nil {
		t.Fatalf("with credentials: %v", err)
	}
}

func TestIndexAndSameRegistryRepos(t *testing.T) {
	t.Parallel()
	reg := newRegistry(t, nil)
	idx, err := random.Index(1024, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	art := image.Artifact{Index: idx}
	res, err := Push(context.Background(), art, []Target{target(t, reg+"/a"), target(t, reg+"/b")}, Options{ImmutableTag: "sha-abcdef0", Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Repos) != 2 {
		t.Fatalf("one registry, two repos: %+v", res)
	}
	want, _ := idx.Digest()
	for _, repo := range []string{"a", "b"} {
		if got := digestAt(t, reg+"/"+repo+":sha-abcdef0"); got != want {
			t.Errorf("%s = %s", repo, got)
		}
	}
}

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
