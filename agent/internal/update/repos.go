package update

// The repositories a cycle reads: given on the command line, or the
// device's enabled .repo files.

import (
	"fmt"
	"path/filepath"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
)

// repositories opens --repo, or the device's enabled .repo files, and
// returns the keys to pin. The pinned keys also check repomd.xml.asc where a
// repository has one; a .repo file's repo_gpgcheck makes it required. A
// repository of a .repo file is found as dnf finds it: its baseurls, then
// its metalink's or mirror list's mirrors, tried in order (repo.NewFromConfig).
func (o *Options) repositories() ([]*repo.Repo, []string, error) {
	keys := o.Keys
	opts := func(i int, requireSig bool, ring openpgp.EntityList, vars map[string]string) repo.Options {
		return repo.Options{HTTPClient: o.HTTPClient, CacheDir: filepath.Join(o.StateDir, "metadata", fmt.Sprint(i)),
			Keyring: ring, RequireSignature: requireSig && ring != nil, Vars: vars, Log: o.Log}
	}
	if len(o.Repos) > 0 {
		ring, err := repo.LoadKeyring(keys)
		if err != nil {
			return nil, nil, err
		}
		var repos []*repo.Repo
		for i, b := range o.Repos {
			r, err := repo.New(b, opts(i, false, ring, nil))
			if err != nil {
				return nil, nil, stepErr(ErrPlan, false, "repository %s: %w", b, err)
			}
			repos = append(repos, r)
		}
		return repos, keys, nil
	}
	cfgs, vars, err := o.repoConfigs()
	if err != nil {
		return nil, nil, err
	}
	if len(o.Keys) == 0 {
		for _, c := range cfgs {
			files, err := c.KeyFiles(o.Root)
			if err != nil {
				return nil, nil, stepErr(ErrPlan, false, "%w (give --gpgkey)", err)
			}
			keys = append(keys, files...)
		}
	}
	ring, err := repo.LoadKeyring(keys)
	if err != nil {
		return nil, nil, err
	}
	var repos []*repo.Repo
	for i, c := range cfgs {
		ro := opts(i, c.RepoGPGCheck, ring, vars)
		ro.CacheDir = filepath.Join(o.StateDir, "metadata", c.CacheName())
		r, err := repo.NewFromConfig(c, ro)
		if err != nil {
			return nil, nil, stepErr(ErrPlan, false, "%w", err)
		}
		repos = append(repos, r)
	}
	return repos, keys, nil
}

// repoConfigs reads the enabled repositories of ROOT/etc/yum.repos.d with
// the variables dnf would use there (repo.SystemVars: ROOT/etc/dnf/vars,
// $releasever from os-release, $basearch of this machine).
func (o *Options) repoConfigs() ([]repo.Config, map[string]string, error) {
	all, vars, err := repo.LoadSystem(o.Root)
	if err != nil {
		return nil, nil, err
	}
	var out []repo.Config
	for _, c := range all {
		if c.Enabled {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, nil, stepErr(ErrPlan, false, "no repository: give --repo, or enable one in %s", filepath.Join(o.Root, "etc/yum.repos.d"))
	}
	return out, vars, nil
}
