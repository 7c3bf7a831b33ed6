package fleetsim

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// ReadManifest reads an image's rpm manifest as the Red Hat container
// catalog gives it (testdata/installed-inventory/claircore-ubi9/*.tsv):
// '#' comments, a header line naming the columns, then one package a line
// with tab-separated name, version, release, arch and srpm_nevra. The
// catalog gives no binary epoch; the source package's epoch stands in for
// it (they agree for the packages advisories name, openssl-libs' 1 among
// them).
func ReadManifest(path string) ([]protocol.Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer f.Close()
	pkgs, err := parseManifest(f)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", path, err)
	}
	return pkgs, nil
}

func parseManifest(r io.Reader) ([]protocol.Package, error) {
	sc := bufio.NewScanner(r)
	var cols map[string]int
	var pkgs []protocol.Package
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, "\t")
		if cols == nil {
			cols = map[string]int{}
			for i, c := range fields {
				cols[c] = i
			}
			for _, c := range []string{"name", "version", "release", "arch"} {
				if _, ok := cols[c]; !ok {
					return nil, fmt.Errorf("line %d: header has no %q column", line, c)
				}
			}
			continue
		}
		get := func(c string) string {
			if i, ok := cols[c]; ok && i < len(fields) {
				return fields[i]
			}
			return ""
		}
		p := protocol.Package{Name: get("name"), Version: get("version"), Release: get("release"), Arch: get("arch")}
		p.Epoch = sourceEpoch(get("srpm_nevra"))
		if p.Name == "" || p.Version == "" || p.Release == "" || p.Arch == "" {
			return nil, fmt.Errorf("line %d: name, version, release and arch must all be given", line)
		}
		if err := p.Validate("package"); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		pkgs = append(pkgs, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("no packages")
	}
	return pkgs, nil
}

// sourceEpoch is the epoch of a source NEVRA ("openssl-1:3.0.1-23.el9_0.src"
// gives "1"; "0" and none give "").
func sourceEpoch(nevra string) string {
	i := strings.IndexByte(nevra, ':')
	if i < 0 {
		return ""
	}
	j := strings.LastIndexByte(nevra[:i], '-')
	e := nevra[j+1 : i]
	if e == "0" {
		return ""
	}
	return e
}

// Perturb returns a copy of base changed the way copies of one image drift
// on real devices, as variant v of n decides (the same v gives the same
// set): variant 0 is the image itself; the others drop up to three
// packages, carry up to two packages a rebuild newer (release ".1"), and
// one in four holds a site package of its own. Sets stay sorted by name.
func Perturb(base []protocol.Package, v int) []protocol.Package {
	out := slices.Clone(base)
	if v == 0 {
		return out
	}
	rng := rand.New(rand.NewPCG(uint64(v), 0x5eed))
	for range rng.IntN(4) {
		if len(out) > 1 {
			i := rng.IntN(len(out))
			out = slices.Delete(out, i, i+1)
		}
	}
	for range rng.IntN(3) {
		i := rng.IntN(len(out))
		out[i].Release += ".1"
	}
	if v%4 == 0 {
		out = append(out, protocol.Package{Name: fmt.Sprintf("site-app-%d", v), Version: "1.0", Release: "1", Arch: "noarch"})
	}
	slices.SortFunc(out, func(a, b protocol.Package) int {
		return strings.Compare(a.Name+"\x00"+a.Arch, b.Name+"\x00"+b.Arch)
	})
	return out
}
