package googlefake

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
)

const provider = "projects/1/locations/global/workloadIdentityPools/p/providers/gh"

func exchange(t *testing.T, s *Server, audience, subject string) (int, map[string]any) {
	t.Helper()
	form := url.Values{
		"grant_type":           {GrantTypeTokenExchange},
		"audience":             {audience},
		"scope":                {ScopeCloudPlatform},
		"requested_token_type": {TokenTypeAccessToken},
		"subject_token":        {subject},
		"subject_token_type":   {TokenTypeJWT},
	}
	resp, err := http.PostForm(s.TokenURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func generate(t *testing.T, s *Server, bearer, sa string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.ImpersonationURL(sa), strings.NewReader(`{"scope":["`+ScopeCloudPlatform+`"],"lifetime":"3600s"}`))
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func subject(aud string) string {
	return githubfake.NewJWT(map[string]any{"iss": githubfake.DefaultIssuer, "aud": aud, "exp": time.Now().Add(time.Minute).Unix()})
}

func TestTokenExchangeAndImpersonation(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Provider: provider, ServiceAccounts: []string{"sa@p.iam.gserviceaccount.com"}})
	status, body := exchange(t, s, "//iam.googleapis.com/"+provider, subject("https://iam.googleapis.com/"+provider))
	if status != http.StatusOK || body["token_type"] != "Bearer" || body["issued_token_type"] != TokenTypeAccessToken || body["expires_in"] != float64(3600) {
		t.Fatalf("exchange = %d %v", status, body)
	}
	fed := body["access_token"].(string)
	status, body = generate(t, s, fed, "sa@p.iam.gserviceaccount.com")
	if status != http.StatusOK || s.AccessTokens()[body["accessToken"].(string)] != "sa@p.iam.gserviceaccount.com" {
		t.Fatalf("generateAccessToken = %d %v", status, body)
	}
	if _, err := time.Parse(time.RFC3339, body["expireTime"].(string)); err != nil {
		t.Errorf("expireTime: %v", err)
	}

	status, body = generate(t, s, fed, "other@p.iam.gserviceaccount.com")
	e, _ := body["error"].(map[string]any)
	if status != http.StatusForbidden || e["status"] != "PERMISSION_DENIED" || e["code"] != float64(403) {
		t.Errorf("impersonating another account = %d %v", status, body)
	}
	status, body = generate(t, s, "not-issued", "sa@p.iam.gserviceaccount.com")
	if e, _ := body["error"].(map[string]any); status != http.StatusUnauthorized || e["status"] != "UNAUTHENTICATED" {
		t.Errorf("unknown bearer = %d %v", status, body)
	}
}

func TestTokenExchangeErrors(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Provider: provider})
	for _, tt := range []struct {
		name, audience, subject, want string
		fault                         *Fault
	}{
		{"wrong token audience", "//iam.googleapis.com/" + provider, subject("https://example.com"), "invalid_grant", nil},
		{"unknown provider", "//iam.googleapis.com/projects/2/locations/global/workloadIdentityPools/x/providers/y", subject("https://iam.googleapis.com/" + provider), "invalid_target", nil},
		{"not a JWT", "//iam.googleapis.com/" + provider, "opaque", "invalid_grant", nil},
		{"injected", "//iam.googleapis.com/" + provider, subject("https://iam.googleapis.com/" + provider), "invalid_grant", &Fault{Endpoint: EndpointToken, Kind: "invalid_grant", Times: 1}},
	} {
		if tt.fault != nil {
			s.Inject(*tt.fault)
		}
		status, body := exchange(t, s, tt.audience, tt.subject)
		if status != http.StatusBadRequest || body["error"] != tt.want || body["error_description"] == "" {
			t.Errorf("%s: %d %v, want 400 %s", tt.name, status, body, tt.want)
		}
	}
	// The injected fault was used up.
	if status, _ := exchange(t, s, "//iam.googleapis.com/"+provider, subject("https://iam.googleapis.com/"+provider)); status != http.StatusOK {
		t.Errorf("after the fault: %d", status)
	}
}
