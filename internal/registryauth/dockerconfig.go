package registryauth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerConfig looks host up in the Docker config, as authn.DefaultKeychain does but with the file
// found through Options.Getenv: $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json, else
// Podman's $REGISTRY_AUTH_FILE. It returns a nil Authenticator when no file has credentials for host.
func (r *Resolver) dockerConfig(_ context.Context, host string) (authn.Authenticator, string, error) {
	cf, path, err := r.loadDockerConfig()
	if err != nil || cf == nil {
		return nil, path, err
	}
	key := host
	if host == name.DefaultRegistry || host == "docker.io" {
		key = authn.DefaultAuthKey
	}
	// GetAuthConfig also asks credential helpers (credsStore, credHelpers), as docker does.
	cfg, err := cf.GetAuthConfig(key)
	if err != nil {
		return nil, path, fmt.Errorf("registry %s: reading credentials from the Docker config %s: %w", host, path, err)
	}
	cfg.ServerAddress = ""
	if cfg == (types.AuthConfig{}) {
		return nil, path, nil
	}
	ac := authn.AuthConfig{
		Username:      cfg.Username,
		Password:      cfg.Password,
		Auth:          cfg.Auth,
		IdentityToken: cfg.IdentityToken,
		RegistryToken: cfg.RegistryToken,
	}
	for _, s := range []string{ac.Password, ac.Auth, ac.IdentityToken, ac.RegistryToken} {
		r.mask(s)
	}
	return authn.FromConfig(ac), path, nil
}

func (r *Resolver) loadDockerConfig() (*configfile.ConfigFile, string, error) {
	getenv := r.opts.Getenv
	var candidates []string
	if dir := getenv("DOCKER_CONFIG"); dir != "" {
		candidates = append(candidates, filepath.Join(dir, config.ConfigFileName))
	} else if home := getenv("HOME"); home != "" {
		candidates = append(candidates, filepath.Join(home, ".docker", config.ConfigFileName))
	}
	if f := getenv("REGISTRY_AUTH_FILE"); f != "" {
		candidates = append(candidates, f)
	}
	for _, path := range candidates {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, path, fmt.Errorf("reading the Docker config: %w", err)
		}
		cf := configfile.New(path)
		err = cf.LoadFromReader(f)
		f.Close()
		if err != nil {
			return nil, path, fmt.Errorf("parsing the Docker config %s: %w", path, err)
		}
		return cf, path, nil
	}
	return nil, "", nil
}
