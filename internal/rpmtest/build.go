package rpmtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Package describes one stub rpm.
type Package struct {
	Name string
	// Epoch is "" for a header without an epoch tag; "0" writes the tag
	// with the value 0.
	Epoch   string
	Version string
	Release string
	// Arch is the package's architecture: aarch64, armv7hl, x86_64,
	// noarch, ... (rpmbuild --target). It must be set.
	Arch string
	// ModularityLabel, when set, is written as the header's modularity
	// label ("nodejs:18:8090020240226101806:a7c0f3f3").
	ModularityLabel string
	// Files maps absolute paths to their content; a stub with no files is
	// a header-only package, enough for rpm --justdb and for matching.
	Files map[string]string
	// Requires and Provides are spec dependency lines ("openssl-libs",
	// "libfoo.so.1()(64bit)", "bar >= 1.2"). Automatic dependencies are off.
	Requires, Provides []string
	// Summary defaults to "rpmfleet test stub".
	Summary string
}

// FileName is the rpm file name: name-version-release.arch.rpm.
func (p Package) FileName() string {
	return p.Name + "-" + p.Version + "-" + p.Release + "." + p.Arch + ".rpm"
}

// ErrBadPackage is returned for a Package that cannot be written as a spec.
var ErrBadPackage = errors.New("rpmtest: bad package")

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9_+.-]*$`)
	verRE   = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`)
	epochRE = regexp.MustCompile(`^[0-9]*$`)
	archRE  = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	labelRE = regexp.MustCompile(`^[^\s%]*$`)
	depRE   = regexp.MustCompile(`^[^\n%"]+$`)
	pathRE  = regexp.MustCompile(`^(/[A-Za-z0-9_+@:=,.-]+)+$`)
)

func (p Package) validate() error {
	bad := func(field, val string) error {
		return fmt.Errorf("%w: %s %s %q", ErrBadPackage, p.Name, field, val)
	}
	switch {
	case !nameRE.MatchString(p.Name):
		return fmt.Errorf("%w: name %q", ErrBadPackage, p.Name)
	case !epochRE.MatchString(p.Epoch):
		return bad("epoch", p.Epoch)
	case !verRE.MatchString(p.Version):
		return bad("version", p.Version)
	case !verRE.MatchString(p.Release):
		return bad("release", p.Release)
	case !archRE.MatchString(p.Arch):
		return bad("arch", p.Arch)
	case !labelRE.MatchString(p.ModularityLabel):
		return bad("modularity label", p.ModularityLabel)
	case strings.ContainsAny(p.Summary, "\n\r"):
		return bad("summary", p.Summary)
	}
	for _, d := range slices.Concat(p.Requires, p.Provides) {
		if !depRE.MatchString(d) {
			return bad("dependency", d)
		}
	}
	for path := range p.Files {
		if !pathRE.MatchString(path) || strings.Contains(path+"/", "/../") || strings.Contains(path+"/", "/./") {
			return bad("file path", path)
		}
	}
	return nil
}

// stanza is the package's part of a spec: its %package, %description and
// %files sections, as a sub-package of a spec that holds many stubs.
func (p Package) stanza() string {
	var b strings.Builder
	summary := p.Summary
	if summary == "" {
		summary = "rpmfleet test stub"
	}
	fmt.Fprintf(&b, "%%package -n %s\nSummary: %s\n", p.Name, strings.ReplaceAll(summary, "%", "%%"))
	if p.Epoch != "" {
		fmt.Fprintf(&b, "Epoch: %s\n", p.Epoch)
	}
	fmt.Fprintf(&b, "Version: %s\nRelease: %s\nAutoReqProv: no\n", p.Version, p.Release)
	if p.Arch == "noarch" {
		b.WriteString("BuildArch: noarch\n")
	}
	if p.ModularityLabel != "" {
		fmt.Fprintf(&b, "ModularityLabel: %s\n", p.ModularityLabel)
	}
	for _, r := range p.Requires {
		fmt.Fprintf(&b, "Requires: %s\n", r)
	}
	for _, r := range p.Provides {
		fmt.Fprintf(&b, "Provides: %s\n", r)
	}
	fmt.Fprintf(&b, "%%description -n %s\nrpmfleet test stub %s.\n%%files -n %s\n", p.Name, p.Name, p.Name)
	for _, path := range slices.Sorted(maps.Keys(p.Files)) {
		fmt.Fprintf(&b, "%q\n", path)
	}
	return b.String()
}

// cacheFormat changes whenever the spec template changes, so stale cached
// stubs are not reused.
const cacheFormat = "rpmtest-stub-v1"

// key identifies a built stub: the spec stanza, the file contents, the
// target and the rpmbuild version.
func (p Package) key(rpmbuildVersion string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", cacheFormat, rpmbuildVersion, p.Arch)
	h.Write([]byte(p.stanza()))
	for _, path := range slices.Sorted(maps.Keys(p.Files)) {
		fmt.Fprintf(h, "%s\x00%d\x00%s", path, len(p.Files[path]), p.Files[path])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CacheEnv names the environment variable that overrides the stub cache
// folder (default: the user cache folder's rpmfleet/rpmtest).
const CacheEnv = "RPMFLEET_RPMTEST_CACHE"

func cacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = filepath.Join(os.TempDir(), "rpmfleet-cache")
	}
	return filepath.Join(d, "rpmfleet", "rpmtest"), nil
}

var rpmbuildVersion = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("rpmbuild", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("rpmbuild --version (run make deps to install rpm-build): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
})

// Build writes the packages as .rpm files into dir and returns their paths,
// in the order of pkgs. Stubs already in the cache are copied from it; the
// others are built with rpmbuild -bb, all stubs of one target architecture in
// one run (each spec holds many stubs as sub-packages), then cached. Two
// packages with the same file name in one call are an error.
func Build(dir string, pkgs ...Package) ([]string, error) {
	if len(pkgs) == 0 {
		return nil, nil
	}
	version, err := rpmbuildVersion()
	if err != nil {
		return nil, err
	}
	cache, err := cacheDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("rpmtest: stub cache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rpmtest: output folder: %w", err)
	}
	keys := make([]string, len(pkgs))
	seen := make(map[string]int, len(pkgs))
	var missing []int
	for i, p := range pkgs {
		if err := p.validate(); err != nil {
			return nil, err
		}
		if j, dup := seen[p.FileName()]; dup {
			return nil, fmt.Errorf("%w: packages %d and %d are both %s", ErrBadPackage, j, i, p.FileName())
		}
		seen[p.FileName()] = i
		keys[i] = p.key(version)
		if _, err := os.Stat(cachePath(cache, keys[i])); err != nil {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		if err := buildMissing(cache, pkgs, keys, missing); err != nil {
			return nil, err
		}
	}
	paths := make([]string, len(pkgs))
	for i, p := range pkgs {
		paths[i] = filepath.Join(dir, p.FileName())
		if err := copyFile(cachePath(cache, keys[i]), paths[i]); err != nil {
			return nil, fmt.Errorf("rpmtest: %s: %w", p.FileName(), err)
		}
	}
	return paths, nil
}

func cachePath(cache, key string) string {
	return filepath.Join(cache, key[:2], key+".rpm")
}

// buildMissing builds pkgs[missing] and stores them in the cache.
func buildMissing(cache string, pkgs []Package, keys []string, missing []int) error {
	top, err := os.MkdirTemp("", "rpmtest-build-")
	if err != nil {
		return fmt.Errorf("rpmtest: %w", err)
	}
	defer os.RemoveAll(top)
	sources := filepath.Join(top, "SOURCES")
	if err := os.MkdirAll(sources, 0o755); err != nil {
		return fmt.Errorf("rpmtest: %w", err)
	}

	// noarch stubs ride along with any other target; rpmbuild puts them
	// in RPMS/noarch whatever the target.
	byTarget := map[string][]int{}
	var noarch []int
	for _, i := range missing {
		if pkgs[i].Arch == "noarch" {
			noarch = append(noarch, i)
		} else {
			byTarget[pkgs[i].Arch] = append(byTarget[pkgs[i].Arch], i)
		}
	}
	targets := slices.Sorted(maps.Keys(byTarget))
	if len(targets) == 0 {
		targets = []string{"noarch"}
	}
	byTarget[targets[0]] = append(byTarget[targets[0]], noarch...)

	nspec := 0
	for _, target := range targets {
		specs, err := writeSpecs(top, sources, pkgs, byTarget[target], &nspec)
		if err != nil {
			return err
		}
		args := []string{
			"-bb", "--quiet", "--target", target,
			"--define", "_topdir " + top,
			"--define", "_build_id_links none",
			"--define", "debug_package %{nil}",
			"--define", "__spec_install_post %{nil}",
			"--define", "_binary_payload w3.zstdio",
		}
		cmd := exec.Command("rpmbuild", append(args, specs...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("rpmtest: rpmbuild --target %s of %d stubs: %w: %s", target, len(byTarget[target]), err, lastLines(out.String(), 15))
		}
		for _, i := range byTarget[target] {
			built := filepath.Join(top, "RPMS", pkgs[i].Arch, pkgs[i].FileName())
			if err := storeInCache(built, cachePath(cache, keys[i])); err != nil {
				return fmt.Errorf("rpmtest: rpmbuild --target %s: %s: %w", target, pkgs[i].FileName(), err)
			}
		}
	}
	return nil
}

// writeSpecs writes the stubs idx as sub-packages of as few specs as
// possible: one spec cannot hold two packages of the same name or two
// owners of the same path.
func writeSpecs(top, sources string, pkgs []Package, idx []int, nspec *int) ([]string, error) {
	type spec struct {
		names, paths map[string]bool
		stanzas      strings.Builder
		install      strings.Builder
	}
	var specs []*spec
	for _, i := range idx {
		p := pkgs[i]
		var s *spec
		for _, c := range specs {
			if c.names[p.Name] || slices.ContainsFunc(slices.Collect(maps.Keys(p.Files)), func(f string) bool { return c.paths[f] }) {
				continue
			}
			s = c
			break
		}
		if s == nil {
			s = &spec{names: map[string]bool{}, paths: map[string]bool{}}
			specs = append(specs, s)
		}
		s.names[p.Name] = true
		s.stanzas.WriteString(p.stanza())
		for _, path := range slices.Sorted(maps.Keys(p.Files)) {
			s.paths[path] = true
			sum := sha256.Sum256([]byte(p.Files[path]))
			src := hex.EncodeToString(sum[:])
			if err := os.WriteFile(filepath.Join(sources, src), []byte(p.Files[path]), 0o644); err != nil {
				return nil, fmt.Errorf("rpmtest: %w", err)
			}
			fmt.Fprintf(&s.install, "install -D -m 0644 '%%{_sourcedir}/%s' '%%{buildroot}%s'\n", src, path)
		}
	}
	var files []string
	for _, s := range specs {
		*nspec++
		name := fmt.Sprintf("rpmfleet-rpmtest-stubs%d", *nspec)
		text := fmt.Sprintf("Name: %s\nVersion: 1\nRelease: 1\nSummary: rpmfleet test stubs\nLicense: MIT\nAutoReqProv: no\n"+
			"%%description\nrpmfleet test stubs.\n%%install\n%s\n%s", name, s.install.String(), s.stanzas.String())
		path := filepath.Join(top, name+".spec")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("rpmtest: %w", err)
		}
		files = append(files, path)
	}
	return files, nil
}

// storeInCache copies a built rpm into the cache by temp file and rename,
// so concurrent test processes never see half a file.
func storeInCache(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	in, err := os.Open(src)
	if err != nil {
		tmp.Close()
		return fmt.Errorf("rpmbuild did not write it: %w", err)
	}
	defer in.Close()
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
