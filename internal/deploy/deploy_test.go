package deploy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestSteps(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	clock := t0
	var logged []string
	var phases []Phase
	s := Steps{
		Phases: &phases,
		Logf:   func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) },
		Now:    func() time.Time { return clock },
	}
	ctx := context.Background()
	tick := func(d time.Duration, err error, warn string) func(context.Context) error {
		return func(context.Context) error {
			clock = clock.Add(d)
			if warn != "" {
				s.Warn(warn)
			}
			return err
		}
	}
	boom := errors.New("boom")
	if err := s.Run(ctx, "upload", tick(time.Second, nil, "")); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx, "verify", tick(2*time.Second, nil, "not verified: no url")); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx, "switch", tick(3*time.Second, boom, "ignored: the step failed")); !errors.Is(err, boom) {
		t.Fatalf("Run returned %v, want the step's error", err)
	}
	if err := s.Run(ctx, "cleanup", tick(0, nil, "")); err != nil {
		t.Fatal(err)
	}
	want := []Phase{
		{Name: "upload", Started: t0, Duration: time.Second},
		{Name: "verify", Started: t0.Add(time.Second), Duration: 2 * time.Second, Warning: "not verified: no url"},
		{Name: "switch", Started: t0.Add(3 * time.Second), Duration: 3 * time.Second, Error: "boom"},
		{Name: "cleanup", Started: t0.Add(6 * time.Second)},
	}
	if fmt.Sprint(phases) != fmt.Sprint(want) {
		t.Errorf("phases:\n got %v\nwant %v", phases, want)
	}
	if fmt.Sprint(logged) != "[── upload ── verify ── switch ── cleanup]" {
		t.Errorf("logged %q", logged)
	}
}
