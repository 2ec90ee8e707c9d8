package registryauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sethvargo/go-githubactions"
)

// oidcError is a failure to get the job's GitHub OIDC token; its message says what to change.
type oidcError struct{ err error }

func (e *oidcError) Error() string { return e.err.Error() }
func (e *oidcError) Unwrap() error { return e.err }

// oidcToken gets a GitHub Actions OIDC token for audience and masks it.
func (r *Resolver) oidcToken(ctx context.Context, audience string) (string, error) {
	fetch := r.opts.OIDCToken
	if fetch == nil {
		gha := githubactions.New(
			githubactions.WithGetenv(r.opts.Getenv),
			githubactions.WithHTTPClient(r.httpClient()),
			githubactions.WithWriter(io.Discard),
		)
		fetch = gha.GetIDToken
	}
	token, err := fetch(ctx, audience)
	if err != nil {
		var missing *githubactions.EnvMissingError
		if errors.As(err, &missing) {
			return "", &oidcError{fmt.Errorf("no GitHub OIDC token (%s is not set): add `permissions: id-token: write` to the job", missing.Name)}
		}
		return "", &oidcError{fmt.Errorf("getting a GitHub OIDC token for audience %s: %w", audience, err)}
	}
	if token == "" {
		return "", &oidcError{fmt.Errorf("getting a GitHub OIDC token for audience %s: the runtime returned an empty token", audience)}
	}
	r.mask(token)
	return token, nil
}

// tokenSubject returns the sub claim of a JWT (not secret: it names the repository and ref), or "".
func tokenSubject(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}
