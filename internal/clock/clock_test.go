package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestVirtual(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	before := 0
	v := Virtual{NowFunc: func() time.Time { return now }, Advance: func(d time.Duration) { now = now.Add(d) }, Before: func() { before++ }}
	if err := v.Sleep(context.Background(), time.Hour); err != nil || v.Now() != time.Unix(3600, 0) || before != 1 {
		t.Errorf("after Sleep(1h): %v, %v, before %d", err, v.Now(), before)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) || v.Now() != time.Unix(3600, 0) {
		t.Errorf("Sleep on a cancelled context: %v, %v", err, v.Now())
	}
}

func TestRealSleepEndsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Real{}).Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(1h) on a cancelled context = %v", err)
	}
}
