package lock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/remote"
)

func fast(dir string) Options {
	return Options{Dir: dir, Wait: 200 * time.Millisecond, Poll: 10 * time.Millisecond, Heartbeat: 50 * time.Millisecond}
}

func TestSecondDeployWaitsThenFailsNamingHolder(t *testing.T) {
	t.Parallel()
	h := &remote.Local{}
	dir := filepath.Join(t.TempDir(), "proj", ".gantry", "lock")
	first, err := Acquire(context.Background(), h, fast(dir), Info{Actor: "alice", SHA: "abcdef0123", Reason: "hotfix", RunURL: "https://github.com/acme/api/actions/runs/1"})
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	o := fast(dir)
	o.Logf = func(f string, a ...any) { logs = append(logs, f) }
	_, err = Acquire(context.Background(), h, o, Info{Actor: "bob"})
	var held *HeldError
	if !errors.As(err, &held) || held.Holder.Actor != "alice" {
		t.Fatalf("err = %v, want HeldError by alice", err)
	}
	for _, want := range []string{"alice", "abcdef0", "hotfix", "actions/runs/1", "lock-wait"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(logs) == 0 {
		t.Error("the waiting deploy printed nothing about who holds the lock")
	}
	if err := first.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	second, err := Acquire(context.Background(), h, fast(dir), Info{Actor: "bob"})
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	_ = second.Release(context.Background())
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lock dir left behind: %v", err)
	}
}

// abandon makes a lock as a deploy that died hard would leave it, aged.
func abandon(t *testing.T, dir string, age time.Duration) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.json"), []byte(`{"id":"x","actor":"ghost","started":"2020-01-01T00:00:00Z"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	stamp := time.Now().Add(-age).Format("200601021504.05")
	for _, p := range []string{filepath.Join(dir, "heartbeat"), dir} {
		if out, err := exec.Command("touch", "-t", stamp, p).CombinedOutput(); err != nil {
			t.Fatalf("touch: %v %s", err, out)
		}
	}
}

func TestStaleLockIsBrokenOnlyWhenHolderGoneAndOld(t *testing.T) {
	t.Parallel()
	h := &remote.Local{}
	for _, tc := range []struct {
		name  string
		age   time.Duration
		stale time.Duration
		broke bool
	}{
		{"old and silent", 2 * time.Hour, time.Hour, true},
		{"silent but younger than lock-stale", 10 * time.Minute, time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "lock")
			abandon(t, dir, tc.age)
			o := fast(dir)
			o.Stale = tc.stale
			var warned atomic.Bool
			o.Warnf = func(string, ...any) { warned.Store(true) }
			l, err := Acquire(context.Background(), h, o, Info{Actor: "carol"})
			if tc.broke {
				if err != nil || !warned.Load() {
					t.Fatalf("err = %v, warned = %v; want the stale lock broken with a warning", err, warned.Load())
				}
				_ = l.Release(context.Background())
				return
			}
			var held *HeldError
			if !errors.As(err, &held) || held.Holder.Actor != "ghost" {
				t.Fatalf("err = %v, want the lock kept", err)
			}
		})
	}
}

func TestHeartbeatKeepsLockAlive(t *testing.T) {
	t.Parallel()
	h := &remote.Local{}
	dir := filepath.Join(t.TempDir(), "lock")
	// A heartbeat of seconds: the test must not depend on a loaded machine
	// beating within a few tens of milliseconds.
	slow := fast(dir)
	slow.Heartbeat = 2 * time.Second
	l, err := Acquire(context.Background(), h, slow, Info{Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	// Age the lock itself; a live heartbeat must still protect it.
	if out, err := exec.Command("touch", "-t", time.Now().Add(-3*time.Hour).Format("200601021504.05"), dir).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	o := slow
	o.Stale = time.Minute
	if _, err := Acquire(context.Background(), h, o, Info{Actor: "mallory"}); err == nil {
		t.Fatal("a lock with a live heartbeat was broken")
	}
}

// TestConcurrentDeploysSerialize runs 20 contenders; at most one holds the
// lock at any time and every one gets it in the end.
func TestConcurrentDeploysSerialize(t *testing.T) {
	t.Parallel()
	h := &remote.Local{}
	dir := filepath.Join(t.TempDir(), "lock")
	var inside, maxInside, done atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := fast(dir)
			o.Wait = time.Minute
			l, err := Acquire(context.Background(), h, o, Info{Actor: "ci"})
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond) // hold it briefly, as a deploy does
			inside.Add(-1)
			if err := l.Release(context.Background()); err != nil {
				t.Error(err)
			}
			done.Add(1)
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 || done.Load() != 20 {
		t.Errorf("max holders at once = %d, finished = %d; want 1 and 20", maxInside.Load(), done.Load())
	}
}

func TestWaitInput(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Duration]time.Duration{0: NoWait, -time.Second: NoWait, time.Minute: time.Minute} {
		if got := WaitInput(in); got != want {
			t.Errorf("WaitInput(%v) = %v, want %v", in, got, want)
		}
	}
	if got := withDefaults(Options{Wait: NoWait}).Wait; got != 0 {
		t.Errorf("NoWait becomes %v, want 0", got)
	}
	if got := withDefaults(Options{}).Wait; got != DefaultWait {
		t.Errorf("the zero Wait becomes %v, want DefaultWait", got)
	}
}
