package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
)

// contactHost is an SSH host that counts the TCP connections it is offered
// and closes them: any count above zero means a command reached the target.
type contactHost struct {
	port  int
	count atomic.Int64
}

func startContactHost(t *testing.T) *contactHost {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h := &contactHost{port: l.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				h.count.Add(1)
				c.Close()
			}
		}
	}()
	return h
}

// flagArgs turns base inputs, with over replacing or adding some, into
// --name value arguments; an empty value in over drops the input.
func flagArgs(base, over map[string]string) []string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range over {
		m[k] = v
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var args []string
	for _, k := range names {
		if m[k] != "" {
			args = append(args, "--"+k, m[k])
		}
	}
	return args
}

const badInputImage = "registry.example/web@sha256:1111111111111111111111111111111111111111111111111111111111111111"

// TestBadInputsReachNoHost runs each SSH command with one bad input against a
// host that counts connections: every run must exit 1 with one error line
// titled with the input the user set, and the host must see no connection
// (so no lock taken, nothing uploaded). The "valid" cases prove the host
// counts: the same inputs without the fault do connect.
func TestBadInputsReachNoHost(t *testing.T) {
	h := startContactHost(t)
	workspace(t, map[string]string{"compose.yml": appCompose})
	knownHosts := fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH8Yqs6uI4hZQdsCxBZOc0hn3k9vTbyW/QWNNPsvDkBd", h.port)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"host": "127.0.0.1", "port": fmt.Sprint(h.port), "user": "deploy", "ssh-key": string(pem.EncodeToMemory(block)), "known-hosts": knownHosts}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	compose := with(map[string]string{"project": "gtbadinput", "compose-file": "compose.yml", "images": "web=" + badInputImage, "sha": sha1,
		"env-file": "LOG_LEVEL=info\nDB_PASSWORD=\"hunter2-compose\"\nDSN=host=db,port=5432\n"})
	swarm := with(map[string]string{"stack": "gtbadinput", "compose-file": "compose.yml", "images": "web=" + badInputImage, "sha": sha1,
		"env-file": "LOG_LEVEL=info\nAPI_TOKEN=hunter2-swarm\n"})
	scale := with(map[string]string{"stack": "gtbadinput", "scale": "web=2"})
	rollback := with(map[string]string{"project": "gtbadinput", "to": "previous"})

	for _, tc := range []struct {
		name, cmd string
		base      map[string]string
		over      map[string]string
		input     string // "" for a valid run, which must reach the host
		want      string
	}{
		{"compose valid", "deploy-compose", compose, nil, "", ""},
		{"compose image for a service not in the file", "deploy-compose", compose, map[string]string{"images": "api=" + badInputImage}, "images", `service "api" is not in compose.yml (it has: web)`},
		{"compose services not in the file", "deploy-compose", compose, map[string]string{"services": "api"}, "services", `service "api" is not in compose.yml`},
		{"compose edge not in the file", "deploy-compose", compose, map[string]string{"edge": "api"}, "edge", `service "api" is not in compose.yml`},
		{"compose url not http", "deploy-compose", compose, map[string]string{"url": "ftp://app.example.com/health"}, "url", "is not an http:// or https:// URL"},
		{"compose url relative", "deploy-compose", compose, map[string]string{"url": "/health"}, "url", "is not an http:// or https:// URL"},
		{"compose negative bare duration", "deploy-compose", compose, map[string]string{"drain": "-5"}, "drain", `"-5" is negative`},
		{"compose negative duration", "deploy-compose", compose, map[string]string{"stop-timeout": "-5s"}, "stop-timeout", `"-5s" is negative`},
		{"compose duration overflow", "deploy-compose", compose, map[string]string{"verify-timeout": "99999999999999999999"}, "verify-timeout", "longer than a week"},
		{"compose duration garbage", "deploy-compose", compose, map[string]string{"start-timeout": "2 minutes"}, "start-timeout", "is not a duration"},
		{"compose lock-stale negative", "deploy-compose", compose, map[string]string{"lock-stale": "-1h"}, "lock-stale", "is negative"},
		{"compose env-file key with a space", "deploy-compose", compose, map[string]string{"env-file": "LOG=info\nMY KEY=hunter2-value"}, "env-file", "key cannot contain a space"},
		{"compose env-file bad character", "deploy-compose", compose, map[string]string{"env-file": "A@B=hunter2-value"}, "env-file", `unexpected character "@" in a variable name`},
		{"compose host key pinned and ignored", "deploy-compose", compose, map[string]string{"insecure-ignore-host-key": "true"}, "insecure-ignore-host-key", "conflicts with known-hosts"},

		{"swarm valid", "deploy-swarm", swarm, nil, "", ""},
		{"swarm image for a service not in the file", "deploy-swarm", swarm, map[string]string{"images": "api=" + badInputImage}, "images", `service "api" is not in compose.yml`},
		{"swarm scale for a service not in the file", "deploy-swarm", swarm, map[string]string{"scale": "api=3"}, "scale", `service "api" is not in compose.yml`},
		{"swarm services not in the file", "deploy-swarm", swarm, map[string]string{"services": "api"}, "services", `service "api" is not in compose.yml`},
		{"swarm url", "deploy-swarm", swarm, map[string]string{"url": "app.example.com/health"}, "url", "is not an http:// or https:// URL"},
		{"swarm env-file name the shell cannot export", "deploy-swarm", swarm, map[string]string{"env-file": "LOG-LEVEL=info"}, "env-file", "not a variable name the shell can export"},
		{"swarm env-file key with a space", "deploy-swarm", swarm, map[string]string{"env-file": "MY KEY=v"}, "env-file", "not a variable name the shell can export"},
		{"swarm negative duration", "deploy-swarm", swarm, map[string]string{"update-delay": "-5"}, "update-delay", "is negative"},
		{"swarm host key pinned and ignored", "deploy-swarm", swarm, map[string]string{"insecure-ignore-host-key": "true"}, "insecure-ignore-host-key", "conflicts with known-hosts"},

		{"swarm-scale valid", "swarm-scale", scale, nil, "", ""},
		{"swarm-scale negative timeout", "swarm-scale", scale, map[string]string{"timeout": "-5"}, "timeout", "is negative"},
		{"swarm-scale lock-wait garbage", "swarm-scale", scale, map[string]string{"lock-wait": "forever"}, "lock-wait", "is not a duration"},

		{"rollback valid", "rollback", rollback, nil, "", ""},
		{"rollback host key pinned and ignored", "rollback", rollback, map[string]string{"insecure-ignore-host-key": "true"}, "insecure-ignore-host-key", "conflicts with known-hosts"},
		{"rollback negative verify-timeout", "rollback", rollback, map[string]string{"verify-timeout": "-5"}, "verify-timeout", "is negative"},
		{"rollback explicit kind", "rollback", rollback, map[string]string{"kind": "compose"}, "", ""},
		{"rollback unknown kind", "rollback", rollback, map[string]string{"kind": "k8s"}, "kind", "is not compose, swarm, ecs or cloudrun"},
		{"rollback kind swarm without stack", "rollback", rollback, map[string]string{"kind": "swarm"}, "stack", "is required for kind swarm"},
		{"rollback kind ecs without service", "rollback", rollback, map[string]string{"kind": "ecs"}, "service", "is required for kind ecs"},
		{"rollback kind cloudrun without gcp-project", "rollback", rollback, map[string]string{"kind": "cloudrun", "service": "api"}, "gcp-project", "is required for kind cloudrun"},
		{"rollback kind compose with a stack", "rollback", rollback, map[string]string{"kind": "compose", "stack": "gtbadinput"}, "kind", "the inputs set are those of swarm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.count.Load()
			args := append([]string{tc.cmd}, flagArgs(tc.base, tc.over)...)
			r := runCLI(t, map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "tester"}, nil, args...)
			contacts := h.count.Load() - before
			if tc.input == "" {
				if contacts == 0 {
					t.Fatalf("valid inputs never reached the host, so the count proves nothing:\n%s", r.log)
				}
				// Only the secret env-file value is masked: info stays readable.
				if env := tc.base["env-file"]; env != "" && (!strings.Contains(r.log, "::add-mask::hunter2-") || strings.Contains(r.log, "::add-mask::info")) {
					t.Errorf("masks: want the secret value only\n%s", r.log)
				}
				return
			}
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			var errs []string
			for _, l := range strings.Split(r.log, "\n") {
				if strings.HasPrefix(l, "::error") {
					errs = append(errs, l)
				}
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0], "::error title="+tc.input+"::") || !strings.Contains(errs[0], tc.want) {
				t.Errorf("want one error line titled %s saying %q, got %q", tc.input, tc.want, errs)
			}
			if contacts != 0 {
				t.Errorf("the host was contacted %d times", contacts)
			}
			for _, l := range strings.Split(r.log, "\n") {
				if strings.Contains(l, "hunter2") && !strings.HasPrefix(l, "::add-mask::") {
					t.Errorf("an env-file value reached the log: %q", l)
				}
			}
		})
	}
}
