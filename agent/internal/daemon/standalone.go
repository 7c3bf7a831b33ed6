package daemon

// Standalone mode: no fleet server. The daemon's "fetch" is then a local
// check that derives, from the device's own repositories, the plan the
// server would have signed, and the rest of the loop (policy, one cycle at
// a time, history, reboot, the rpm database watcher, MQTT state) is the
// same.
//
// The local plan is trusted as far as the repositories are: their
// repomd.xml (signed when the .repo file says repo_gpgcheck, or a
// repomd.xml.asc is there), their updateinfo.xml and primary.xml checked
// against repomd.xml's checksums as they stream, and each package of the
// plan pinned to the SHA-256 primary.xml gives it, so the cycle installs
// exactly the file the check decided on; and, as in server mode, every
// package must still verify against the pinned OpenPGP keys. The plan's
// ETag is a digest of every repository's updateinfo and primary checksums
// and of the installed package set: a check that finds them unchanged
// reads repomd.xml only and keeps the plan it has.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/config"
	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/applicability"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// LocalCheckTimeout bounds one local check, so a mirror that trickles its
// metadata cannot hold it for ever; the next poll tries again.
const LocalCheckTimeout = 30 * time.Minute

// advInfo is what Home Assistant shows of an advisory beyond the plan.
type advInfo struct {
	Title string `json:"title,omitempty"`
	URL   string `json:"url,omitempty"`
}

// localResult is a local check's answer.
type localResult struct {
	plan *savedPlan
	info map[string]advInfo
}

// newRepoHTTPClient is the client metadata is read with: the update
// cycle's timeouts (30 s to connect, for TLS and for the answer's header).
func newRepoHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		TLSHandshakeTimeout:   30 * time.Second,
	}}
}

// openRepos opens the repositories the update cycle will use, with the
// same metadata cache folders (update.Options.repositories): the
// configuration's enabled [[repo]] entries, or else the enabled
// repositories of ROOT/etc/yum.repos.d with their mirror lists and
// metalinks.
func openRepos(cfg *config.Config, hc *http.Client, log *slog.Logger) ([]*repo.Repo, error) {
	var keys []string
	var bases []string
	for _, r := range cfg.Repos {
		if !r.Enabled {
			continue
		}
		bases = append(bases, r.BaseURL)
	}
	for _, r := range cfg.Repos {
		for _, k := range r.GPGKeys {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	if len(bases) > 0 {
		ring, err := repo.LoadKeyring(keys)
		if err != nil {
			return nil, err
		}
		var out []*repo.Repo
		for i, b := range bases {
			r, err := repo.New(b, repo.Options{HTTPClient: hc, CacheDir: filepath.Join(cfg.StateDir, "metadata", fmt.Sprint(i)), Keyring: ring, Log: log})
			if err != nil {
				return nil, fmt.Errorf("repository %s: %w", b, err)
			}
			out = append(out, r)
		}
		return out, nil
	}
	all, vars, err := repo.LoadSystem(cfg.Root)
	if err != nil {
		return nil, err
	}
	var cfgs []repo.Config
	for _, c := range all {
		if c.Enabled {
			cfgs = append(cfgs, c)
			files, err := c.KeyFiles(cfg.Root)
			if err != nil {
				return nil, err
			}
			keys = append(keys, files...)
		}
	}
	if len(cfgs) == 0 {
		return nil, fmt.Errorf("no repository: add a [[repo]] to the configuration, or enable one in %s", filepath.Join(cfg.Root, "etc/yum.repos.d"))
	}
	ring, err := repo.LoadKeyring(keys)
	if err != nil {
		return nil, err
	}
	var out []*repo.Repo
	for _, c := range cfgs {
		r, err := repo.NewFromConfig(c, repo.Options{HTTPClient: hc, CacheDir: filepath.Join(cfg.StateDir, "metadata", c.CacheName()),
			Keyring: ring, RequireSignature: c.RepoGPGCheck && ring != nil, Vars: vars, Log: log})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// localCheck derives the device's plan from its repositories. prevETag is
// the ETag of the plan held; when the repositories and the installed set
// are unchanged, it returns nil, nil (not modified) having read only each
// repomd.xml.
func localCheck(ctx context.Context, cfg *config.Config, hc *http.Client, log *slog.Logger, now time.Time, prevETag string) (*localResult, error) {
	repos, err := openRepos(cfg, hc, log)
	if err != nil {
		return nil, fmt.Errorf("local check: %w", err)
	}
	dbPath, err := rpmdb.Find(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("local check: %w", err)
	}
	installed, err := rpmdb.Read(dbPath)
	if err != nil {
		return nil, fmt.Errorf("local check: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "installed %s\n", inventory.Digest(installed))
	for _, r := range repos {
		m, err := r.Metadata(ctx)
		if err != nil {
			return nil, fmt.Errorf("local check: %s: %w", r, err)
		}
		for _, typ := range []string{"updateinfo", "primary"} {
			if d, ok := m.Get(typ); ok {
				fmt.Fprintf(h, "%s %s %s\n", r, typ, d.Checksum)
			}
		}
	}
	etag := "local:" + hex.EncodeToString(h.Sum(nil))
	if etag == prevETag {
		return nil, nil
	}

	// Which advisories the device is exposed to: updateinfo streamed,
	// one advisory at a time; an advisory two repositories hold is kept
	// once, from its latest copy.
	dev := applicability.NewDevice("", installed)
	found := map[string]applicability.Finding{}
	for _, r := range repos {
		err := r.EachAdvisory(ctx, func(a *advisory.Advisory) error {
			f, ok := dev.Match(a)
			if !ok {
				return nil
			}
			if old, seen := found[a.ID]; seen && !a.Updated.After(old.Advisory.Updated) {
				return nil
			}
			f.Advisory = a
			found[a.ID] = f
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("local check: %w", err)
		}
	}

	// Where each fix is: primary.xml streamed, keeping, per exposed
	// package and fixed version, the fix itself or else the oldest newer
	// package, as the update cycle chooses (update's scanPrimary).
	type want struct {
		fixed rpmver.EVR
		best  *repo.Package
	}
	wants := map[string][]*want{} // name.arch -> fixes wanted
	for _, f := range found {
		for _, fx := range f.Packages {
			k := fx.Installed.Name + "." + fx.Installed.Arch
			if !slices.ContainsFunc(wants[k], func(w *want) bool { return rpmver.Compare(w.fixed, fx.Fixed.EVR) == 0 }) {
				wants[k] = append(wants[k], &want{fixed: fx.Fixed.EVR})
			}
		}
	}
	if len(wants) > 0 {
		for _, r := range repos {
			if err := scanFixes(ctx, r, func(p *repo.Package) {
				for _, w := range wants[p.Name+"."+p.Arch] {
					if rpmver.Compare(p.EVR, w.fixed) < 0 {
						continue
					}
					if w.best == nil || rpmver.Compare(w.best.EVR, w.fixed) != 0 && rpmver.Compare(p.EVR, w.best.EVR) < 0 {
						cp := *p
						w.best = &cp
					}
				}
			}); err != nil {
				return nil, fmt.Errorf("local check: %w", err)
			}
		}
	}

	var plan protocol.Plan
	info := map[string]advInfo{}
	for _, f := range found {
		a := f.Advisory
		pa := protocol.PlanAdvisory{ID: a.ID, Type: string(a.Type), Severity: a.Severity.String(), RebootSuggested: a.RebootSuggested, Status: protocol.StatusAffected}
		for _, fx := range f.Packages {
			var w *want
			for _, x := range wants[fx.Installed.Name+"."+fx.Installed.Arch] {
				if rpmver.Compare(x.fixed, fx.Fixed.EVR) == 0 {
					w = x
				}
			}
			if w == nil || w.best == nil {
				log.Info("fix in no repository; left out of the plan", "advisory", a.ID, "package", fx.Installed.Name, "fixed", fx.Fixed.EVR.String())
				continue
			}
			pp := protocol.PlanPackage{Name: fx.Installed.Name, Arch: fx.Installed.Arch, Installed: fx.Installed.EVR.Short(), Fixed: w.best.EVR.Short(),
				Location: w.best.Location, Size: w.best.Size}
			if w.best.Checksum.Type == "sha256" {
				pp.SHA256 = strings.ToLower(w.best.Checksum.Value)
			}
			pa.Packages = append(pa.Packages, pp)
		}
		if len(pa.Packages) == 0 {
			continue
		}
		plan.Advisories = append(plan.Advisories, pa)
		info[a.ID] = advInfo{Title: a.Title, URL: errataURL(a)}
	}
	slices.SortFunc(plan.Advisories, func(x, y protocol.PlanAdvisory) int {
		sx, _ := advisory.ParseSeverity(x.Severity)
		sy, _ := advisory.ParseSeverity(y.Severity)
		if sx != sy {
			return int(sy) - int(sx)
		}
		return strings.Compare(x.ID, y.ID)
	})
	return &localResult{
		plan: &savedPlan{ETag: etag, Expires: now.Add(max(cfg.Poll.Interval, time.Hour) * 2), Plan: plan, Local: true, Info: info},
		info: info,
	}, nil
}

// scanFixes streams a repository's primary.xml through keep.
func scanFixes(ctx context.Context, r *repo.Repo, keep func(*repo.Package)) error {
	pr, err := r.Primary(ctx)
	if err != nil {
		return fmt.Errorf("read primary of %s: %w", r, err)
	}
	defer pr.Close()
	for {
		p, err := pr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read primary of %s: %w", r, err)
		}
		keep(p)
	}
}

// errataURL is the advisory's own page: its "self" reference, else its
// first http(s) reference that is not a CVE or bug tracker entry.
func errataURL(a *advisory.Advisory) string {
	var other string
	for _, r := range a.References {
		if !strings.HasPrefix(r.URL, "https://") && !strings.HasPrefix(r.URL, "http://") {
			continue
		}
		switch r.Type {
		case "self":
			return r.URL
		case "cve", "bugzilla":
		default:
			if other == "" {
				other = r.URL
			}
		}
	}
	return other
}

// fetchLocal runs a local check in a worker; fetched takes its answer.
func (d *daemon) fetchLocal() {
	prev := ""
	if d.plan != nil && d.plan.Local {
		prev = d.plan.ETag
	}
	cfg, now, log := d.cfg, d.now(), d.o.Log
	go func() {
		ctx, cancel := context.WithTimeout(d.ctx, LocalCheckTimeout)
		defer cancel()
		res, err := localCheck(ctx, cfg, d.repoClient, log, now, prev)
		r := fetchResult{err: err, notModified: err == nil && res == nil}
		if res != nil {
			r.local = res.plan
			r.etag = res.plan.ETag
		}
		d.fetchDone <- r
	}()
}
