package fakes

import "testing"

func TestFaults(t *testing.T) {
	t.Parallel()
	var q Faults[string]
	q.Add("a", 2, "a-twice")
	q.Add("", 0, "any-forever")
	for i, tc := range []struct{ key, want string }{
		{"b", "any-forever"}, {"a", "a-twice"}, {"a", "a-twice"}, {"a", "any-forever"}, {"a", "any-forever"},
	} {
		if got, ok := q.Take(tc.key); !ok || got != tc.want {
			t.Errorf("%d: Take(%q) = %q, %v; want %q", i, tc.key, got, ok, tc.want)
		}
	}
	q.Clear()
	if _, ok := q.Take("a"); ok {
		t.Error("fault left after Clear")
	}
}
