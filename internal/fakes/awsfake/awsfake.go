// Package awsfake is an in-process fake of AWS STS (AssumeRoleWithWebIdentity) and ECR (auth token, repositories) speaking their wire protocols, for tests of code built on aws-sdk-go-v2.
package awsfake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/fakes"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
)

// DefaultAccount is the account ID the fake answers for unless Options.Account is set.
const DefaultAccount = "123456789012"

// ecrTargetPrefix is the X-Amz-Target prefix of ECR's awsJson1.1 API.
const ecrTargetPrefix = "AmazonEC2ContainerRegistry_V20150921."

// Error codes the fake answers with; tests inject them with Fault.
const (
	CodeThrottlingECR           = "ThrottlingException" // ECR throttling; the SDK retries it
	CodeThrottlingSTS           = "Throttling"          // STS throttling; the SDK retries it
	CodeInvalidIdentityToken    = "InvalidIdentityToken"
	CodeExpiredToken            = "ExpiredTokenException"
	CodeAccessDeniedSTS         = "AccessDenied"
	CodeAccessDeniedECR         = "AccessDeniedException"
	CodeRepositoryNotFound      = "RepositoryNotFoundException"
	CodeRepositoryAlreadyExists = "RepositoryAlreadyExistsException"
	CodeUnrecognizedClient      = "UnrecognizedClientException"
	CodeInvalidSignature        = "InvalidSignatureException"
	CodeMissingAuthentication   = "MissingAuthenticationTokenException"
)

// Options configures a Server; the zero value is usable.
type Options struct {
	// Account is the AWS account of the registry and roles; default DefaultAccount.
	Account string
	// ECRPassword is the registry password GetAuthorizationToken hands out for user AWS; default random.
	ECRPassword string
	// Credentials maps access key IDs to secret keys the fake accepts, and then checks every signature
	// against them; when empty, any signed call passes (the signature is not checked). Keys issued by
	// AssumeRoleWithWebIdentity are always known.
	Credentials map[string]string
	// OIDCIssuer is the issuer of the IAM OIDC identity provider; default GitHub's.
	OIDCIssuer string
	// OIDCAudience is the audience the identity provider accepts; default "sts.amazonaws.com".
	OIDCAudience string
	// TrustRole decides whether a role's trust policy admits a token (its decoded claims); nil admits all.
	TrustRole func(roleARN string, claims map[string]any) bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Call is one request the fake answered.
type Call struct {
	Service     string // "sts" or "ecr"
	Action      string // e.g. "AssumeRoleWithWebIdentity", "GetAuthorizationToken"
	Region      string // from the SigV4 credential scope; "" for unsigned calls
	AccessKeyID string // from the SigV4 credential scope; "" for unsigned calls
	// Input is the decoded request: *sts.AssumeRoleWithWebIdentityInput, *ecr.GetAuthorizationTokenInput,
	// *ecr.DescribeRepositoriesInput or *ecr.CreateRepositoryInput (nil if it did not decode).
	Input     any
	ErrorCode string // "" when the call succeeded
}

// Fault makes calls fail the way AWS fails them.
type Fault struct {
	Action  string // operation name; "" matches every operation
	Code    string // AWS error code, e.g. CodeThrottlingECR
	Message string // default: what AWS says for Code
	Status  int    // HTTP status; default 400 (403 for STS AccessDenied)
	Times   int    // calls to fail; 0 fails every call until ClearFaults
}

// Throttle fails the next times calls of an ECR action (or STS AssumeRoleWithWebIdentity) with throttling.
func Throttle(action string, times int) Fault {
	code := CodeThrottlingECR
	if action == "AssumeRoleWithWebIdentity" {
		code = CodeThrottlingSTS
	}
	return Fault{Action: action, Code: code, Message: "Rate exceeded", Times: times}
}

// InvalidIdentityToken rejects the next times web identity tokens as STS does for a bad OIDC token.
func InvalidIdentityToken(times int) Fault {
	return Fault{Action: "AssumeRoleWithWebIdentity", Code: CodeInvalidIdentityToken, Times: times}
}

// AccessDenied denies the next times calls of action (STS or ECR) as IAM does.
func AccessDenied(action string, times int) Fault {
	code := CodeAccessDeniedECR
	if action == "AssumeRoleWithWebIdentity" {
		code = CodeAccessDeniedSTS
	}
	return Fault{Action: action, Code: code, Times: times}
}

// Server is a fake of STS and ECR: an http.Handler, served on loopback by Start. Point the SDK at it
// with AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_ECR (see Env).
type Server struct {
	// URL is the base URL of the running server (set by Start).
	URL string

	opts Options

	mu     sync.Mutex
	repos  map[string]map[string]ecrtypes.Repository // region -> name -> repository
	issued map[string]aws.Credentials                // access key ID -> credentials issued by STS
	calls  []Call
	faults fakes.Faults[Fault]
	seq    int
}

// New returns a fake STS and ECR handler; use Start to serve it.
func New(opts Options) *Server {
	if opts.Account == "" {
		opts.Account = DefaultAccount
	}
	if opts.ECRPassword == "" {
		opts.ECRPassword = "ecr-" + randomString(32)
	}
	if opts.OIDCIssuer == "" {
		opts.OIDCIssuer = githubfake.DefaultIssuer
	}
	if opts.OIDCAudience == "" {
		opts.OIDCAudience = "sts.amazonaws.com"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts, repos: map[string]map[string]ecrtypes.Repository{}, issued: map[string]aws.Credentials{}}
}

// Start serves a new fake on loopback until tb ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	s.URL = fakes.Serve(tb, s)
	return s
}

// Env returns the endpoint overrides that point the SDK's STS and ECR clients at the fake.
func (s *Server) Env() map[string]string {
	return map[string]string{"AWS_ENDPOINT_URL_STS": s.URL, "AWS_ENDPOINT_URL_ECR": s.URL}
}

// Account is the account ID the fake answers for.
func (s *Server) Account() string { return s.opts.Account }

// ECRPassword is the registry password GetAuthorizationToken hands out (user "AWS").
func (s *Server) ECRPassword() string { return s.opts.ECRPassword }

// RegistryHost is the ECR registry host name of the fake account in region.
func (s *Server) RegistryHost(region string) string {
	return s.opts.Account + ".dkr.ecr." + region + ".amazonaws.com"
}

// AddRepository creates a repository in region, as if made outside the test.
func (s *Server) AddRepository(region, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.createRepo(region, &ecr.CreateRepositoryInput{RepositoryName: &name})
}

// Repositories lists the repository names in region, sorted.
func (s *Server) Repositories(region string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.repos[region] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Calls returns the calls answered so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallCount counts the calls of action (failed ones included).
func (s *Server) CallCount(action string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Action == action {
			n++
		}
	}
	return n
}

// IssuedCredentials returns the credentials AssumeRoleWithWebIdentity handed out.
func (s *Server) IssuedCredentials() []aws.Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []aws.Credentials
	for _, c := range s.issued {
		out = append(out, c)
	}
	return out
}

// Inject adds a fault; faults are consulted in the order added.
func (s *Server) Inject(f Fault) {
	s.faults.Add(f.Action, f.Times, f)
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.faults.Clear()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		s.serveECR(w, r, body, target)
		return
	}
	s.serveSTS(w, r, body)
}

// fault returns the first injected fault matching action, consuming one use of it.
func (s *Server) fault(action string) *Fault {
	if f, ok := s.faults.Take(action); ok {
		return &f
	}
	return nil
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("fa4e0000-0000-4000-8000-%012d", s.seq)
}

// --- STS (query protocol) ---

type stsErrorResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Error   struct {
		Type    string
		Code    string
		Message string
	}
	RequestID string `xml:"RequestId"`
}

type assumeRoleWithWebIdentityResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
	Result  struct {
		SubjectFromWebIdentityToken string
		Audience                    string
		AssumedRoleUser             *ststypes.AssumedRoleUser
		Credentials                 *ststypes.Credentials
		Provider                    string
	} `xml:"AssumeRoleWithWebIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

var (
	roleARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)$`)
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request, body []byte) {
	call := Call{Service: "sts"}
	fail := func(status int, code, msg string) {
		call.ErrorCode = code
		s.record(call)
		s.writeSTSError(w, status, code, msg)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusBadRequest, "InvalidAction", "STS takes form-encoded POST requests")
		return
	}
	form, err := parseQuery(string(body))
	if err != nil {
		fail(http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	call.Action = form.Get("Action")
	if call.Action != "AssumeRoleWithWebIdentity" || form.Get("Version") != "2011-06-15" {
		fail(http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", call.Action, form.Get("Version")))
		return
	}
	in := &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(form.Get("RoleArn")),
		RoleSessionName:  aws.String(form.Get("RoleSessionName")),
		WebIdentityToken: aws.String(form.Get("WebIdentityToken")),
	}
	duration := time.Hour
	if v := form.Get("DurationSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 900 || n > 43200 {
			fail(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", v))
			return
		}
		in.DurationSeconds = aws.Int32(int32(n))
		duration = time.Duration(n) * time.Second
	}
	call.Input = in
	if f := s.fault(call.Action); f != nil {
		status, msg := f.Status, f.Message
		if status == 0 {
			status = http.StatusBadRequest
			if f.Code == CodeAccessDeniedSTS {
				status = http.StatusForbidden
			}
		}
		if msg == "" {
			msg = stsDefaultMessage(f.Code)
		}
		fail(status, f.Code, msg)
		return
	}
	m := roleARNPattern.FindStringSubmatch(*in.RoleArn)
	if m == nil {
		fail(http.StatusBadRequest, "ValidationError", "Request ARN is invalid")
		return
	}
	roleAccount, roleName := m[1], m[2]
	if !sessionNamePattern.MatchString(*in.RoleSessionName) {
		fail(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", *in.RoleSessionName))
		return
	}
	claims, err := githubfake.ParseJWT(*in.WebIdentityToken)
	if err != nil {
		fail(http.StatusBadRequest, CodeInvalidIdentityToken, "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)")
		return
	}
	now := s.opts.Now()
	switch {
	case githubfake.ClaimString(claims, "iss") != s.opts.OIDCIssuer:
		fail(http.StatusBadRequest, CodeInvalidIdentityToken, fmt.Sprintf("No OpenIDConnect provider found in your account for %s", githubfake.ClaimString(claims, "iss")))
		return
	case githubfake.ClaimString(claims, "aud") != s.opts.OIDCAudience:
		fail(http.StatusBadRequest, CodeInvalidIdentityToken, "Incorrect token audience")
		return
	case !githubfake.ClaimTime(claims, "exp").IsZero() && !now.Before(githubfake.ClaimTime(claims, "exp")):
		fail(http.StatusBadRequest, CodeExpiredToken, fmt.Sprintf("Token expired: current date/time %d must be before the expiration date/time %d", now.Unix(), githubfake.ClaimTime(claims, "exp").Unix()))
		return
	case roleAccount != s.opts.Account || (s.opts.TrustRole != nil && !s.opts.TrustRole(*in.RoleArn, claims)):
		fail(http.StatusForbidden, CodeAccessDeniedSTS, stsDefaultMessage(CodeAccessDeniedSTS))
		return
	}
	creds := aws.Credentials{
		AccessKeyID:     "ASIA" + strings.ToUpper(randomString(16)),
		SecretAccessKey: randomString(40),
		SessionToken:    "FwoGZXIvYXdzEFAKE" + randomString(120),
		CanExpire:       true,
		Expires:         now.Add(duration).UTC().Truncate(time.Second),
		AccountID:       roleAccount,
		Source:          *in.RoleArn,
	}
	s.mu.Lock()
	s.issued[creds.AccessKeyID] = creds
	s.mu.Unlock()

	var resp assumeRoleWithWebIdentityResponse
	resp.Result.SubjectFromWebIdentityToken = githubfake.ClaimString(claims, "sub")
	resp.Result.Audience = githubfake.ClaimString(claims, "aud")
	resp.Result.Provider = strings.TrimPrefix(s.opts.OIDCIssuer, "https://")
	resp.Result.AssumedRoleUser = &ststypes.AssumedRoleUser{
		Arn:           aws.String(fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", roleAccount, roleName, *in.RoleSessionName)),
		AssumedRoleId: aws.String("AROA" + strings.ToUpper(randomString(17)) + ":" + *in.RoleSessionName),
	}
	resp.Result.Credentials = &ststypes.Credentials{
		AccessKeyId:     aws.String(creds.AccessKeyID),
		SecretAccessKey: aws.String(creds.SecretAccessKey),
		SessionToken:    aws.String(creds.SessionToken),
		Expiration:      aws.Time(creds.Expires),
	}
	resp.RequestID = s.requestID()
	s.record(call)
	writeXML(w, http.StatusOK, resp)
}

func (s *Server) writeSTSError(w http.ResponseWriter, status int, code, msg string) {
	var e stsErrorResponse
	e.Error.Type = "Sender"
	if status >= 500 {
		e.Error.Type = "Receiver"
	}
	e.Error.Code, e.Error.Message = code, msg
	e.RequestID = s.requestID()
	writeXML(w, status, e)
}

func stsDefaultMessage(code string) string {
	switch code {
	case CodeAccessDeniedSTS:
		return "Not authorized to perform sts:AssumeRoleWithWebIdentity"
	case CodeInvalidIdentityToken:
		return "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements"
	case CodeThrottlingSTS:
		return "Rate exceeded"
	case CodeExpiredToken:
		return "Token expired"
	}
	return code
}

func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(v)
}

// --- ECR (awsJson1.1) ---

func (s *Server) serveECR(w http.ResponseWriter, r *http.Request, body []byte, target string) {
	call := Call{Service: "ecr", Action: strings.TrimPrefix(target, ecrTargetPrefix)}
	fail := func(code, msg string) {
		call.ErrorCode = code
		s.record(call)
		s.writeECRError(w, http.StatusBadRequest, code, msg)
	}
	if !strings.HasPrefix(target, ecrTargetPrefix) || r.Method != http.MethodPost {
		fail("UnknownOperationException", "")
		return
	}
	sig, err := parseSigV4(r.Header.Get("Authorization"))
	if err != nil {
		fail(CodeMissingAuthentication, "Missing Authentication Token")
		return
	}
	call.Region, call.AccessKeyID = sig.region, sig.accessKeyID
	if sig.service != "ecr" {
		fail(CodeInvalidSignature, "Credential should be scoped to correct service: 'ecr'. ")
		return
	}
	if code, msg := s.checkSignature(r, body, sig); code != "" {
		fail(code, msg)
		return
	}

	var in any
	switch call.Action {
	case "GetAuthorizationToken":
		in = &ecr.GetAuthorizationTokenInput{}
	case "DescribeRepositories":
		in = &ecr.DescribeRepositoriesInput{}
	case "CreateRepository":
		in = &ecr.CreateRepositoryInput{}
	default:
		fail("UnknownOperationException", "")
		return
	}
	// encoding/json matches the camelCase wire names to the SDK's PascalCase fields.
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, in); err != nil {
			fail("SerializationException", err.Error())
			return
		}
	}
	call.Input = in
	if f := s.fault(call.Action); f != nil {
		status, msg := f.Status, f.Message
		if status == 0 {
			status = http.StatusBadRequest
		}
		if msg == "" {
			msg = s.ecrDefaultMessage(f.Code, call)
		}
		call.ErrorCode = f.Code
		s.record(call)
		s.writeECRError(w, status, f.Code, msg)
		return
	}

	var out any
	switch in := in.(type) {
	case *ecr.GetAuthorizationTokenInput:
		expires := s.opts.Now().Add(12 * time.Hour).Truncate(time.Millisecond)
		out = &ecr.GetAuthorizationTokenOutput{AuthorizationData: []ecrtypes.AuthorizationData{{
			AuthorizationToken: aws.String(base64.StdEncoding.EncodeToString([]byte("AWS:" + s.opts.ECRPassword))),
			ExpiresAt:          &expires,
			ProxyEndpoint:      aws.String("https://" + s.RegistryHost(call.Region)),
		}}}
	case *ecr.DescribeRepositoriesInput:
		repos, missing := s.describe(call.Region, in.RepositoryNames)
		if missing != "" {
			fail(CodeRepositoryNotFound, fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", missing, s.registryID(in.RegistryId)))
			return
		}
		out = &ecr.DescribeRepositoriesOutput{Repositories: repos}
	case *ecr.CreateRepositoryInput:
		name := aws.ToString(in.RepositoryName)
		if !validRepoName(name) {
			fail("InvalidParameterException", "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''")
			return
		}
		s.mu.Lock()
		repo, created := s.createRepo(call.Region, in)
		s.mu.Unlock()
		if !created {
			fail(CodeRepositoryAlreadyExists, fmt.Sprintf("The repository with name '%s' already exists in the registry with id '%s'", name, s.registryID(in.RegistryId)))
			return
		}
		out = &ecr.CreateRepositoryOutput{Repository: &repo}
	}
	s.record(call)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", s.requestID())
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(fakes.AWSJSON(out))
}

func (s *Server) registryID(id *string) string {
	if id != nil && *id != "" {
		return *id
	}
	return s.opts.Account
}

func (s *Server) describe(region string, names []string) ([]ecrtypes.Repository, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ecrtypes.Repository
	if len(names) == 0 {
		for _, repo := range s.repos[region] {
			out = append(out, repo)
		}
		sort.Slice(out, func(i, j int) bool { return *out[i].RepositoryName < *out[j].RepositoryName })
		return out, ""
	}
	for _, n := range names {
		repo, ok := s.repos[region][n]
		if !ok {
			return nil, n
		}
		out = append(out, repo)
	}
	return out, ""
}

// createRepo adds a repository; the caller holds s.mu.
func (s *Server) createRepo(region string, in *ecr.CreateRepositoryInput) (ecrtypes.Repository, bool) {
	name := aws.ToString(in.RepositoryName)
	if s.repos[region] == nil {
		s.repos[region] = map[string]ecrtypes.Repository{}
	}
	if repo, ok := s.repos[region][name]; ok {
		return repo, false
	}
	mutability := in.ImageTagMutability
	if mutability == "" {
		mutability = ecrtypes.ImageTagMutabilityMutable
	}
	scanning := in.ImageScanningConfiguration
	if scanning == nil {
		scanning = &ecrtypes.ImageScanningConfiguration{}
	}
	encryption := in.EncryptionConfiguration
	if encryption == nil {
		encryption = &ecrtypes.EncryptionConfiguration{EncryptionType: ecrtypes.EncryptionTypeAes256}
	}
	created := s.opts.Now().Truncate(time.Second)
	repo := ecrtypes.Repository{
		CreatedAt:                  &created,
		EncryptionConfiguration:    encryption,
		ImageScanningConfiguration: scanning,
		ImageTagMutability:         mutability,
		RegistryId:                 aws.String(s.opts.Account),
		RepositoryArn:              aws.String(fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", region, s.opts.Account, name)),
		RepositoryName:             aws.String(name),
		RepositoryUri:              aws.String(s.RegistryHost(region) + "/" + name),
	}
	s.repos[region][name] = repo
	return repo, true
}

var repoNamePattern = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

func validRepoName(n string) bool {
	return len(n) >= 2 && len(n) <= 256 && repoNamePattern.MatchString(n)
}

func (s *Server) ecrDefaultMessage(code string, call Call) string {
	switch code {
	case CodeAccessDeniedECR:
		who := "arn:aws:iam::" + s.opts.Account + ":user/" + call.AccessKeyID
		s.mu.Lock()
		if c, ok := s.issued[call.AccessKeyID]; ok {
			who = strings.Replace(strings.Replace(c.Source, ":iam::", ":sts::", 1), ":role/", ":assumed-role/", 1) + "/session"
		}
		s.mu.Unlock()
		return fmt.Sprintf("User: %s is not authorized to perform: ecr:%s on resource: * because no identity-based policy allows the ecr:%s action", who, call.Action, call.Action)
	case CodeThrottlingECR:
		return "Rate exceeded"
	case CodeUnrecognizedClient:
		return "The security token included in the request is invalid."
	}
	return code
}

func (s *Server) writeECRError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", s.requestID())
	w.WriteHeader(status)
	body := map[string]string{"__type": code}
	if msg != "" {
		body["message"] = msg
	}
	_ = json.NewEncoder(w).Encode(body)
}

// --- SigV4 ---

type sigV4 struct {
	accessKeyID, date, region, service string
	signedHeaders                      []string
}

// parseSigV4 reads "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ecr/aws4_request, SignedHeaders=a;b, Signature=hex".
func parseSigV4(h string) (sigV4, error) {
	var sig sigV4
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return sig, fmt.Errorf("not a SigV4 Authorization header")
	}
	var haveSignature bool
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			scope := strings.Split(v, "/")
			if len(scope) != 5 || scope[4] != "aws4_request" {
				return sig, fmt.Errorf("malformed credential scope %q", v)
			}
			sig.accessKeyID, sig.date, sig.region, sig.service = scope[0], scope[1], scope[2], scope[3]
		case "SignedHeaders":
			sig.signedHeaders = strings.Split(v, ";")
		case "Signature":
			haveSignature = v != ""
		}
	}
	if sig.accessKeyID == "" || len(sig.signedHeaders) == 0 || !haveSignature {
		return sig, fmt.Errorf("incomplete SigV4 Authorization header")
	}
	return sig, nil
}

// checkSignature recomputes the signature with the SDK's signer when the fake knows the secret key;
// it returns the AWS error code and message for a request AWS would reject.
func (s *Server) checkSignature(r *http.Request, body []byte, sig sigV4) (string, string) {
	s.mu.Lock()
	creds, issued := s.issued[sig.accessKeyID]
	s.mu.Unlock()
	if !issued {
		secret, ok := s.opts.Credentials[sig.accessKeyID]
		if !ok {
			if len(s.opts.Credentials) == 0 {
				return "", ""
			}
			return CodeUnrecognizedClient, "The security token included in the request is invalid."
		}
		creds = aws.Credentials{AccessKeyID: sig.accessKeyID, SecretAccessKey: secret}
	}
	if issued {
		if r.Header.Get("X-Amz-Security-Token") != creds.SessionToken {
			return CodeUnrecognizedClient, "The security token included in the request is invalid."
		}
		if !s.opts.Now().Before(creds.Expires) {
			return "ExpiredTokenException", "The security token included in the request is expired"
		}
	}
	signingTime, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
	}
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return CodeInvalidSignature, err.Error()
	}
	for _, h := range sig.signedHeaders {
		if h == "host" || h == "content-length" {
			continue
		}
		req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), sig.service, sig.region, signingTime); err != nil {
		return CodeInvalidSignature, err.Error()
	}
	if req.Header.Get("Authorization") != r.Header.Get("Authorization") {
		return CodeInvalidSignature, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	}
	return "", ""
}

// IssuedOr returns a check of access key IDs for a fake service (such as
// ecsfake's AccessKeys) that accepts the keys this STS issued and extra.
func (s *Server) IssuedOr(extra ...string) func(id string) bool {
	return func(id string) bool {
		if slices.Contains(extra, id) {
			return true
		}
		for _, c := range s.IssuedCredentials() {
			if c.AccessKeyID == id {
				return true
			}
		}
		return false
	}
}
