package edge

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestShift(t *testing.T) {
	errGate, errRoute := errors.New("5 of 50 probe requests failed"), errors.New("edge unreachable")
	tests := []struct {
		name      string
		steps     []int
		gateFails int // the percentage whose gate fails, 0 for none
		routeFail int // the percentage whose route fails, 0 for none
		routed    []int
		gated     []int
		err       error
	}{
		{"all steps", []int{10, 50, 100}, 0, 0, []int{10, 50, 100}, []int{10, 50}, nil},
		{"100 added", []int{25}, 0, 0, []int{25, 100}, []int{25}, nil},
		{"straight to 100", nil, 0, 0, []int{100}, nil, nil},
		{"gate fails midway", []int{10, 50, 100}, 50, 0, []int{10, 50}, []int{10, 50}, errGate},
		{"route fails", []int{10, 50, 100}, 0, 50, []int{10}, []int{10}, errRoute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var routed, gated, logged []int
			err := Shift(context.Background(), tt.steps,
				func(pct int) []Upstream {
					return []Upstream{{Dial: "old:80", Weight: 100 - pct}, {Dial: "new:80", Weight: pct}}
				},
				func(_ context.Context, ups []Upstream) error {
					pct := ups[1].Weight
					if pct == tt.routeFail {
						return errRoute
					}
					routed = append(routed, pct)
					return nil
				},
				func(_ context.Context, pct int) error {
					gated = append(gated, pct)
					if pct == tt.gateFails {
						return errGate
					}
					return nil
				},
				func(pct int) { logged = append(logged, pct) })
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
			if fmt.Sprint(routed) != fmt.Sprint(tt.routed) || fmt.Sprint(gated) != fmt.Sprint(tt.gated) || fmt.Sprint(logged) != fmt.Sprint(tt.routed) {
				t.Errorf("routed %v, gated %v, logged %v; want routed %v, gated %v", routed, gated, logged, tt.routed, tt.gated)
			}
		})
	}
}
