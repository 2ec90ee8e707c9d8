package ssh_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/ssh"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// options connects to s with its client key and known-hosts line.
func options(s *testenv.SSHD) ssh.Options {
	return ssh.Options{Host: s.Host, Port: s.Port, User: s.User, PrivateKey: s.ClientKey, KnownHosts: s.KnownHosts}
}

func dial(t *testing.T, o ssh.Options) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// otherKeyLine is a known_hosts line for addr with a key the server does
// not have.
func otherKeyLine(t *testing.T, addr string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := xssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return knownhosts.Line([]string{addr}, key)
}

func TestDialChecksHostKey(t *testing.T) {
	t.Parallel()
	s := testenv.StartSSHD(t, testenv.SSHDOptions{})
	other := testenv.StartSSHD(t, testenv.SSHDOptions{})
	addr := s.Addr()
	tests := []struct {
		name       string
		knownHosts string
		want       string
	}{
		{"unknown host", other.KnownHosts,
			fmt.Sprintf("host key for %s is not in known-hosts (the server offered ssh-ed25519 %s); add its line to the known-hosts input (ssh-keyscan -p %d 127.0.0.1)", addr, s.HostKeyFingerprint, s.Port)},
		{"changed key", otherKeyLine(t, addr),
			fmt.Sprintf("host key for %s does not match known-hosts (got %s); update the known-hosts input", addr, s.HostKeyFingerprint)},
		{"empty", " \n", "the known-hosts input is empty"},
		{"not known_hosts", "[127.0.0.1]:22 ssh-ed25519 !!!notbase64\n", "the known-hosts input is not in known_hosts format: line 1:"},
		{"revoked", "@revoked " + s.KnownHosts + "\n" + s.KnownHosts,
			fmt.Sprintf("host key for %s is marked @revoked in known-hosts (got %s)", addr, s.HostKeyFingerprint)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := options(s)
			o.KnownHosts = tt.knownHosts
			c, err := ssh.Dial(context.Background(), o)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if err.Error() != tt.want && !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}

	t.Run("listed among others", func(t *testing.T) {
		t.Parallel()
		o := options(s)
		o.KnownHosts = "# deploy targets\n" + other.KnownHosts + "\n\n" + otherKeyLine(t, "[10.0.0.1]:22") + "\n" + s.KnownHosts + "\n"
		c := dial(t, o)
		if out, err := c.Run(context.Background(), []string{"echo", "ok"}, nil); err != nil || string(out) != "ok\n" {
			t.Errorf("Run: %q, %v", out, err)
		}
		if c.String() != s.User+"@"+addr {
			t.Errorf("String() = %q, want %s@%s", c, s.User, addr)
		}
	})
}

// TestDialPicksTheKnownKeyType: a server with several host keys must be
// asked for the one known-hosts lists, not fail as a mismatch.
func TestDialPicksTheKnownKeyType(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := xssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ssh_host_ecdsa_key")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := xssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.StartSSHD(t, testenv.SSHDOptions{Config: []string{"HostKey " + path}})
	for _, line := range []string{knownhosts.Line([]string{s.Addr()}, pub), s.KnownHosts} {
		o := options(s)
		o.KnownHosts = line
		c := dial(t, o)
		if _, err := c.Run(context.Background(), []string{"true"}, nil); err != nil {
			t.Errorf("known-hosts %q: %v", line, err)
		}
	}
}

func TestDialInsecureWarns(t *testing.T) {
	t.Parallel()
	s := testenv.StartSSHD(t, testenv.SSHDOptions{})
	var mu sync.Mutex
	var warnings []string
	o := options(s)
	o.KnownHosts = ""
	o.InsecureIgnoreHostKey = true
	o.Warnf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, fmt.Sprintf(format, args...))
	}
	c := dial(t, o)
	if _, err := c.Run(context.Background(), []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "INSECURE") || !strings.Contains(warnings[0], s.HostKeyFingerprint) {
		t.Errorf("warnings %q, want one loud warning naming %s", warnings, s.HostKeyFingerprint)
	}
}

func TestDialRejectsKeys(t *testing.T) {
	t.Parallel()
	s := testenv.StartSSHD(t, testenv.SSHDOptions{})
	stranger := testenv.NewSSHKey(t)
	strangerSigner, err := xssh.ParsePrivateKey(stranger)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := xssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	encrypted := pem.EncodeToMemory(block)
	signer, _ := xssh.ParsePrivateKey(s.ClientKey)
	public := xssh.MarshalAuthorizedKey(signer.PublicKey())
	oneLine := strings.ReplaceAll(string(s.ClientKey), "\n", `\n`)

	tests := []struct {
		name string
		key  []byte
		want string
	}{
		{"not authorized", stranger, fmt.Sprintf("user %s on %s refused the key (%s of ssh-key)", s.User, s.Addr(), xssh.FingerprintSHA256(strangerSigner.PublicKey()))},
		{"empty", nil, "the ssh-key input is empty"},
		{"garbage", []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWJ1dC1icm9rZW4=\n-----END OPENSSH PRIVATE KEY-----\n"), "the ssh-key input is not a private key in PEM or OpenSSH format"},
		{"passphrase", encrypted, "the ssh-key input is encrypted with a passphrase"},
		{"public key", public, "the ssh-key input holds a public key"},
		{"escaped newlines", []byte(oneLine), `the ssh-key input has literal \n instead of line breaks`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := options(s)
			o.PrivateKey = tt.key
			c, err := ssh.Dial(context.Background(), o)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
			// The key's body never appears in the message.
			for _, line := range strings.Split(string(tt.key), "\n") {
				if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
					t.Errorf("error quotes the key: %s", err)
				}
			}
		})
	}
}

func TestDialTimeout(t *testing.T) {
	t.Parallel()
	// A server that accepts and never speaks.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	o := ssh.Options{
		Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, User: "deploy",
		PrivateKey: testenv.NewSSHKey(t), KnownHosts: otherKeyLine(t, l.Addr().String()),
		Timeout: 200 * time.Millisecond,
	}
	done := make(chan error, 1)
	go func() {
		_, err := ssh.Dial(context.Background(), o)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
			t.Errorf("Dial to a silent server: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Dial to a silent server did not time out")
	}

	// Canceling ends the handshake too.
	o.Timeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := ssh.Dial(ctx, o)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("canceled Dial: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("canceled Dial did not return")
	}
}

func TestJumpHost(t *testing.T) {
	t.Parallel()
	bastion := testenv.StartSSHD(t, testenv.SSHDOptions{})
	target := testenv.StartSSHD(t, testenv.SSHDOptions{ClientKey: bastion.ClientKey})
	o := options(target)
	o.KnownHosts = bastion.KnownHosts + "\n" + target.KnownHosts + "\n"
	o.JumpHost = fmt.Sprintf("%s@%s", bastion.User, bastion.Addr())
	c := dial(t, o)
	out, err := c.Run(context.Background(), []string{"sh", "-c", `echo "$SSH_CONNECTION"`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The target's sshd saw a connection to its port (from the bastion).
	if fields := strings.Fields(string(out)); len(fields) != 4 || fields[3] != strconv.Itoa(target.Port) {
		t.Errorf("SSH_CONNECTION on the target = %q", out)
	}
	if c.String() != target.User+"@"+target.Addr() {
		t.Errorf("String() = %s", c)
	}
	if n := bastion.Connections(); n != 1 {
		t.Errorf("bastion serves %d connections, want 1", n)
	}
	// The target's connection runs inside the bastion's: cutting the
	// bastion's cuts it.
	bastion.CutConnections()
	_, err = c.Run(context.Background(), []string{"true"}, nil)
	if err == nil || !strings.Contains(err.Error(), "connection to "+target.Addr()+" lost during true") {
		t.Errorf("Run after the bastion's connection was cut: %v", err)
	}

	t.Run("errors name the hop", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name, knownHosts, jump, want string
		}{
			{"bastion unknown", target.KnownHosts, o.JumpHost, "jump host: host key for " + bastion.Addr() + " is not in known-hosts"},
			{"target unknown", bastion.KnownHosts, o.JumpHost, "host key for " + target.Addr() + " is not in known-hosts"},
			{"bad jump host", o.KnownHosts, "root@127.0.0.1:notaport", `jump host "127.0.0.1:notaport": port "notaport"`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				o := o
				o.KnownHosts, o.JumpHost = tt.knownHosts, tt.jump
				c, err := ssh.Dial(context.Background(), o)
				if err == nil {
					c.Close()
					t.Fatal("connected")
				}
				if !strings.HasPrefix(err.Error(), tt.want) {
					t.Errorf("error:\n%s\nwant prefix:\n%s", err, tt.want)
				}
			})
		}
	})
}

// sleepArgv is a sleep command line no other test runs, so its process can
// be found (and cleaned up: a cut connection leaves it running).
func sleepArgv(t *testing.T, n int) []string {
	argv := []string{"sleep", fmt.Sprintf("600.%d%03d", os.Getpid(), n)}
	t.Cleanup(func() {
		for _, pid := range testenv.ProcessesRunning(argv...) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return argv
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

func TestLostConnection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cut  func(*testenv.SSHD)
		want string
	}{
		// The server's side closes: the client sees it at once.
		{"killed", (*testenv.SSHD).CutConnections, "lost during sleep 600."},
		// Nothing answers and nothing closes: only keepalives notice.
		{"frozen", (*testenv.SSHD).FreezeConnections, "no reply to keepalives"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testenv.StartSSHD(t, testenv.SSHDOptions{})
			o := options(s)
			o.KeepAlive = 100 * time.Millisecond
			c := dial(t, o)
			argv := sleepArgv(t, i)
			done := make(chan error, 1)
			go func() {
				_, err := c.Run(context.Background(), argv, nil)
				done <- err
			}()
			waitFor(t, "the remote sleep to start", func() bool { return len(testenv.ProcessesRunning(argv...)) > 0 })
			tt.cut(s)
			select {
			case err := <-done:
				var exitErr *remote.ExitError
				if err == nil || errors.As(err, &exitErr) || !strings.HasPrefix(err.Error(), "connection to "+s.Addr()+" lost during sleep") || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Run when the connection was cut: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not notice the cut connection")
			}
			// Later calls fail at once, with the same reason.
			if _, err := c.Run(context.Background(), []string{"true"}, nil); err == nil || !strings.Contains(err.Error(), "lost during true") {
				t.Errorf("Run on a lost connection: %v", err)
			}
			// The server still takes new connections.
			again := dial(t, o)
			if _, err := again.Run(context.Background(), []string{"true"}, nil); err != nil {
				t.Errorf("Run on a new connection: %v", err)
			}
			again.Close()
			if _, err := again.Run(context.Background(), []string{"true"}, nil); err == nil || !strings.Contains(err.Error(), "the connection was closed") {
				t.Errorf("Run after Close: %v", err)
			}
		})
	}
}

func TestRunCancelAsRootKillsGroup(t *testing.T) {
	t.Parallel()
	// A shell that runs the sleep as its child, not by exec: the whole
	// process group must go, not just the shell.
	s := testenv.StartSSHD(t, testenv.SSHDOptions{})
	c := dial(t, options(s))
	argv := sleepArgv(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, []string{"sh", "-c", `"$@"; echo after`, "sh", argv[0], argv[1]}, nil)
		done <- err
	}()
	waitFor(t, "the remote sleep to start", func() bool { return len(testenv.ProcessesRunning(argv...)) > 0 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	waitFor(t, "the remote sleep to end", func() bool { return len(testenv.ProcessesRunning(argv...)) == 0 })
	// The connection is still good.
	if _, err := c.Run(context.Background(), []string{"true"}, nil); err != nil {
		t.Errorf("Run after a cancel: %v", err)
	}
}

func TestCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"docker", "compose", "up", "-d"}, "docker compose up -d"},
		{[]string{"echo", "a b", "", "it's"}, `echo 'a b' '' "it's"`},
		{[]string{"printf", "%s", "$(id)"}, `printf %s '$(id)'`},
		{[]string{"printf", "a\nb\tc"}, "printf 'a\nb\tc'"},
		{[]string{"if"}, "'if'"},
	}
	for _, tt := range tests {
		got, err := ssh.Command(tt.argv)
		if err != nil || got != tt.want {
			t.Errorf("Command(%q) = %q, %v; want %q", tt.argv, got, err, tt.want)
		}
	}
	if _, err := ssh.Command([]string{"echo", "a\x00b"}); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("Command with a NUL byte: %v", err)
	}
	if _, err := ssh.Command(nil); err == nil {
		t.Error("Command(nil) succeeded")
	}
}

// TestCommandShells checks the quoting against every POSIX shell here, with
// no SSH in between.
func TestCommandShells(t *testing.T) {
	t.Parallel()
	args := []string{`"; rm -rf / #`, "$(id)", "`id`", "'q'", "a\nb", "\t", "", "-n", "ü", "\xff", `\`, "!x", "~root", "*"}
	cmd, err := ssh.Command(append([]string{"printf", "%s\x1f"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join(args, "\x1f") + "\x1f"
	for _, shell := range []string{"sh", "bash", "dash", "zsh", "busybox"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		argv := []string{path, "-c", cmd}
		if shell == "busybox" {
			argv = []string{path, "sh", "-c", cmd}
		}
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil || string(out) != want {
			t.Errorf("%s -c %q: %q, %v; want %q", shell, cmd, out, err, want)
		}
	}
}

func TestDialValidatesOptions(t *testing.T) {
	t.Parallel()
	key := testenv.NewSSHKey(t)
	tests := []struct {
		name string
		edit func(*ssh.Options)
		want string
	}{
		{"no host", func(o *ssh.Options) { o.Host = "" }, "ssh: no host given"},
		{"host with port", func(o *ssh.Options) { o.Host = "vm1:2222" }, `ssh: host "vm1:2222": want a host name or address alone`},
		{"host with user", func(o *ssh.Options) { o.Host = "deploy@vm1" }, `ssh: host "deploy@vm1"`},
		{"port", func(o *ssh.Options) { o.Port = 70000 }, "ssh: port 70000: want 1 to 65535"},
		{"no user", func(o *ssh.Options) { o.User = "" }, "ssh: no user given for vm1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := ssh.Options{Host: "vm1", User: "deploy", PrivateKey: key, KnownHosts: otherKeyLine(t, "vm1:22")}
			tt.edit(&o)
			_, err := ssh.Dial(context.Background(), o)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Dial: %v, want %s", err, tt.want)
			}
		})
	}
}

// childSpec is what the client process of TestKilledClientStopsRemoteCommand
// connects with and runs.
type childSpec struct {
	Host       string
	Port       int
	User       string
	Key        []byte
	KnownHosts string
	Argv       []string
}

// TestKilledClientStopsRemoteCommand kills (SIGKILL) a process running a
// remote command, as a lost runner dies: nothing tells the host, yet the
// command must stop there instead of changing the target on its own. A
// connection cut on the server's side must stop it too.
func TestKilledClientStopsRemoteCommand(t *testing.T) {
	if spec := os.Getenv("GANTRY_SSH_CHILD"); spec != "" {
		var c childSpec
		if err := json.Unmarshal([]byte(spec), &c); err != nil {
			panic(err)
		}
		client, err := ssh.Dial(context.Background(), ssh.Options{Host: c.Host, Port: c.Port, User: c.User, PrivateKey: c.Key, KnownHosts: c.KnownHosts})
		if err != nil {
			panic(err)
		}
		_, err = client.Run(context.Background(), c.Argv, nil)
		fmt.Println("run returned:", err)
		os.Exit(0)
	}
	t.Parallel()
	for i, how := range []string{"client killed", "connection cut"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			s := testenv.StartSSHD(t, testenv.SSHDOptions{})
			// A shell that runs the sleep as its child, as docker compose
			// runs its own children.
			argv := sleepArgv(t, 20+i)
			remoteArgv := []string{"sh", "-c", `"$@"; echo after`, "sh", argv[0], argv[1]}
			spec, err := json.Marshal(childSpec{s.Host, s.Port, s.User, s.ClientKey, s.KnownHosts, remoteArgv})
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestKilledClientStopsRemoteCommand$")
			cmd.Env = append(os.Environ(), "GANTRY_SSH_CHILD="+string(spec))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			defer func() { t.Logf("the client process said: %s", out.String()) }()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			waitFor(t, "the remote sleep to start", func() bool { return len(testenv.ProcessesRunning(argv...)) > 0 })
			if how == "client killed" {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			} else {
				s.CutConnections()
			}
			_ = cmd.Wait()
			waitFor(t, "the remote command to stop", func() bool { return len(testenv.ProcessesRunning(argv...)) == 0 })
		})
	}
}
