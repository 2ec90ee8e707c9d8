package action

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"90", 90 * time.Second, ""},
		{" 90 ", 90 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"168h", 168 * time.Hour, ""},
		{"-5", 0, "is negative"},
		{"-5s", 0, "is negative"},
		{"-0", 0, "is negative"},
		{"-99999999999999999999999", 0, "is negative"},
		{"604801", 0, "longer than a week"},
		{"9223372036854775807", 0, "longer than a week"},
		{"99999999999999999999999", 0, "longer than a week"},
		{"9999999999h", 0, "longer than a week"},
		{"169h", 0, "longer than a week"},
		{"5 minutes", 0, "is not a duration"},
		{"5x", 0, "is not a duration"},
		{"+", 0, "is not a duration"},
		{"1.5", 0, "is not a duration"},
		{"0x10", 0, "is not a duration"},
	} {
		got, err := ParseDuration(tc.in)
		if tc.wantErr == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || got != 0 {
			t.Errorf("ParseDuration(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
		}
	}
}

var envSpec = &Spec{Name: "t", Inputs: []Input{{Name: "env"}}}

func TestEnvInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw string
		want      []EnvVar
		wantErr   string
	}{
		{"commas and = stay in the value", "DSN=host=db,port=5432\nLOG=info", []EnvVar{{"DSN", "host=db,port=5432"}, {"LOG", "info"}}, ""},
		{"comments, blanks and spaces around the name", "# c\n\n  A_1 =x y \n", []EnvVar{{"A_1", "x y"}}, ""},
		{"empty value", "EMPTY=", []EnvVar{{"EMPTY", ""}}, ""},
		{"space in name", "MY KEY=v", nil, `input "env": line 1 names "MY KEY", not a variable name`},
		{"digit first", "A=1\n1A=v", nil, `input "env": line 2 names "1A"`},
		{"no =, value not quoted", "A=1\nhunter2secret", nil, `input "env": line 2 has no =`},
		{"empty name", "=v", nil, `line 1 names ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := New(envSpec, Env{Getenv: envOf(map[string]string{"INPUT_ENV": tc.raw})}).Inputs()
			got := in.Env("env")
			if tc.wantErr != "" {
				if in.Err() == nil || !strings.Contains(in.Err().Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", in.Err(), tc.wantErr)
				}
				if strings.Contains(in.Err().Error(), "hunter2") {
					t.Errorf("error quotes a value: %v", in.Err())
				}
				return
			}
			if in.Err() != nil || len(got) != len(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, in.Err(), tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func FuzzParseEnvLine(f *testing.F) {
	for _, s := range []string{"A=b", "DSN=host=db,port=5432", "MY KEY=v", "=", "A", "_x=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseEnvLine(line)
		if err != nil {
			return
		}
		if !ValidEnvName(e.Name) || strings.TrimSpace(e.Name)+"="+e.Value != strings.TrimSpace(line[:strings.Index(line, "=")])+"="+line[strings.Index(line, "=")+1:] {
			t.Fatalf("ParseEnvLine(%q) = %+v", line, e)
		}
	})
}

// runnerUnescape is what the Actions runner does to a command's data
// (ActionCommand.UnescapeData), to check what it registers as a secret.
func runnerUnescape(s string) string {
	return strings.NewReplacer("%0D", "\r", "%0A", "\n", "%25", "%").Replace(s)
}

// registeredMasks reads the ::add-mask:: lines of a log as the runner does.
func registeredMasks(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if v, ok := strings.CutPrefix(line, "::add-mask::"); ok {
			out = append(out, runnerUnescape(v))
		}
	}
	return out
}

func TestMaskEscapesCommandData(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{
		"pa%0Ass",             // a literal %0A must not become a newline
		"50%25off%",           // literal %25
		"line1\r\nline2\nl3",  // multi-line, CRLF
		"ends with percent %", // trailing %
		"x%0D%0A::error::y",   // a forged command inside
	} {
		var stdout bytes.Buffer
		a := New(testSpec, Env{Getenv: envOf(map[string]string{"GITHUB_ACTIONS": "true"}), Stdout: &stdout})
		a.Mask(secret)
		got := registeredMasks(stdout.String())
		if len(got) == 0 || got[0] != secret {
			t.Errorf("Mask(%q): the runner registers %q", secret, got)
		}
		for _, line := range strings.Split(strings.ReplaceAll(secret, "\r", ""), "\n") {
			if line = strings.TrimSpace(line); line != "" && !contains(got, line) && !contains(got, line+"\r") {
				t.Errorf("Mask(%q): line %q not registered (%q)", secret, line, got)
			}
		}
		for _, l := range strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n") {
			if !strings.HasPrefix(l, "::add-mask::") {
				t.Errorf("Mask(%q) wrote a line that is not an add-mask command: %q", secret, l)
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestMaskEnvOnlySecrets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		masked      []string
	}{
		{"LOG_LEVEL", "info", nil},
		{"WORKERS", "1", nil},
		{"VERSION", "0123456", nil},
		{"DB_PASSWORD", "hunter2-long", []string{"hunter2-long"}},
		{"API_KEY", "abcd1234", []string{"abcd1234"}},
		{"GHTOKEN", "ghp_x123", []string{"ghp_x123"}},
		{"client-secret", "s3cr3t!", []string{"s3cr3t!"}},
		{"SENTRY_DSN", "https://k@sentry.example/1", []string{"https://k@sentry.example/1"}},
		{"DB_PASSWORD", "abc", nil}, // too short to mask usefully
		{"MONKEY", "banana", nil},   // KEY only as a word of the name
		{"DATABASE_URL", "postgres://app:pw-1234@db:5432/app", []string{"pw-1234"}},
		{"DATABASE_URL", "postgres://app@db:5432/app", nil},
	} {
		var stdout bytes.Buffer
		a := New(testSpec, Env{Getenv: envOf(map[string]string{"GITHUB_ACTIONS": "true"}), Stdout: &stdout})
		a.MaskEnv(tc.name, tc.value)
		got := registeredMasks(stdout.String())
		if strings.Join(got, "|") != strings.Join(tc.masked, "|") {
			t.Errorf("MaskEnv(%s=%s) masked %q, want %q", tc.name, tc.value, got, tc.masked)
		}
	}
	var stdout bytes.Buffer
	a := New(testSpec, Env{Getenv: envOf(map[string]string{"GITHUB_ACTIONS": "true"}), Stdout: &stdout})
	a.MaskEnv("WORKERS", "1")
	a.MaskEnv("DB_PASSWORD", "hunter2-long")
	a.Infof("deploying 0123456 with 1 worker and hunter2-long")
	if !regexp.MustCompile(`deploying 0123456 with 1 worker and \*\*\*\n`).MatchString(stdout.String()) {
		t.Errorf("log garbled or secret shown: %q", stdout.String())
	}
}
