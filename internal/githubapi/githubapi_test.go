package githubapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
)

func TestNewClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		apiURL  string
		want    string // BaseURL; "" when an error is wanted
		wantErr string
	}{
		{apiURL: "", want: "https://api.github.com/"},
		{apiURL: "https://api.github.com", want: "https://api.github.com/"},
		{apiURL: "https://ghes.example.com/api/v3", want: "https://ghes.example.com/api/v3/"},
		{apiURL: "https://ghes.example.com/api/v3/", want: "https://ghes.example.com/api/v3/"},
		{apiURL: "https://api.acme.ghe.com", want: "https://api.acme.ghe.com/"},
		{apiURL: "ghes.example.com/api/v3", wantErr: "not an http(s) URL"},
		{apiURL: "ftp://ghes.example.com", wantErr: "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.apiURL, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tt.apiURL, "ghs_x", nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.BaseURL.String(); got != tt.want {
				t.Errorf("BaseURL = %s, want %s", got, tt.want)
			}
			if !strings.HasPrefix(c.UserAgent, "gantry/") {
				t.Errorf("UserAgent = %q", c.UserAgent)
			}
		})
	}
	if _, err := NewClient("", "", nil); err == nil {
		t.Error("no token accepted")
	}
}

// waits is a clock that records the waits asked of it and returns at once.
func waits(into *[]time.Duration) clock.Clock {
	return clock.Virtual{NowFunc: time.Now, Advance: func(d time.Duration) { *into = append(*into, d) }}
}

func TestDo(t *testing.T) {
	t.Parallel()
	const repo = "acme/shop"
	applied := githubfake.ServerError(githubfake.OpCreateDeployment, http.StatusBadGateway, 1)
	applied.Applied = true
	tests := []struct {
		name            string
		fault           githubfake.Fault
		wantWaits       int
		wantDeployments int
		check           func(t *testing.T, err error)
	}{
		{
			name:            "secondary rate limit on a create is retried",
			fault:           githubfake.SecondaryRateLimit(githubfake.OpCreateDeployment, http.StatusForbidden, time.Second, 2),
			wantWaits:       2,
			wantDeployments: 1,
			check:           func(t *testing.T, err error) { noError(t, err) },
		},
		{
			name:            "a 502 on a create is not repeated",
			fault:           applied,
			wantDeployments: 1, // GitHub made it all the same
			check: func(t *testing.T, err error) {
				var uncertain *UncertainError
				if !errors.As(err, &uncertain) || StatusCode(err) != http.StatusBadGateway {
					t.Errorf("err = %v, want an UncertainError with 502", err)
				}
			},
		},
		{
			name:  "missing permission",
			fault: githubfake.MissingPermission(githubfake.OpCreateDeployment, 1),
			check: func(t *testing.T, err error) {
				var denied *PermissionError
				if !errors.As(err, &denied) || !strings.HasSuffix(denied.URL, "/repos/acme/shop/deployments") || denied.Message != githubfake.MessageNotAccessible {
					t.Errorf("err = %v, want a PermissionError", err)
				}
			},
		},
		{
			name:      "spent primary rate limit resetting beyond MaxWait",
			fault:     githubfake.PrimaryRateLimit("", time.Now().Add(time.Hour), 1),
			wantWaits: 0,
			check: func(t *testing.T, err error) {
				var limited *github.RateLimitError
				if !errors.As(err, &limited) || !strings.Contains(err.Error(), "longer than") {
					t.Errorf("err = %v, want a RateLimitError saying the wait is too long", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gh := githubfake.Start(t, githubfake.Options{Repository: repo})
			gh.SetRef(repo, "main", strings.Repeat("a", 40))
			gh.Inject(tt.fault)
			c, err := NewClient(gh.APIURL(), gh.APIToken(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var slept []time.Duration
			r := Retrier{Clock: waits(&slept)}
			err = r.Do(context.Background(), false, func(ctx context.Context) error {
				_, _, err := c.Repositories.CreateDeployment(ctx, "acme", "shop", &github.DeploymentRequest{Ref: github.Ptr("main")})
				return err
			})
			tt.check(t, err)
			if len(slept) != tt.wantWaits {
				t.Errorf("waits = %v, want %d", slept, tt.wantWaits)
			}
			if n := len(gh.Deployments(repo)); n != tt.wantDeployments {
				t.Errorf("%d deployments, want %d", n, tt.wantDeployments)
			}
		})
	}
}

func TestDoBrokenConnection(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // connections to it are refused
	c, err := NewClient(dead.URL, "ghs_x", nil)
	if err != nil {
		t.Fatal(err)
	}
	list := func(ctx context.Context) error {
		_, _, err := c.Repositories.ListDeployments(ctx, "acme", "shop", nil)
		return err
	}
	var slept []time.Duration
	r := Retrier{Clock: waits(&slept), Attempts: 3}
	var uncertain *UncertainError
	if err := r.Do(context.Background(), true, list); err == nil || errors.As(err, &uncertain) || len(slept) != 2 {
		t.Errorf("read: err = %v after waits %v, want a plain error after 2 waits", err, slept)
	}
	slept = nil
	if err := r.Do(context.Background(), false, list); !errors.As(err, &uncertain) || len(slept) != 0 {
		t.Errorf("write: err = %v after waits %v, want an UncertainError at once", err, slept)
	}
}

func TestDoContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	r := Retrier{Clock: clock.Real{}, Backoff: time.Hour}
	err := r.Do(ctx, true, func(context.Context) error {
		calls++
		cancel()
		return &github.ErrorResponse{Response: &http.Response{StatusCode: http.StatusBadGateway}}
	})
	if err == nil || calls != 1 {
		t.Errorf("err = %v after %d calls, want the call's error after 1", err, calls)
	}
}

func noError(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Error(err)
	}
}

func TestRepositoryFromEnv(t *testing.T) {
	t.Parallel()
	for repo, want := range map[string]string{"acme/shop": "acme shop", "": "", "shop": "", "acme/": "", "/shop": "", "acme/shop/x": ""} {
		owner, name, err := RepositoryFromEnv(func(string) string { return repo })
		if got := strings.TrimSpace(owner + " " + name); got != want || (want == "") != (err != nil) {
			t.Errorf("GITHUB_REPOSITORY %q: %q %q, %v; want %q", repo, owner, name, err, want)
		}
	}
}
