package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/ssh"
)

// sshInputs are the inputs that reach a deploy host over SSH.
func sshInputs() []action.Input {
	return []action.Input{
		{Name: "host", Description: "Host to deploy to over SSH; `local` deploys to this machine's Docker engine without SSH.", Required: true},
		{Name: "port", Description: "SSH port.", Kind: action.Int, Default: "22"},
		{Name: "user", Description: "SSH user (needs access to docker on the host)."},
		{Name: "ssh-key", Description: "Private key for the SSH user (PEM or OpenSSH format).", Secret: true},
		{Name: "known-hosts", Description: "The host's public key line(s) in known_hosts format (`ssh-keyscan HOST`); required: host keys are pinned."},
		{Name: "insecure-ignore-host-key", Description: "Accept any host key (warns loudly). Only for throwaway hosts; refused together with known-hosts.", Kind: action.Bool, Default: "false"},
		{Name: "jump-host", Description: "Bastion to connect through, user@host:port (same key and known-hosts)."},
	}
}

// hostConfig is the validated SSH input.
type hostConfig struct {
	local bool
	opts  ssh.Options
}

func readHost(a *action.Action, in *action.Inputs) hostConfig {
	host := in.Required("host")
	if host == "local" {
		return hostConfig{local: true}
	}
	o := ssh.Options{
		Host: host, Port: in.Int("port"), User: in.String("user"),
		KnownHosts: in.String("known-hosts"), InsecureIgnoreHostKey: in.Bool("insecure-ignore-host-key"),
		JumpHost: in.String("jump-host"), Logf: a.Infof, Warnf: a.Warnf,
	}
	if o.User == "" {
		in.Fail("user", "is required with an SSH host")
	}
	key := in.String("ssh-key")
	if key == "" {
		in.Fail("ssh-key", "is required with an SSH host: the private key of user %s", o.User)
	}
	// A literal "\n" is how a key pasted into a one-line secret arrives.
	o.PrivateKey = []byte(strings.ReplaceAll(key, `\n`, "\n") + "\n")
	if o.KnownHosts != "" && o.InsecureIgnoreHostKey {
		in.Fail("insecure-ignore-host-key", "true conflicts with known-hosts, which pins the host key; give one of them (known-hosts is the safe one)")
	}
	if o.KnownHosts == "" && !o.InsecureIgnoreHostKey {
		in.Fail("known-hosts", "is required: host keys are pinned; add the output of `ssh-keyscan -p %d %s`", max(o.Port, 22), host)
	}
	if o.Port < 0 || o.Port > 65535 {
		in.Fail("port", "%d is not a TCP port", o.Port)
	}
	return hostConfig{opts: o}
}

// connect opens the host. An SSH host reconnects after a lost connection,
// so that a deploy cut off mid-way can still roll back and release its lock.
func (hc hostConfig) connect(ctx context.Context) (remote.Host, error) {
	if hc.local {
		name, _ := os.Hostname()
		return &remote.Local{Name: "local(" + name + ")"}, nil
	}
	r, err := remote.NewRedial(ctx, func(ctx context.Context) (remote.Host, error) { return ssh.Dial(ctx, hc.opts) })
	if err != nil {
		return nil, err
	}
	r.Logf = hc.opts.Warnf
	return r, nil
}

func (hc hostConfig) String() string {
	if hc.local {
		return "local"
	}
	return fmt.Sprintf("%s@%s:%d", hc.opts.User, hc.opts.Host, max(hc.opts.Port, 22))
}
