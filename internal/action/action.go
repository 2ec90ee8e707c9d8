package action

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/gantry-dev/gantry/internal/input"
	"github.com/gantry-dev/gantry/internal/markdown"
	"github.com/sethvargo/go-githubactions"
)

// Env is the process environment of a command: variables, streams and, for
// local CLI use, the flag values that stand in for inputs.
type Env struct {
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer
	// Flags holds CLI flag values by input name; a repeated flag is a list.
	Flags map[string][]string
	// Transport carries the command's HTTP traffic to registries and
	// services; nil means http.DefaultTransport. Tests route it to loopback.
	Transport http.RoundTripper
}

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// OSEnv is the environment of the running process.
func OSEnv() Env {
	return Env{Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr}
}

// Action is one run of a command. In GitHub Actions (GITHUB_ACTIONS=true) it
// speaks workflow commands; elsewhere it logs plain lines to stderr and prints
// outputs as name=value on stdout.
type Action struct {
	spec      *Spec
	env       Env
	inActions bool
	gha       *githubactions.Action
	log       io.Writer

	mu      sync.Mutex
	logMu   sync.Mutex // one log line at a time: commands log from many goroutines
	masks   []string
	outputs map[string]string
	summary strings.Builder
}

// New starts a run of spec in env.
func New(spec *Spec, env Env) *Action {
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	a := &Action{spec: spec, env: env, outputs: map[string]string{}}
	a.inActions = env.getenv("GITHUB_ACTIONS") == "true"
	a.log = env.Stderr
	if a.inActions {
		// The runner reads workflow commands from stdout.
		a.log = env.Stdout
	}
	a.gha = githubactions.New(githubactions.WithWriter(&redactor{a: a, w: a.log}), githubactions.WithGetenv(env.getenv))
	return a
}

// Spec returns the command's declaration.
func (a *Action) Spec() *Spec { return a.spec }

// InActions reports whether the command runs inside a GitHub Actions job.
func (a *Action) InActions() bool { return a.inActions }

// Transport returns the HTTP transport commands use.
func (a *Action) Transport() http.RoundTripper {
	if a.env.Transport == nil {
		return http.DefaultTransport
	}
	return a.env.Transport
}

// Getenv reads an environment variable of the run.
func (a *Action) Getenv(k string) string { return a.env.getenv(k) }

// Inputs returns a reader for the command's inputs.
func (a *Action) Inputs() *Inputs { return &Inputs{a: a} }

// GitHub returns the go-githubactions handle, for its OIDC token helper.
func (a *Action) GitHub() *githubactions.Action { return a.gha }

// Mask hides secret from every later log line: in Actions it issues
// ::add-mask:: for the whole secret and for each of its lines (escaped, so
// that the runner registers exactly these strings), and it redacts them from
// gantry's own output everywhere.
func (a *Action) Mask(secret string) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return
	}
	parts := []string{secret}
	for _, line := range strings.Split(secret, "\n") {
		if line = strings.TrimSpace(line); line != "" && line != secret {
			parts = append(parts, line)
		}
	}
	a.mu.Lock()
	var added []string
	for _, p := range parts {
		if !slices.Contains(a.masks, p) {
			a.masks = append(a.masks, p)
			added = append(added, p)
		}
	}
	// Longest first, so a secret that contains another is redacted whole.
	sort.Slice(a.masks, func(i, j int) bool { return len(a.masks[i]) > len(a.masks[j]) })
	a.mu.Unlock()
	if a.inActions && len(added) > 0 {
		// Written past the redactor, which would hide the secret being masked.
		a.logMu.Lock()
		for _, p := range added {
			fmt.Fprintf(a.log, "::add-mask::%s\n", EscapeCommandData(p))
		}
		a.logMu.Unlock()
	}
}

// EscapeCommandData escapes a workflow command's data the way the runner
// unescapes it: % as %25, CR as %0D, LF as %0A.
func EscapeCommandData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// minMaskLen is the shortest value MaskEnv masks: masking "1" or "on" would
// garble every log line and protect nothing.
const minMaskLen = 4

// secretWords are the parts of a variable name that mark its value secret.
var secretWords = []string{"TOKEN", "PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS", "AUTH", "PRIVATE", "CERT", "DSN", "SALT", "SIGNATURE", "COOKIE", "SESSION"}

// SecretEnvName reports whether an environment variable's name says its value
// is secret: a part of the name between _, - or . is one of secretWords
// (DB_PASSWORD, API-KEY, GITHUB_TOKEN), or the name contains TOKEN, SECRET,
// PASSWORD or CREDENTIAL anywhere (GHTOKEN).
func SecretEnvName(name string) bool {
	up := strings.ToUpper(name)
	for _, w := range []string{"TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"} {
		if strings.Contains(up, w) {
			return true
		}
	}
	for _, part := range strings.FieldsFunc(up, func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		if slices.Contains(secretWords, part) {
			return true
		}
	}
	return false
}

// MaskEnv masks what is secret in an environment variable, and only that:
// the whole value when SecretEnvName(name), and the password of a URL in any
// value (postgres://user:pw@db); never a value shorter than 4 characters.
func (a *Action) MaskEnv(name, value string) {
	value = strings.TrimSpace(value)
	if len(value) < minMaskLen {
		return
	}
	if SecretEnvName(name) {
		a.Mask(value)
		return
	}
	for _, m := range urlPasswordRE.FindAllStringSubmatch(value, -1) {
		if len(m[1]) >= minMaskLen {
			a.Mask(m[1])
		}
	}
}

// urlPasswordRE finds the password in scheme://user:password@host.
var urlPasswordRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*:([^@/\s]+)@`)

// Redact replaces every masked secret in s with ***.
func (a *Action) Redact(s string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range a.masks {
		s = strings.ReplaceAll(s, m, "***")
	}
	return s
}

// redactor is the writer under every log line: it redacts masked secrets
// before anything leaves the process.
type redactor struct {
	a *Action
	w io.Writer
}

func (r *redactor) Write(p []byte) (int, error) {
	line := r.a.Redact(string(p))
	r.a.logMu.Lock()
	defer r.a.logMu.Unlock()
	if _, err := io.WriteString(r.w, line); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Infof logs a line.
func (a *Action) Infof(format string, args ...any) {
	fmt.Fprintf(&redactor{a: a, w: a.log}, strings.TrimRight(format, "\n")+"\n", args...)
}

// Warnf logs a warning: an annotation in Actions.
func (a *Action) Warnf(format string, args ...any) {
	if a.inActions {
		a.gha.Warningf(format, args...)
		return
	}
	a.Infof("warning: "+format, args...)
}

// Errorf logs an error annotation titled title (an input name or the command).
func (a *Action) Errorf(title, format string, args ...any) {
	if a.inActions {
		a.gha.WithFieldsMap(map[string]string{"title": title}).Errorf(format, args...)
		return
	}
	a.Infof("error: "+format, args...)
}

// Group runs fn inside a folded log group titled title.
func (a *Action) Group(title string, fn func() error) error {
	if a.inActions {
		a.gha.Group(title)
		defer a.gha.EndGroup()
	} else {
		a.Infof("== %s", title)
	}
	return fn()
}

// Untrusted runs fn with a writer for another program's output, logged line
// by line with secrets redacted. In Actions the lines are fenced by
// ::stop-commands::, so a line that looks like a workflow command (a script
// printing "::add-mask::" or "::error::") is shown, never obeyed.
func (a *Action) Untrusted(fn func(w io.Writer) error) error {
	if !a.inActions {
		return fn(&lineLog{a: a})
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	token := hex.EncodeToString(b)
	a.logMu.Lock()
	fmt.Fprintf(a.log, "::stop-commands::%s\n", token)
	a.logMu.Unlock()
	defer func() {
		a.logMu.Lock()
		fmt.Fprintf(a.log, "::%s::\n", token)
		a.logMu.Unlock()
	}()
	return fn(&lineLog{a: a})
}

// lineLog logs each Write as one or more lines.
type lineLog struct{ a *Action }

func (l *lineLog) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.a.Infof("%s", strings.TrimRight(line, "\r"))
	}
	return len(p), nil
}

// Logf returns a printf-style logger for internal packages.
func (a *Action) Logf() func(string, ...any) { return a.Infof }

// SetOutput records an output. Outputs are written by Finish, each with a
// random heredoc delimiter so that no value can inject another output.
func (a *Action) SetOutput(name, value string) {
	if !a.spec.HasOutput(name) {
		panic(fmt.Sprintf("action %s: output %q is not declared", a.spec.Name, name))
	}
	a.mu.Lock()
	a.outputs[name] = value
	a.mu.Unlock()
}

// Output returns an output set earlier, for tests and chaining in-process.
func (a *Action) Output(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.outputs[name]
}

// Summary returns the Markdown job summary being written.
func (a *Action) Summary() *strings.Builder { return &a.summary }

// maxSummary is GitHub's limit for one step's summary (1 MiB), less room for
// the truncation note.
const maxSummary = 1<<20 - 1024

// Finish writes the outputs and the job summary. Locally, outputs go to
// stdout as name=value and the summary to $GITHUB_STEP_SUMMARY when set, else
// to stderr.
func (a *Action) Finish() error {
	var errs []error
	a.mu.Lock()
	names := make([]string, 0, len(a.outputs))
	for n := range a.outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	outputs := a.outputs
	a.mu.Unlock()

	if path := a.env.getenv("GITHUB_OUTPUT"); path != "" {
		var b strings.Builder
		for _, n := range names {
			if err := writeHeredoc(&b, n, outputs[n]); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, appendFile(path, b.String()))
	} else {
		for _, n := range names {
			v := a.Redact(outputs[n])
			if strings.Contains(v, "\n") {
				_ = writeHeredoc(a.env.Stdout, n, v)
			} else {
				fmt.Fprintf(a.env.Stdout, "%s=%s\n", n, v)
			}
		}
	}

	summary := a.Redact(a.summary.String())
	if len(summary) > maxSummary {
		summary = summary[:maxSummary] + "\n\n_(summary truncated at GitHub's 1 MiB limit)_\n"
	}
	if summary != "" {
		if path := a.env.getenv("GITHUB_STEP_SUMMARY"); path != "" {
			errs = append(errs, appendFile(path, summary))
		} else {
			fmt.Fprintf(a.env.Stderr, "\n%s", summary)
		}
	}
	return errors.Join(errs...)
}

// writeHeredoc writes name<<DELIM / value / DELIM with a fresh random
// delimiter that does not occur in value.
func writeHeredoc(w io.Writer, name, value string) error {
	var delim string
	for {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		delim = "gantry_" + hex.EncodeToString(b)
		if !strings.Contains(value, delim) {
			break
		}
	}
	_, err := fmt.Fprintf(w, "%s<<%s\n%s\n%s\n", name, delim, value, delim)
	return err
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	_, werr := f.WriteString(s)
	return errors.Join(werr, f.Close())
}

// Fail reports err as the step's failure: an error annotation titled with the
// input name for input errors, a failure line in the summary, exit code 1.
func (a *Action) Fail(err error) int {
	if es := input.All(err); len(es) > 1 {
		// Every bad input on its own annotation, so that all are fixed at once.
		fmt.Fprintf(&a.summary, "\n**%s failed:** %d inputs are not valid:\n\n", a.spec.Name, len(es))
		for _, e := range es {
			msg := oneLine(a.spec.Name + ": " + e.Error())
			a.Errorf(e.Input, "%s", msg)
			fmt.Fprintf(&a.summary, "- %s\n", markdown.Escape(a.Redact(msg)))
		}
		return 1
	}
	var ie *InputError
	title := a.spec.Name
	if errors.As(err, &ie) {
		title = ie.Input
	}
	msg := oneLine(a.spec.Name + ": " + err.Error())
	a.Errorf(title, "%s", msg)
	fmt.Fprintf(&a.summary, "\n**%s failed:** %s\n", a.spec.Name, markdown.Escape(a.Redact(msg)))
	return 1
}

// oneLine folds a message onto one line: an annotation must be read at a glance.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Run runs fn as the command's body with a context that SIGINT/SIGTERM
// cancel (see signals.go), then writes outputs and summary. It returns the
// process exit code.
func (a *Action) Run(ctx context.Context, fn func(ctx context.Context) error) int {
	ctx, stop := notifyContext(ctx)
	defer stop()
	err := fn(ctx)
	code := 0
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = fmt.Errorf("cancelled: %w", err)
		}
		code = a.Fail(err)
	}
	if ferr := a.Finish(); ferr != nil {
		a.Errorf(a.spec.Name, "writing outputs: %v", ferr)
		code = 1
	}
	return code
}

// ParseOutputs reads a GITHUB_OUTPUT file (name=value and name<<DELIM
// blocks), as a later step would see it.
func ParseOutputs(data string) (map[string]string, error) {
	out := map[string]string{}
	lines := strings.Split(data, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if line == "" {
			continue
		}
		if name, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(name, "=") {
			var val []string
			j := i + 1
			for ; j < len(lines) && lines[j] != delim; j++ {
				val = append(val, lines[j])
			}
			if j == len(lines) {
				return nil, fmt.Errorf("output %q: delimiter %q never closes", name, delim)
			}
			out[name] = strings.Join(val, "\n")
			i = j
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("malformed output line %q", line)
		}
		out[name] = val
	}
	return out, nil
}
