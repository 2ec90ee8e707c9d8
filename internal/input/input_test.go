package input

import (
	"errors"
	"fmt"
	"testing"
)

func TestJoinAndAll(t *testing.T) {
	a, b := Errorf("rate", "must be at least 1 (got %d)", 0), Errorf("url", "is required")
	tests := []struct {
		name   string
		err    error
		text   string
		inputs []string
	}{
		{"none", Join(), "", nil},
		{"one", Join(a), `input "rate": must be at least 1 (got 0)`, []string{"rate"}},
		{"two", Join(a, b), `input "rate": must be at least 1 (got 0); input "url": is required`, []string{"rate", "url"}},
		{"wrapped one", fmt.Errorf("loadtest: %w", a), `loadtest: input "rate": must be at least 1 (got 0)`, []string{"rate"}},
		{"wrapped two", fmt.Errorf("loadtest: %w", Join(a, b)), `loadtest: input "rate": must be at least 1 (got 0); input "url": is required`, []string{"rate", "url"}},
		{"other", errors.New("boom"), "boom", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				if tt.text != "" {
					t.Fatalf("got nil error, want %q", tt.text)
				}
				return
			}
			if got := tt.err.Error(); got != tt.text {
				t.Errorf("Error() = %q, want %q", got, tt.text)
			}
			var got []string
			for _, e := range All(tt.err) {
				got = append(got, e.Input)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.inputs) {
				t.Errorf("All() inputs = %v, want %v", got, tt.inputs)
			}
			var first *Error
			if errors.As(tt.err, &first) != (len(tt.inputs) > 0) || (first != nil && first.Input != tt.inputs[0]) {
				t.Errorf("errors.As found %v, want the first of %v", first, tt.inputs)
			}
		})
	}
}
