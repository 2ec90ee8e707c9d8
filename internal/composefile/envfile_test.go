package composefile

import (
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, data string
		rules      EnvRules
		want       []Var
		wantData   string
		wantErr    string
	}{
		{name: "compose quotes and comments", data: "# c\nA=1\nB=\"x y\"\nC='q'\nexport D=4\n", rules: ComposeRules,
			want: []Var{{"A", "1"}, {"B", "x y"}, {"C", "q"}, {"D", "4"}}},
		{name: "compose value with commas and =", data: "DSN=host=db,port=5432", rules: ComposeRules, want: []Var{{"DSN", "host=db,port=5432"}}},
		{name: "compose key with a space", data: "A=1\nMY KEY=secret-value", rules: ComposeRules, wantErr: "line 2: key cannot contain a space"},
		{name: "compose bad character, value not quoted", data: "A@B=secret-value", rules: ComposeRules, wantErr: `unexpected character "@" in a variable name`},
		{name: "shell literal values, trimmed lines", data: "  A=\"x\"  \n\n# c\nB=y=z,w\n", rules: ShellRules,
			want: []Var{{"A", `"x"`}, {"B", "y=z,w"}}, wantData: "A=\"x\"\nB=y=z,w\n"},
		{name: "shell name with a dash", data: "LOG-LEVEL=info", rules: ShellRules, wantErr: `line 1: "LOG-LEVEL" is not a variable name the shell can export`},
		{name: "shell line without =", data: "A=1\nsecret-value", rules: ShellRules, wantErr: "line 2 has no ="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, data, err := ParseEnvFile(tc.data, tc.rules)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret-value") {
					t.Errorf("error quotes a value: %v", err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
			if tc.wantData != "" && data != tc.wantData {
				t.Errorf("data = %q, want %q", data, tc.wantData)
			}
		})
	}
}

func FuzzParseEnvFile(f *testing.F) {
	for _, s := range []string{"A=1\nB=\"x y\"\n", "MY KEY=v", "A@B=v", "export A=1", "A='unterminated", "A=${B:-c}\n#x\n", "  A=1  \n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		vars, out, err := ParseEnvFile(data, ShellRules)
		if err == nil {
			// What the host's shell gets is exactly NAME=value lines of the vars.
			var b strings.Builder
			for _, v := range vars {
				if !shellNameRE.MatchString(v.Name) {
					t.Fatalf("accepted name %q", v.Name)
				}
				b.WriteString(v.Name + "=" + v.Value + "\n")
			}
			if b.String() != out {
				t.Fatalf("file %q does not hold the vars %v", out, vars)
			}
		}
		_, _, _ = ParseEnvFile(data, ComposeRules) // must not panic
	})
}
