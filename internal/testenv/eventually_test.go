package testenv

import (
	"testing"
	"time"
)

func TestEventually(t *testing.T) {
	t.Parallel()
	n := 0
	if !Eventually(time.Second, time.Millisecond, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("a condition true on the third check: n = %d", n)
	}
	if Eventually(10*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Error("a condition never true was reported as met")
	}
}
