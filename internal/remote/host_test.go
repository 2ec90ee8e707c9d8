package remote_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/ssh"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// hosts returns every Host implementation, each on this machine: Local, and
// an SSH client of a real sshd on loopback.
func hosts(t *testing.T) map[string]remote.Host {
	t.Helper()
	s := testenv.StartSSHD(t, testenv.SSHDOptions{})
	c, err := ssh.Dial(context.Background(), ssh.Options{
		Host: s.Host, Port: s.Port, User: s.User, PrivateKey: s.ClientKey, KnownHosts: s.KnownHosts,
	})
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, s.Log())
	}
	t.Cleanup(func() { c.Close() })
	return map[string]remote.Host{"local": &remote.Local{Name: "here"}, "ssh": c}
}

// hostile are arguments a shell would read as syntax if pasted unquoted.
var hostile = []string{
	`"; rm -rf / #`,
	`$(id)`,
	"`id`",
	`'quotes'`,
	`it's`,
	`"double"`,
	"line1\nline2",
	"trailing newline\n",
	"a\tb",
	"carriage\rreturn",
	"héllo wörld ✓ 日本語",
	"",
	"-n",
	"--help",
	"*",
	"~",
	"a=b",
	`\backslash\n`,
	"{a,b}",
	"!bang",
	"if",
	"$HOME ${PATH} $0 $$",
	"a;b|c&d>e<f",
	"\xff\xfe invalid utf-8",
	"\x01\x1b[31mcontrol",
}

func TestRunPassesArgvByteForByte(t *testing.T) {
	t.Parallel()
	for name, h := range hosts(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, arg := range hostile {
				t.Run(fmt.Sprintf("%q", arg), func(t *testing.T) {
					t.Parallel()
					out, err := h.Run(context.Background(), []string{"printf", "%s", arg}, nil)
					if err != nil {
						t.Fatal(err)
					}
					if string(out) != arg {
						t.Errorf("printf %%s %q printed %q", arg, out)
					}
				})
			}
			t.Run("all at once", func(t *testing.T) {
				t.Parallel()
				// One field per argument: none is split, dropped or merged.
				out, err := h.Run(context.Background(), append([]string{"printf", "%s\x1f"}, hostile...), nil)
				if err != nil {
					t.Fatal(err)
				}
				if want := strings.Join(hostile, "\x1f") + "\x1f"; string(out) != want {
					t.Errorf("got %q\nwant %q", out, want)
				}
			})
		})
	}
}

func TestRunStdin(t *testing.T) {
	t.Parallel()
	data := make([]byte, 1<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	for name, h := range hosts(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := h.Run(context.Background(), []string{"cat"}, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, data) {
				t.Errorf("cat returned %d bytes, not the %d sent", len(out), len(data))
			}
			// nil stdin is empty: cat ends at once.
			out, err = h.Run(context.Background(), []string{"cat"}, nil)
			if err != nil || len(out) != 0 {
				t.Errorf("cat with nil stdin: %q, %v", out, err)
			}
		})
	}
}

func TestRunExitError(t *testing.T) {
	t.Parallel()
	for name, h := range hosts(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tests := []struct {
				argv       []string
				code       int
				stdout     string
				stderrHas  string
				messageHas string
			}{
				{[]string{"sh", "-c", "echo partial; echo oops >&2; exit 3"}, 3, "partial\n", "oops\n", "exited 3: oops"},
				{[]string{"false"}, 1, "", "", "false exited 1: (no output)"},
				{[]string{"gantry-no-such-command", "x"}, 127, "", "gantry-no-such-command", "exited 127"},
				{[]string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM), "", "", "exited 143"},
			}
			for _, tt := range tests {
				t.Run(tt.argv[0], func(t *testing.T) {
					t.Parallel()
					out, err := h.Run(context.Background(), tt.argv, nil)
					var exitErr *remote.ExitError
					if !errors.As(err, &exitErr) {
						t.Fatalf("err = %v (%T), want *remote.ExitError", err, err)
					}
					if exitErr.Code != tt.code || exitErr.Host != h.String() || !strings.Contains(exitErr.Stderr, tt.stderrHas) {
						t.Errorf("ExitError = %+v, want code %d, host %s, stderr with %q", exitErr, tt.code, h, tt.stderrHas)
					}
					if string(out) != tt.stdout {
						t.Errorf("stdout = %q, want %q", out, tt.stdout)
					}
					if !strings.Contains(err.Error(), tt.messageHas) || !strings.HasPrefix(err.Error(), h.String()+": ") {
						t.Errorf("message %q: want %s: ... %q", err, h, tt.messageHas)
					}
				})
			}
		})
	}
}

var marker atomic.Int64

// uniqueSleep is a sleep command line no other test runs, so its process
// can be found.
func uniqueSleep() []string {
	return []string{"sleep", "600." + strconv.Itoa(os.Getpid()) + strconv.FormatInt(1000+marker.Add(1), 10)}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunCancelStopsTheCommand(t *testing.T) {
	t.Parallel()
	for name, h := range hosts(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			argv := uniqueSleep()
			t.Cleanup(func() { killAll(argv) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := h.Run(ctx, argv, nil)
				done <- err
			}()
			waitFor(t, strings.Join(argv, " ")+" to start", func() bool { return len(testenv.ProcessesRunning(argv...)) > 0 })
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run after cancel: %v, want context.Canceled", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after its context was canceled")
			}
			waitFor(t, strings.Join(argv, " ")+" to end", func() bool { return len(testenv.ProcessesRunning(argv...)) == 0 })

			// A canceled context runs nothing.
			if _, err := h.Run(ctx, []string{"true"}, nil); !errors.Is(err, context.Canceled) {
				t.Errorf("Run with a canceled context: %v", err)
			}
		})
	}
}

func killAll(argv []string) {
	for _, pid := range testenv.ProcessesRunning(argv...) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestDialContext(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for name, h := range hosts(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			client := &http.Client{Transport: &http.Transport{DialContext: h.DialContext}, Timeout: 20 * time.Second}
			defer client.CloseIdleConnections()
			resp, err := client.Get("http://" + addr + "/health")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello from /health" {
				t.Errorf("body %q", body)
			}
			// A closed port is an error, not a hang.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if conn, err := h.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))); err == nil {
				conn.Close()
				t.Error("dialing a closed port succeeded")
			}
		})
	}
}

func TestWriteReadFile(t *testing.T) {
	t.Parallel()
	for name, h := range hosts(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), `with space`, `it's "quoted" $(id) ; x`)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "-compose file.yml")
			for _, tt := range []struct {
				data []byte
				mode os.FileMode
			}{
				{[]byte("services:\n  app:\n    image: x\n"), 0o640},
				{[]byte{}, 0o600},
				{bytes.Repeat([]byte("\x00\xffbinary\n"), 100000), 0o644},
			} {
				if err := remote.WriteFile(ctx, h, path, tt.data, tt.mode); err != nil {
					t.Fatal(err)
				}
				got, err := remote.ReadFile(ctx, h, path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.data) {
					t.Errorf("read back %d bytes, wrote %d", len(got), len(tt.data))
				}
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != tt.mode {
					t.Errorf("mode %v, want %v", st.Mode().Perm(), tt.mode)
				}
			}
			// Nothing but the file is left: no temp files.
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("dir holds %d entries, want only the file", len(entries))
			}

			_, err := remote.ReadFile(ctx, h, filepath.Join(dir, "missing"))
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
				t.Errorf("ReadFile of a missing file: %v, want fs.ErrNotExist naming it", err)
			}
			err = remote.WriteFile(ctx, h, filepath.Join(dir, "no such dir", "f"), []byte("x"), 0o644)
			var exitErr *remote.ExitError
			if !errors.As(err, &exitErr) || !strings.Contains(err.Error(), "no such dir") || strings.Contains(err.Error(), "umask") {
				t.Errorf("WriteFile into a missing dir: %v, want a short ExitError naming the path", err)
			}
			if _, err := remote.ReadFile(ctx, h, dir); err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ReadFile of a directory: %v, want an error other than not-exist", err)
			}
		})
	}
}
