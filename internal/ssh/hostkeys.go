package ssh

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks host keys against the known-hosts input, or accepts any
// with a warning when insecure.
type hostKeys struct {
	check    ssh.HostKeyCallback // nil when insecure
	insecure bool
	warnf    func(string, ...any)
}

func newHostKeys(content string, insecure bool, warnf func(string, ...any)) (*hostKeys, error) {
	if insecure {
		return &hostKeys{insecure: true, warnf: warnf}, nil
	}
	if strings.TrimSpace(content) == "" {
		return nil, errors.New("the known-hosts input is empty: give the host's known_hosts line (ssh-keyscan -p PORT HOST prints it) so its key can be checked")
	}
	check, err := parseKnownHosts(content)
	if err != nil {
		return nil, err
	}
	return &hostKeys{check: check, warnf: warnf}, nil
}

// parseKnownHosts reads known_hosts content. knownhosts only reads files,
// so the content goes through a private temp file that is removed at once.
func parseKnownHosts(content string) (ssh.HostKeyCallback, error) {
	f, err := os.CreateTemp("", "gantry-known-hosts-*")
	if err != nil {
		return nil, fmt.Errorf("known-hosts: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("known-hosts: %w", err)
	}
	check, err := knownhosts.New(f.Name())
	if err != nil {
		// "knownhosts: /tmp/...:3: illegal base64 data" names our temp file.
		msg := strings.ReplaceAll(err.Error(), f.Name()+":", "line ")
		msg = strings.TrimPrefix(msg, "knownhosts: ")
		return nil, fmt.Errorf("the known-hosts input is not in known_hosts format: %s", msg)
	}
	return check, nil
}

// callback checks the key offered for addr (host:port) and keeps the
// user-facing reason in *reason, since x/crypto wraps callback errors.
func (h *hostKeys) callback(addr string, reason *error) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		fp := ssh.FingerprintSHA256(key)
		if h.insecure {
			h.warnf("INSECURE: host key checking is off; accepted %s %s for %s without checking it. Anyone between this runner and the host can impersonate it. Put the host's key in the known-hosts input instead (ssh-keyscan -p PORT HOST).", key.Type(), fp, addr)
			return nil
		}
		err := h.check(hostname, remote, key)
		if err == nil {
			return nil
		}
		host, port, _ := net.SplitHostPort(addr)
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
			*reason = fmt.Errorf("host key for %s is not in known-hosts (the server offered %s %s); add its line to the known-hosts input (ssh-keyscan -p %s %s)", addr, key.Type(), fp, port, host)
		case errors.As(err, &keyErr):
			*reason = fmt.Errorf("host key for %s does not match known-hosts (got %s); update the known-hosts input", addr, fp)
		case errors.As(err, &revoked):
			*reason = fmt.Errorf("host key for %s is marked @revoked in known-hosts (got %s); the host needs a new key", addr, fp)
		default:
			*reason = fmt.Errorf("host key for %s: %v", addr, err)
		}
		return *reason
	}
}

// probeKey is a key no known_hosts lists: checking it yields the keys that
// are listed for a host.
var probeKey, _ = ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())

// algorithms returns the host key algorithms to offer for addr: those of
// the keys known-hosts lists for it, so a server with several host keys
// presents one we can check instead of failing as a mismatch. nil (every
// algorithm) when the host is not listed or checking is off.
func (h *hostKeys) algorithms(addr string) []string {
	if h.insecure {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if err := h.check(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey); !errors.As(err, &keyErr) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range keyErr.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// algorithmsFor maps a key type to the signature algorithms that use it.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}
