package markdown

import "testing"

func TestEscapeAndCode(t *testing.T) {
	tests := []struct {
		name, in, escape, code string
	}{
		{"plain", "ok", "ok", "`ok`"},
		{"table and emphasis", "a|b*c_d", `a\|b\*c\_d`, "`a\\|b*c_d`"},
		{"html and links", "<b>[x](y)", `&lt;b&gt;\[x\](y)`, "`<b>[x](y)`"},
		{"backticks", "a`b", "a\\`b", "``a`b``"},
		{"leading backtick", "`a", "\\`a", "`` `a ``"},
		{"line break", "a\nb", "a b", "`a b`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.escape {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.escape)
			}
			if got := Code(tt.in); got != tt.code {
				t.Errorf("Code(%q) = %q, want %q", tt.in, got, tt.code)
			}
		})
	}
}

func TestTable(t *testing.T) {
	got := Table([]string{"a", "b"}, [][]string{{"1", "2"}, {"3", Escape("x|y")}})
	want := "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | x\\|y |\n"
	if got != want {
		t.Errorf("Table = %q, want %q", got, want)
	}
}
