// Command devroot builds a device root for tests, benchmarks and the demo:
// an rpm database written by the real rpm from stub packages, and an
// etc/os-release.
//
//	go run ./internal/rpmtest/cmd/devroot -manifest FILE -os-release FILE -out DIR \
//	    [-add name-[epoch:]version-release.arch[@modularity-label] ...] [-size N]
//
// -manifest reads a RHEL image manifest (see rpmtest.ReadManifest); -add
// adds one package; -size grows the set to about N packages with stubs
// named after packages of the AlmaLinux OSV database (-osv, -ecosystem)
// that the manifest lacks: every other one older than its earliest fix,
// the rest at its latest fix, so a benchmark device has both exposed and
// patched packages. The choice is deterministic.
package main

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
	"github.com/rpmfleet/rpmfleet/pkg/version"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], log); err != nil {
		fmt.Fprintln(os.Stderr, "devroot:", err)
		stop()
		os.Exit(1)
	}
}

type addList []string

func (a *addList) String() string     { return strings.Join(*a, " ") }
func (a *addList) Set(s string) error { *a = append(*a, s); return nil }

func run(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("devroot", flag.ContinueOnError)
	manifest := fs.String("manifest", "", "RHEL image manifest (tab-separated, see rpmtest.ReadManifest)")
	osRelease := fs.String("os-release", "", "file to copy to ROOT/etc/os-release")
	out := fs.String("out", "", "device root to create (must not hold an rpm database yet)")
	size := fs.Int("size", 0, "grow the package set to about this many packages with OSV-named stubs")
	osv := fs.String("osv", "", "OSV JSON lines (.gz) naming extra packages for -size (default: testdata/almalinux-osv/almalinux9.jsonl.gz)")
	ecosystem := fs.String("ecosystem", "AlmaLinux:9", "OSV ecosystem of the extra packages")
	var adds addList
	fs.Var(&adds, "add", "add a package: name-[epoch:]version-release.arch[@modularity-label] (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	log.Info("devroot", "version", version.String())
	start := time.Now()

	var pkgs []rpmtest.Package
	if *manifest != "" {
		m, err := rpmtest.ReadManifest(*manifest)
		if err != nil {
			return err
		}
		pkgs = m
	}
	for _, a := range adds {
		p, err := parseAdd(a)
		if err != nil {
			return err
		}
		pkgs = append(pkgs, p)
	}
	if *size > len(pkgs) {
		src := *osv
		if src == "" {
			dir, err := rpmtest.FixturesDir()
			if err != nil {
				return err
			}
			src = filepath.Join(dir, "almalinux-osv", "almalinux9.jsonl.gz")
		}
		extra, err := extraPackages(src, *ecosystem, pkgs, *size-len(pkgs))
		if err != nil {
			return err
		}
		if len(pkgs)+len(extra) < *size {
			log.Warn("not enough OSV package names to reach -size", "size", *size, "packages", len(pkgs)+len(extra))
		}
		pkgs = append(pkgs, extra...)
	}
	if len(pkgs) == 0 {
		return errors.New("no packages: give -manifest, -add or -size")
	}
	if err := ctx.Err(); err != nil {
		return nil
	}
	var release []byte
	if *osRelease != "" {
		b, err := os.ReadFile(*osRelease)
		if err != nil {
			return fmt.Errorf("read os-release: %w", err)
		}
		release = b
	}
	if err := rpmtest.NewDevRoot(*out, release, pkgs); err != nil {
		return err
	}
	log.Info("device root ready", "root", *out, "packages", len(pkgs), "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// parseAdd reads name-[epoch:]version-release.arch[@label].
func parseAdd(s string) (rpmtest.Package, error) {
	nevra, label, _ := strings.Cut(s, "@")
	n, err := rpmver.ParseNEVRA(nevra)
	if err != nil {
		return rpmtest.Package{}, fmt.Errorf("-add: %w (want name-[epoch:]version-release.arch[@label])", err)
	}
	return rpmtest.Package{Name: n.Name, Epoch: n.Epoch, Version: n.Version, Release: n.Release, Arch: n.Arch, ModularityLabel: label}, nil
}

// osvRecord is the part of an OSV record extraPackages needs.
type osvRecord struct {
	Affected []struct {
		Package struct {
			Ecosystem string `json:"ecosystem"`
			Name      string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Events []struct {
				Fixed string `json:"fixed"`
			} `json:"events"`
		} `json:"ranges"`
	} `json:"affected"`
}

// extraPackages returns up to n stubs named after non-modular packages of
// the ecosystem in the OSV file that have is not in have, in name order:
// even ones just older than their earliest fix, odd ones at their latest.
func extraPackages(path, ecosystem string, have []rpmtest.Package, n int) ([]rpmtest.Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read OSV: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read OSV %s: %w", path, err)
	}
	fixed := map[string][]rpmver.EVR{}
	modular := map[string]bool{}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		var rec osvRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("read OSV %s: line %d: %w", path, line, err)
		}
		for _, a := range rec.Affected {
			if a.Package.Ecosystem != ecosystem {
				continue
			}
			for _, r := range a.Ranges {
				for _, e := range r.Events {
					if e.Fixed == "" {
						continue
					}
					evr, err := rpmver.ParseEVR(e.Fixed)
					if err != nil {
						return nil, fmt.Errorf("read OSV %s: line %d: %s fixed %q: %w", path, line, a.Package.Name, e.Fixed, err)
					}
					if strings.Contains(evr.Release, "module") {
						modular[a.Package.Name] = true
					}
					fixed[a.Package.Name] = append(fixed[a.Package.Name], evr)
				}
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read OSV %s: %w", path, err)
	}
	arch := commonArch(have)
	taken := map[string]bool{}
	for _, p := range have {
		taken[p.Name] = true
	}
	var extra []rpmtest.Package
	for i, name := range slices.Sorted(maps.Keys(fixed)) {
		if len(extra) >= n {
			break
		}
		if taken[name] || modular[name] {
			continue
		}
		evrs := fixed[name]
		slices.SortFunc(evrs, rpmver.Compare)
		p := rpmtest.Package{Name: name, Arch: arch}
		if i%2 == 0 {
			first := evrs[0]
			p.Epoch, p.Version, p.Release = first.Epoch, first.Version, "0.el9"
		} else {
			last := evrs[len(evrs)-1]
			p.Epoch, p.Version, p.Release = last.Epoch, last.Version, last.Release
		}
		extra = append(extra, p)
	}
	return extra, nil
}

// commonArch is the most frequent non-noarch arch of pkgs, aarch64 when
// there is none.
func commonArch(pkgs []rpmtest.Package) string {
	count := map[string]int{}
	for _, p := range pkgs {
		if p.Arch != "noarch" {
			count[p.Arch]++
		}
	}
	best := "aarch64"
	for _, a := range slices.Sorted(maps.Keys(count)) {
		if count[a] > count[best] {
			best = a
		}
	}
	return cmp.Or(best, "aarch64")
}
