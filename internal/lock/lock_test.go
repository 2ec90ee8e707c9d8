package lock

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/ssh"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// scopes are the two kinds of lock, each with the engine state it needs.
var scopes = []struct {
	kind  string
	scope func(string) Scope
	needs func(testing.TB)
}{
	{"compose", ComposeProject, testenv.Docker},
	{"stack", SwarmStack, testenv.Swarm},
}

// uniqueName is a project or stack name no other test uses, whose lock
// object is removed when the test ends.
func uniqueName(t testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "locktest-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		obj := "gantry-lock--" + name
		_ = exec.Command("docker", "container", "rm", "--force", obj).Run()
		_ = exec.Command("docker", "service", "rm", obj).Run()
	})
	return name
}

// eachScope runs fn as a parallel subtest for a fresh Compose project and a
// fresh stack, with the engine state each needs.
func eachScope(t *testing.T, fn func(t *testing.T, scope Scope)) {
	for _, sc := range scopes {
		t.Run(sc.kind, func(t *testing.T) {
			t.Parallel()
			sc.needs(t)
			fn(t, sc.scope(uniqueName(t)))
		})
	}
}

func fast() Options {
	return Options{Wait: 200 * time.Millisecond, Poll: 20 * time.Millisecond, Heartbeat: 100 * time.Millisecond, Stale: time.Second}
}

func TestSecondDeployWaitsThenFailsNamingHolder(t *testing.T) {
	t.Parallel()
	eachScope(t, func(t *testing.T, scope Scope) {
		h := &remote.Local{}
		first, err := Acquire(context.Background(), h, scope, fast(), Info{Actor: "alice", SHA: "abcdef0123", Reason: "hotfix", RunURL: "https://github.com/acme/api/actions/runs/1"})
		if err != nil {
			t.Fatal(err)
		}
		var logs []string
		o := fast()
		o.Logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
		_, err = Acquire(context.Background(), h, scope, o, Info{Actor: "bob"})
		var held *HeldError
		if !errors.As(err, &held) || held.Holder.Actor != "alice" {
			t.Fatalf("err = %v, want HeldError by alice", err)
		}
		for _, want := range []string{"alice", "abcdef0", "hotfix", "actions/runs/1", "lock-wait"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		if len(logs) == 0 || !strings.Contains(logs[0], "alice") {
			t.Errorf("the waiting deploy did not say who holds the lock: %q", logs)
		}
		if err := first.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		second, err := Acquire(context.Background(), h, scope, fast(), Info{Actor: "bob"})
		if err != nil {
			t.Fatalf("after release: %v", err)
		}
		if err := second.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		if in, err := newStore(h, scope).(interface {
			read(context.Context) (*instance, error)
		}).read(context.Background()); err != nil || in != nil {
			t.Errorf("after the last release the lock object is %+v (%v), want gone", in, err)
		}
	})
}

// TestLiveHolderIsNeverTakenOver waits on a holder that beats for several
// times lock-stale: the waiter must give up, not take over.
func TestLiveHolderIsNeverTakenOver(t *testing.T) {
	t.Parallel()
	eachScope(t, func(t *testing.T, scope Scope) {
		h := &remote.Local{}
		// Ten heartbeats per lock-stale (the defaults have six), so that
		// a loaded machine cannot make the live holder look dead.
		o := fast()
		o.Heartbeat, o.Stale, o.Poll = 500*time.Millisecond, 5*time.Second, 200*time.Millisecond
		holder, err := Acquire(context.Background(), h, scope, o, Info{Actor: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Release(context.Background())
		w := o
		w.Wait = 2 * o.Stale
		var warned atomic.Bool
		w.Warnf = func(string, ...any) { warned.Store(true) }
		_, err = Acquire(context.Background(), h, scope, w, Info{Actor: "mallory"})
		var held *HeldError
		if !errors.As(err, &held) || warned.Load() {
			t.Fatalf("err = %v, warned of a takeover = %v; want the live holder kept", err, warned.Load())
		}
		select {
		case <-holder.Lost():
			t.Fatal("the live holder lost its lock")
		default:
		}
	})
}

// latentHost delays every command by a random time up to max, as a slow
// link or a loaded host does, to widen every race window.
type latentHost struct {
	remote.Host
	max time.Duration
}

func (l latentHost) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(l.max)))
	select {
	case <-time.After(time.Duration(n.Int64())):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return l.Host.Run(ctx, argv, stdin)
}

// plantDead leaves a lock as a deploy killed before its first heartbeat
// would: the object exists and nobody beats it.
func plantDead(t *testing.T, h remote.Host, scope Scope) {
	t.Helper()
	id, held, err := newStore(h, scope).create(context.Background(), Info{ID: "dead", Actor: "ghost", Started: time.Now().UTC()})
	if err != nil || held != nil || id == "" {
		t.Fatalf("plant a dead lock: id %q, held %+v, %v", id, held, err)
	}
}

// TestTakeoverRaceNeverTwoHolders has three waiters race for a dead
// holder's lock, each through a host that delays every command by up to
// 20, 300 and 800 ms, many times: at no moment may two of them hold it, and each gets it
// in turn.
func TestTakeoverRaceNeverTwoHolders(t *testing.T) {
	t.Parallel()
	const runs, waiters = 16, 3
	for _, sc := range scopes {
		t.Run(sc.kind, func(t *testing.T) {
			t.Parallel()
			sc.needs(t)
			var wg sync.WaitGroup
			var takeovers atomic.Int32
			for r := 0; r < runs; r++ {
				scope := sc.scope(uniqueName(t))
				plantDead(t, &remote.Local{}, scope)
				var inside, maxInside atomic.Int32
				for w := 0; w < waiters; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						// One fast waiter, two slower ones: the slower a
						// breaker, the wider its window to act on what it
						// read before the faster one took over.
						h := latentHost{&remote.Local{}, []time.Duration{20, 300, 800}[w] * time.Millisecond}
						// lock-stale of ten heartbeats, as the defaults have six: a
						// loaded machine must not make a live holder look dead.
						o := Options{Wait: 2 * time.Minute, Poll: 200 * time.Millisecond, Heartbeat: 500 * time.Millisecond, Stale: 5 * time.Second}
						o.Warnf = func(f string, a ...any) {
							if strings.HasPrefix(f, "taking over") {
								takeovers.Add(1)
							}
						}
						l, err := Acquire(context.Background(), h, scope, o, Info{Actor: fmt.Sprintf("waiter-%d", w)})
						if err != nil {
							t.Error(err)
							return
						}
						n := inside.Add(1)
						for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
						}
						// Hold it across two heartbeats, as a deploy does.
						time.Sleep(2 * o.Heartbeat)
						inside.Add(-1)
						if err := l.Release(context.Background()); err != nil {
							t.Error(err)
						}
					}()
				}
				t.Cleanup(func() {
					if m := maxInside.Load(); m != 1 {
						t.Errorf("%v: %d holders at once, want 1", scope, m)
					}
				})
			}
			wg.Wait()
			if got := takeovers.Load(); got < runs {
				t.Errorf("%d takeovers in %d runs: every dead lock must be taken over once at least", got, runs)
			}
		})
	}
}

// germanHost answers every failed command in German, as a host with
// LANG=de_DE does for programs with translations.
type germanHost struct{ remote.Host }

func (g germanHost) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	out, err := g.Host.Run(ctx, argv, stdin)
	var ee *remote.ExitError
	if errors.As(err, &ee) {
		e := *ee
		e.Stderr = "Fehler: Der Vorgang ist fehlgeschlagen"
		return out, &e
	}
	return out, err
}

// TestOtherLocaleWaits: on a host that reports errors in German, a second
// deploy waits for the lock instead of failing at once.
func TestOtherLocaleWaits(t *testing.T) {
	t.Parallel()
	eachScope(t, func(t *testing.T, scope Scope) {
		h := germanHost{&remote.Local{}}
		first, err := Acquire(context.Background(), h, scope, fast(), Info{Actor: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		released := make(chan struct{})
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = first.Release(context.Background())
			close(released)
		}()
		o := fast()
		o.Wait = time.Minute
		second, err := Acquire(context.Background(), h, scope, o, Info{Actor: "bob"})
		if err != nil {
			t.Fatalf("the second deploy failed instead of waiting: %v", err)
		}
		<-released
		_ = second.Release(context.Background())
	})
}

// TestLostLockEndsContext removes a held lock behind its holder's back (as
// a takeover does): the holder's context must end with ErrLost.
func TestLostLockEndsContext(t *testing.T) {
	t.Parallel()
	eachScope(t, func(t *testing.T, scope Scope) {
		h := &remote.Local{}
		l, err := Acquire(context.Background(), h, scope, fast(), Info{Actor: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := l.Context(context.Background())
		defer stop()
		if err := l.st.remove(context.Background(), l.id); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			if !errors.Is(context.Cause(ctx), ErrLost) {
				t.Errorf("cause = %v, want ErrLost", context.Cause(ctx))
			}
		case <-time.After(time.Minute):
			t.Fatal("the holder never noticed its lock was gone")
		}
		if err := l.Release(context.Background()); err == nil || !strings.Contains(err.Error(), "taken over") {
			t.Errorf("Release = %v, want it to say the lock was taken over", err)
		}
	})
}

// TestTwoUsersShareTheLock takes the lock through two SSH logins with
// different users (and so different home directories): they must exclude
// each other, since they deploy to the same engine.
func TestTwoUsersShareTheLock(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root (to log in as two users)", "run the tests as root")
	}
	testenv.Swarm(t)
	dial := func(deployUser bool) remote.Host {
		s := testenv.StartSSHD(t, testenv.SSHDOptions{DeployUser: deployUser})
		c, err := ssh.Dial(context.Background(), ssh.Options{Host: s.Host, Port: s.Port, User: s.User, PrivateKey: s.ClientKey, KnownHosts: s.KnownHosts})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	rootHost, deployHost := dial(false), dial(true)
	for _, sc := range scopes {
		scope := sc.scope(uniqueName(t))
		l, err := Acquire(context.Background(), rootHost, scope, fast(), Info{Actor: "root-ci"})
		if err != nil {
			t.Fatal(err)
		}
		o := fast()
		o.Wait = NoWait
		_, err = Acquire(context.Background(), deployHost, scope, o, Info{Actor: "laptop"})
		var held *HeldError
		if !errors.As(err, &held) || held.Holder.Actor != "root-ci" {
			t.Errorf("%s: another user's deploy got %v, want HeldError by root-ci", sc.kind, err)
		}
		if err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		l2, err := Acquire(context.Background(), deployHost, scope, o, Info{Actor: "laptop"})
		if err != nil {
			t.Fatalf("%s: after release: %v", sc.kind, err)
		}
		_ = l2.Release(context.Background())
	}
}

// TestTakeoverAfterSIGKILL kills a holding process hard (as a lost runner
// dies) and measures how long the next deploy waits, with the default
// heartbeat and lock-stale.
func TestTakeoverAfterSIGKILL(t *testing.T) {
	if os.Getenv("GANTRY_LOCK_HOLDER") != "" {
		holdForever()
		return
	}
	t.Parallel()
	eachScope(t, func(t *testing.T, scope Scope) {
		name := scope.name
		cmd := exec.Command(os.Args[0], "-test.run=^TestTakeoverAfterSIGKILL$")
		cmd.Env = append(os.Environ(), "GANTRY_LOCK_HOLDER="+scope.kind+":"+name)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewScanner(out)
		if !waitLine(r, "held") {
			_ = cmd.Process.Kill()
			t.Fatal("the holder process never took the lock")
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		killed := time.Now()
		var msg string
		o := Options{Wait: 5 * time.Minute, Warnf: func(f string, a ...any) { msg = fmt.Sprintf(f, a...) }}
		l, err := Acquire(context.Background(), &remote.Local{}, scope, o, Info{Actor: "next"})
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(killed)
		_ = l.Release(context.Background())
		if !strings.Contains(msg, "taking over") || !strings.Contains(msg, "killed-holder") {
			t.Errorf("takeover message %q does not say whose lock was taken over", msg)
		}
		if took > DefaultWait {
			t.Errorf("took %s", took)
		}
		t.Logf("%s lock taken over %s after its holder was killed (lock-stale %s, heartbeat %s)", scope.kind, took.Round(100*time.Millisecond), DefaultStale, DefaultHeartbeat)
	})
}

func waitLine(r *bufio.Scanner, want string) bool {
	for r.Scan() {
		if strings.TrimSpace(r.Text()) == want {
			return true
		}
	}
	return false
}

// holdForever is the child of TestTakeoverAfterSIGKILL: it takes the lock
// with the default heartbeat and waits to be killed.
func holdForever() {
	kind, name, _ := strings.Cut(os.Getenv("GANTRY_LOCK_HOLDER"), ":")
	scope := ComposeProject(name)
	if kind == "stack" {
		scope = SwarmStack(name)
	}
	if _, err := Acquire(context.Background(), &remote.Local{}, scope, Options{}, Info{Actor: "killed-holder"}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("held")
	select {}
}

func TestScopeNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scope Scope
		ok    bool
	}{
		{ComposeProject("shop"), true},
		{SwarmStack("Shop_2-x"), true},
		{ComposeProject(""), false},
		{ComposeProject("-x"), false},
		{ComposeProject("a b"), false},
		{SwarmStack("a.b"), false},
	} {
		if err := tc.scope.valid(); (err == nil) != tc.ok {
			t.Errorf("%+v: valid = %v, want ok %v", tc.scope, err, tc.ok)
		}
	}
	long := ComposeProject(strings.Repeat("a", 80)).objectName()
	if len(long) > 63 || long == ComposeProject(strings.Repeat("a", 81)).objectName() {
		t.Errorf("long names: %q", long)
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
	if got := withDefaults(Options{Heartbeat: time.Second, Stale: time.Second}).Stale; got != 3*time.Second {
		t.Errorf("a lock-stale of one heartbeat becomes %v, want three heartbeats", got)
	}
}
