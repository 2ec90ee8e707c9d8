package testenv

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDInstall is how OpenSSH's server is installed.
const SSHDInstall = "apt-get install --no-install-recommends openssh-server (scripts/tools.sh does it as root)"

// SSHD is a running OpenSSH server on loopback that accepts one generated
// client key.
type SSHD struct {
	Host string // 127.0.0.1
	Port int
	// User is the login name the client key is authorized for: root when the
	// tests run as root, the current user otherwise.
	User string
	// ClientKey is the authorized client's private key in OpenSSH PEM form,
	// as a user would paste it into the ssh-key input.
	ClientKey []byte
	// KnownHosts is the server's known_hosts line,
	// "[127.0.0.1]:PORT ssh-ed25519 AAAA...".
	KnownHosts string
	// HostKey is the server's public host key and HostKeyFingerprint its
	// SHA256:... fingerprint.
	HostKey            ssh.PublicKey
	HostKeyFingerprint string
	// Dir holds sshd's configuration, keys and pid file.
	Dir string

	pid int
	log *syncBuffer
}

// SSHDOptions configures an sshd.
type SSHDOptions struct {
	// ClientKey authorizes this OpenSSH PEM private key instead of a fresh
	// ed25519 key, e.g. to give a bastion and its target the same key.
	ClientKey []byte
	// Config holds extra sshd_config lines, added before the defaults (sshd
	// keeps the first value it reads for most keywords).
	Config []string
	// DeployUser, when the tests run as root, logs in as a dedicated
	// unprivileged user in the docker group with /bin/sh as its shell
	// (created once), as a real deploy host has. Besides being realistic, it
	// keeps root's interactive bash start-up out of every command.
	DeployUser bool
}

// DeployUserName is the user StartSSHD creates for SSHDOptions.DeployUser.
const DeployUserName = "gantry-deploy"

// ensureDeployUser creates DeployUserName, with its home directory, if it
// does not exist.
func ensureDeployUser(t testing.TB) {
	t.Helper()
	u, err := user.Lookup(DeployUserName)
	if err != nil {
		// --password '*': no password login, but not a locked account, which
		// sshd refuses even for keys when PAM is off.
		out, err := exec.Command("useradd", "--system", "--create-home", "--shell", "/bin/sh", "--groups", "docker", "--password", "*", DeployUserName).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "already exists") {
			t.Fatalf("testenv: useradd %s: %v\n%s", DeployUserName, err, out)
		}
		if u, err = user.Lookup(DeployUserName); err != nil {
			t.Fatalf("testenv: %s after useradd: %v", DeployUserName, err)
		}
	}
	// Another test process may have added the user and not yet its home: a
	// login before the home exists starts in / and every relative path
	// (gantry/<project>) fails. MkdirAll and Chown are idempotent.
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(u.HomeDir, 0o750); err != nil {
		t.Fatalf("testenv: home of %s: %v", DeployUserName, err)
	}
	if err := os.Chown(u.HomeDir, uid, gid); err != nil {
		t.Fatalf("testenv: home of %s: %v", DeployUserName, err)
	}
}

// StartSSHD starts /usr/sbin/sshd -D -e with its own configuration, host key
// and authorized_keys in a temp dir, listening on 127.0.0.1, stopped (with
// every connection it serves) when the test ends.
func StartSSHD(t testing.TB, o SSHDOptions) *SSHD {
	t.Helper()
	bin := sshdBinary(t)
	login := "root"
	if os.Geteuid() != 0 {
		// Without root, sshd can only log in the user it runs as.
		u, err := user.Current()
		if err != nil {
			t.Fatalf("testenv: current user: %v", err)
		}
		login = u.Username
	} else {
		// As root, sshd insists on its privilege separation directory. We
		// create it (what Debian's ssh.service does with RuntimeDirectory)
		// rather than run sshd under `unshare -m` with a tmpfs on /run:
		// that tmpfs would also hide /run/docker.sock from the commands the
		// deploy tests run over SSH.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("testenv: sshd needs /run/sshd as root: %v", err)
		}
	}

	dir := t.TempDir()
	if o.DeployUser && os.Geteuid() == 0 {
		ensureDeployUser(t)
		login = DeployUserName
		// sshd reads authorized_keys as the user: let it into the dir (and
		// its parent, which the testing package makes private).
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	hostPub, hostPEM := newEd25519Key(t, "gantry-test-host")
	clientKey := o.ClientKey
	if clientKey == nil {
		_, clientKey = newEd25519Key(t, "gantry-test-client")
	}
	signer, err := ssh.ParsePrivateKey(clientKey)
	if err != nil {
		t.Fatalf("testenv: SSHDOptions.ClientKey: %v", err)
	}
	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	authPath := filepath.Join(dir, "authorized_keys")
	writePrivate(t, hostKeyPath, hostPEM)
	writePrivate(t, authPath, ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err := os.Chmod(authPath, 0o644); err != nil {
		t.Fatal(err)
	}

	s := &SSHD{
		Host:               "127.0.0.1",
		User:               login,
		ClientKey:          clientKey,
		HostKey:            hostPub,
		HostKeyFingerprint: ssh.FingerprintSHA256(hostPub),
		Dir:                dir,
		log:                &syncBuffer{},
	}
	// FreePort can race with another process taking the port; try again
	// with a fresh one when sshd cannot bind.
	for attempt := 1; ; attempt++ {
		s.Port = FreePort(t)
		cfg := filepath.Join(dir, "sshd_config")
		writePrivate(t, cfg, []byte(sshdConfig(o.Config, s.Port, dir, hostKeyPath, authPath, login)))
		err := s.start(t, bin, cfg)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(s.log.String(), "Address already in use") {
			t.Fatalf("testenv: sshd: %v\n%s", err, s.log.String())
		}
	}
	s.KnownHosts = knownhosts.Line([]string{s.Addr()}, hostPub)
	return s
}

func sshdBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GANTRY_SSHD_BIN"); p != "" {
		return p
	}
	// sshd re-executes itself for every connection, so it must be started
	// by an absolute path; /usr/sbin is often not on a user's PATH.
	if isExec("/usr/sbin/sshd") {
		return "/usr/sbin/sshd"
	}
	if p, err := exec.LookPath("sshd"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	Missing(t, "sshd (OpenSSH server)", SSHDInstall)
	return ""
}

func sshdConfig(extra []string, port int, dir, hostKey, authKeys, login string) string {
	lines := append([]string{}, extra...)
	lines = append(lines,
		"Port "+strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey "+hostKey,
		"PidFile "+filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile "+authKeys,
		"AllowUsers "+login,
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"AllowTcpForwarding yes",
		"PrintMotd no",
		"UseDNS no",
		"MaxStartups 100",
		"MaxSessions 100",
		"LogLevel VERBOSE",
	)
	return strings.Join(lines, "\n") + "\n"
}

// start runs sshd and waits until it greets a client with its banner.
func (s *SSHD) start(t testing.TB, bin, cfg string) error {
	t.Helper()
	cmd := exec.Command(bin, "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.pid = cmd.Process.Pid
	deadline := time.Now().Add(30 * time.Second)
	for {
		if sshBanner(s.Addr()) {
			t.Cleanup(func() {
				// The listener leaves running connections alone when it
				// stops; end them too so no test leaks processes.
				for _, pid := range s.connectionProcesses() {
					killPID(pid)
				}
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
			})
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before listening on %s: %v", s.Addr(), err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("no SSH banner on %s within 30s", s.Addr())
		}
	}
}

func sshBanner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

// Addr is Host:Port.
func (s *SSHD) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Log returns what sshd printed so far (LogLevel VERBOSE).
func (s *SSHD) Log() string { return s.log.String() }

// Connections counts the connections sshd is serving now.
func (s *SSHD) Connections() int { return len(procChildren(s.pid)) }

// CutConnections kills (SIGKILL) the sshd processes serving connections, not
// the listener, as if the network dropped mid-deploy: clients see their
// connection close, new connections are still accepted. Commands those
// connections started get no signal from sshd, as with a real cut (gantry's
// own watchdog on the host stops them).
func (s *SSHD) CutConnections() {
	for _, pid := range s.connectionProcesses() {
		killPID(pid)
	}
}

// FreezeConnections stops (SIGSTOP) the sshd processes serving connections:
// their TCP connections stay open but nothing answers, like a network cut
// that sends no reset, which only keepalives detect. They are killed when
// the test ends.
func (s *SSHD) FreezeConnections() {
	for _, pid := range s.connectionProcesses() {
		stopPID(pid)
	}
}

// connectionProcesses lists the sshd processes below the listener: one
// privileged monitor per connection and its unprivileged child (the
// commands they run are not sshd and are not listed).
func (s *SSHD) connectionProcesses() []int {
	var pids []int
	queue := procChildren(s.pid)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if comm, _ := procStat(pid); comm == "sshd" {
			pids = append(pids, pid)
			queue = append(queue, procChildren(pid)...)
		}
	}
	return pids
}

// procChildren lists the processes whose parent is pid, from /proc.
func procChildren(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid := procStat(p); ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// procStat returns a process's command name and parent pid from
// /proc/PID/stat ("pid (comm) state ppid ..."; comm may hold spaces).
func procStat(pid int) (comm string, ppid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", -1
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", -1
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 {
		return "", -1
	}
	ppid, err = strconv.Atoi(fields[1])
	if err != nil {
		return "", -1
	}
	return s[open+1 : end], ppid
}

// newEd25519Key returns a fresh ed25519 public key and its private key in
// OpenSSH PEM form.
func newEd25519Key(t testing.TB, comment string) (ssh.PublicKey, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub, pem.EncodeToMemory(block)
}

// NewSSHKey returns a fresh ed25519 private key in OpenSSH PEM form, e.g. a
// key no server authorizes.
func NewSSHKey(t testing.TB) []byte {
	t.Helper()
	_, key := newEd25519Key(t, "gantry-test")
	return key
}

func writePrivate(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// ProcessesRunning lists the processes on this machine whose command line
// is exactly argv, e.g. to see whether a command started over SSH is still
// running.
func ProcessesRunning(argv ...string) []int {
	want := strings.Join(argv, "\x00") + "\x00"
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && string(b) == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// RemoveComposeProject removes what a deploy of Compose project left on
// this engine (containers, the default network, the edge's volumes) and
// in the home of the SSH user it deployed as.
func RemoveComposeProject(project, sshUser string) {
	ids, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+project).Output()
	if f := strings.Fields(string(ids)); len(f) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, f...)...).Run()
	}
	_ = exec.Command("docker", "network", "rm", project+"_default").Run()
	_ = exec.Command("docker", "volume", "rm", project+"_gantry-edge-config", project+"_gantry-edge-data").Run()
	if u, err := user.Lookup(sshUser); err == nil {
		_ = os.RemoveAll(filepath.Join(u.HomeDir, "gantry", project))
	}
}
