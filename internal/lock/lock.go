// Package lock is the deploy lock on a target host: an atomic mkdir in the
// project directory, holding who deploys what and why, kept alive by a
// heartbeat, so that a CI deploy and a laptop deploy can never run at once.
package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/internal/remote"
)

// Defaults for Options.
const (
	DefaultWait = 10 * time.Minute
	// NoWait as Options.Wait fails at once when someone else holds the lock.
	NoWait           time.Duration = -1
	DefaultStale                   = time.Hour
	DefaultHeartbeat               = 5 * time.Second
	DefaultPoll                    = 2 * time.Second
	// deadAfter heartbeats missed in a row mean the holder is gone.
	deadAfter = 6
)

// Info says who holds a lock.
type Info struct {
	ID      string    `json:"id"`
	Actor   string    `json:"actor"`
	RunURL  string    `json:"run_url,omitempty"`
	SHA     string    `json:"sha,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Machine string    `json:"machine,omitempty"` // where the holder runs: a runner or a laptop
	Started time.Time `json:"started"`
}

func (i Info) String() string {
	s := i.Actor
	if s == "" {
		s = "someone"
	}
	if i.SHA != "" {
		s += " deploying " + short(i.SHA)
	}
	if i.RunURL != "" {
		s += " (" + i.RunURL + ")"
	} else if i.Machine != "" {
		s += " (from " + i.Machine + ")"
	}
	if i.Reason != "" {
		s += ", reason: " + strings.Join(strings.Fields(i.Reason), " ")
	}
	if !i.Started.IsZero() {
		s += ", since " + i.Started.UTC().Format("15:04:05 UTC")
	}
	return s
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// Options controls acquiring a lock.
type Options struct {
	// Dir is the lock directory on the host, e.g. PROJECT/.gantry/lock.
	Dir string
	// Wait is how long to wait for another holder; 0 means DefaultWait and
	// NoWait not at all.
	Wait time.Duration
	// Stale is the age after which a lock whose holder stopped its heartbeat
	// may be broken; 0 means DefaultStale.
	Stale     time.Duration
	Heartbeat time.Duration
	Poll      time.Duration
	Logf      func(string, ...any)
	Warnf     func(string, ...any)
}

// HeldError is a lock that stayed held by someone else for the whole wait.
type HeldError struct {
	Dir    string
	Holder Info
	Waited time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("deploy lock %s is held by %s; waited %s (raise lock-wait, or wait for that deploy to finish)", e.Dir, e.Holder, e.Waited.Round(time.Second))
}

// Lock is a held lock; Release it when the deploy ends.
type Lock struct {
	h    remote.Host
	o    Options
	Info Info
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Acquire takes the lock, waiting up to o.Wait while someone else holds it
// and breaking it only when its holder is gone and it is older than o.Stale.
func Acquire(ctx context.Context, h remote.Host, o Options, info Info) (*Lock, error) {
	o = withDefaults(o)
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	info.ID = hex.EncodeToString(b)
	if info.Started.IsZero() {
		info.Started = time.Now().UTC()
	}
	if _, err := h.Run(ctx, []string{"mkdir", "-p", path.Dir(o.Dir)}, nil); err != nil {
		return nil, fmt.Errorf("create %s on %s: %w", path.Dir(o.Dir), h, err)
	}
	start := time.Now()
	var lastHolder string
	var lastLog time.Time
	for {
		ok, err := tryMkdir(ctx, h, o.Dir)
		if err != nil {
			return nil, err
		}
		if ok {
			l := &Lock{h: h, o: o, Info: info, stop: make(chan struct{}), done: make(chan struct{})}
			data, _ := json.Marshal(info)
			if err := remote.WriteFile(ctx, h, path.Join(o.Dir, "owner.json"), data, 0o644); err != nil {
				_, _ = h.Run(context.WithoutCancel(ctx), []string{"rm", "-rf", o.Dir}, nil)
				return nil, fmt.Errorf("write lock owner: %w", err)
			}
			if err := l.beat(ctx); err != nil {
				_, _ = h.Run(context.WithoutCancel(ctx), []string{"rm", "-rf", o.Dir}, nil)
				return nil, err
			}
			go l.heartbeat()
			return l, nil
		}
		holder, age, beatAge, err := inspect(ctx, h, o.Dir)
		if err != nil {
			return nil, err
		}
		if beatAge > time.Duration(deadAfter)*o.Heartbeat && age > o.Stale {
			o.Warnf("breaking the deploy lock of %s: its heartbeat stopped %s ago and it is %s old (lock-stale %s)", holder, beatAge.Round(time.Second), age.Round(time.Second), o.Stale)
			if err := breakLock(ctx, h, o.Dir); err != nil {
				return nil, err
			}
			continue
		}
		if s := holder.String(); s != lastHolder || time.Since(lastLog) > 30*time.Second {
			o.Logf("waiting for the deploy lock: held by %s", s)
			lastHolder, lastLog = s, time.Now()
		}
		if time.Since(start) >= o.Wait {
			return nil, &HeldError{Dir: o.Dir, Holder: holder, Waited: time.Since(start)}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the deploy lock held by %s: %w", holder, ctx.Err())
		case <-time.After(o.Poll):
		}
	}
}

func withDefaults(o Options) Options {
	switch {
	case o.Wait == 0:
		o.Wait = DefaultWait
	case o.Wait < 0:
		o.Wait = 0
	}
	if o.Stale == 0 {
		o.Stale = DefaultStale
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Warnf == nil {
		o.Warnf = o.Logf
	}
	return o
}

// tryMkdir creates dir atomically; false means it already exists.
func tryMkdir(ctx context.Context, h remote.Host, dir string) (bool, error) {
	_, err := h.Run(ctx, []string{"mkdir", dir}, nil)
	if err == nil {
		return true, nil
	}
	var ee *remote.ExitError
	if errors.As(err, &ee) && strings.Contains(strings.ToLower(ee.Stderr), "exists") {
		return false, nil
	}
	return false, fmt.Errorf("take the deploy lock %s on %s: %w", dir, h, err)
}

// inspectScript prints the host's clock, the lock dir's and the heartbeat's
// modification times (0 when missing), then the owner file. It is fixed
// text: the lock path arrives as $1.
const inspectScript = `d="$1"; printf '%s %s %s\n' "$(date +%s)" "$(stat -c %Y "$d" 2>/dev/null || echo 0)" "$(stat -c %Y "$d/heartbeat" 2>/dev/null || echo 0)"; cat "$d/owner.json" 2>/dev/null || true`

// inspect reads the holder, the lock's age and the heartbeat's age, by the
// host's own clock (the runner's clock may differ).
func inspect(ctx context.Context, h remote.Host, dir string) (Info, time.Duration, time.Duration, error) {
	out, err := h.Run(ctx, []string{"sh", "-c", inspectScript, "sh", dir}, nil)
	if err != nil {
		return Info{}, 0, 0, fmt.Errorf("read the deploy lock %s on %s: %w", dir, h, err)
	}
	first, rest, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(first)
	if len(f) != 3 {
		return Info{}, 0, 0, fmt.Errorf("read the deploy lock %s on %s: unexpected %q", dir, h, first)
	}
	now, _ := strconv.ParseInt(f[0], 10, 64)
	made, _ := strconv.ParseInt(f[1], 10, 64)
	beat, _ := strconv.ParseInt(f[2], 10, 64)
	if beat == 0 {
		beat = made
	}
	var info Info
	if strings.TrimSpace(rest) != "" {
		_ = json.Unmarshal([]byte(rest), &info)
	}
	if made == 0 {
		made = now
	}
	return info, time.Duration(now-made) * time.Second, time.Duration(now-beat) * time.Second, nil
}

// breakLock moves the lock aside atomically (only one breaker wins) and
// removes it.
func breakLock(ctx context.Context, h remote.Host, dir string) error {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	aside := dir + ".broken." + hex.EncodeToString(b)
	if _, err := h.Run(ctx, []string{"mv", dir, aside}, nil); err != nil {
		var ee *remote.ExitError
		if errors.As(err, &ee) {
			return nil // someone else broke or released it first
		}
		return err
	}
	_, err := h.Run(ctx, []string{"rm", "-rf", aside}, nil)
	return err
}

func (l *Lock) beat(ctx context.Context) error {
	_, err := l.h.Run(ctx, []string{"touch", path.Join(l.o.Dir, "heartbeat")}, nil)
	return err
}

func (l *Lock) heartbeat() {
	defer close(l.done)
	t := time.NewTicker(l.o.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.o.Heartbeat*2)
			_ = l.beat(ctx) // a missed beat is retried on the next tick
			cancel()
		}
	}
}

// Release removes the lock if this deploy still holds it.
func (l *Lock) Release(ctx context.Context) error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	data, err := remote.ReadFile(ctx, l.h, path.Join(l.o.Dir, "owner.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release the deploy lock %s: %w", l.o.Dir, err)
	}
	var owner Info
	if json.Unmarshal(data, &owner) == nil && owner.ID != l.Info.ID {
		return fmt.Errorf("the deploy lock %s is now held by %s; not releasing it", l.o.Dir, owner)
	}
	if _, err := l.h.Run(ctx, []string{"rm", "-rf", l.o.Dir}, nil); err != nil {
		return fmt.Errorf("release the deploy lock %s: %w", l.o.Dir, err)
	}
	return nil
}

// WaitInput turns a lock-wait input into Options.Wait: 0 (a user's "0s") is NoWait.
func WaitInput(d time.Duration) time.Duration {
	if d <= 0 {
		return NoWait
	}
	return d
}
