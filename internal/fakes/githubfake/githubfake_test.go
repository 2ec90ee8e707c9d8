package githubfake

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/sethvargo/go-githubactions"
)

func TestOIDCTokenEndpoint(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Repository: "acme/shop", RunID: "99"})
	env := s.Env()
	gha := githubactions.New(githubactions.WithGetenv(func(k string) string { return env[k] }), githubactions.WithWriter(io.Discard))
	token, err := gha.GetIDToken(context.Background(), "sts.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	claims, err := ParseJWT(token)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"iss": DefaultIssuer, "aud": "sts.amazonaws.com", "sub": "repo:acme/shop:ref:refs/heads/main", "repository": "acme/shop", "run_id": "99"} {
		if got := ClaimString(claims, k); got != want {
			t.Errorf("claim %s = %q, want %q", k, got, want)
		}
	}
	if ClaimTime(claims, "exp").IsZero() {
		t.Error("no exp claim")
	}
	if got := s.Issued(); len(got) != 1 || got[0].Token != token || got[0].Audience != "sts.amazonaws.com" {
		t.Errorf("Issued = %+v", got)
	}

	bad := githubactions.New(githubactions.WithGetenv(func(k string) string {
		if k == "ACTIONS_ID_TOKEN_REQUEST_TOKEN" {
			return "wrong"
		}
		return env[k]
	}), githubactions.WithWriter(io.Discard))
	var rf *githubactions.RequestFailedError
	if _, err := bad.GetIDToken(context.Background(), "x"); !errors.As(err, &rf) || rf.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong request token: %v, want 401", err)
	}

	s.FailOIDC(http.StatusInternalServerError, 1)
	if _, err := gha.GetIDToken(context.Background(), "x"); !errors.As(err, &rf) || rf.StatusCode != http.StatusInternalServerError {
		t.Errorf("injected failure: %v, want 500", err)
	}
	if _, err := gha.GetIDToken(context.Background(), "x"); err != nil {
		t.Errorf("after the failure: %v", err)
	}
}
