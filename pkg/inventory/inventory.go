// Package inventory is the installed-package set of one device, as the agent
// reads it from the rpm database and the server stores it, plus the device's
// distribution release read from os-release.
//
// It holds no I/O beyond parsing a reader: the agent's rpmdb reader fills
// Package values, reports carry them, and both sides use Digest to notice
// when their copies of a device's set disagree and Diff to send only what
// changed.
package inventory

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Package is one installed rpm.
type Package struct {
	Name string
	// EVR is the epoch, version and release as the rpm header holds them:
	// Epoch is "" when the header has no epoch tag and "0" when it holds 0.
	rpmver.EVR
	Arch string
	// ModularityLabel is the header's modularity label
	// ("nodejs:18:8090020240226101806:a7c0f3f3"), "" for a non-modular rpm.
	ModularityLabel string
}

// Module returns the module name and stream from the package's modularity
// label ("nodejs", "18" for "nodejs:18:8090020240226101806:a7c0f3f3"). ok is
// false for a package without a label or with a label that lacks a name or
// a stream.
func (p Package) Module() (name, stream string, ok bool) {
	parts := strings.SplitN(p.ModularityLabel, ":", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// NEVRA returns the package's name, epoch, version, release and arch.
func (p Package) NEVRA() rpmver.NEVRA {
	return rpmver.NEVRA{Name: p.Name, EVR: p.EVR, Arch: p.Arch}
}

// String writes the package as name-epoch:version-release.arch, with a
// missing epoch written as 0, the way rpmfleet's reports name packages.
func (p Package) String() string {
	return p.NEVRA().String()
}

// canonical is the line a package contributes to a digest: its NEVRA with
// the epoch always written, then its modularity label.
func (p Package) canonical() string {
	return p.String() + " " + p.ModularityLabel
}

// Digest returns the lower-case hex SHA-256 of the set's canonical lines
// (name-epoch:version-release.arch, a space, the modularity label, a
// newline), sorted. The order of pkgs does not matter, and a missing epoch
// counts as epoch 0, so an agent and a server holding the same set compute
// the same digest whatever order or epoch spelling they stored.
func Digest(pkgs []Package) string {
	lines := make([]string, len(pkgs))
	for i, p := range pkgs {
		lines[i] = p.canonical()
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Diff returns the packages in new that are not in old (added) and those in
// old that are not in new (removed), each sorted by name, arch and EVR. An
// upgrade shows as the old version removed and the new one added. Packages
// are the same when their canonical lines are (a missing epoch equals epoch
// 0); a package listed twice counts twice.
func Diff(old, new []Package) (added, removed []Package) {
	count := make(map[string]int, len(old))
	for _, p := range old {
		count[p.canonical()]++
	}
	for _, p := range new {
		k := p.canonical()
		if count[k] > 0 {
			count[k]--
			continue
		}
		added = append(added, p)
	}
	for _, p := range old {
		k := p.canonical()
		if count[k] > 0 {
			count[k]--
			removed = append(removed, p)
		}
	}
	Sort(added)
	Sort(removed)
	return added, removed
}

// Sort orders packages by name, then arch, then EVR as rpm compares them,
// then modularity label.
func Sort(pkgs []Package) {
	slices.SortStableFunc(pkgs, func(a, b Package) int {
		return cmp.Or(
			strings.Compare(a.Name, b.Name),
			strings.Compare(a.Arch, b.Arch),
			rpmver.Compare(a.EVR, b.EVR),
			strings.Compare(a.ModularityLabel, b.ModularityLabel),
		)
	})
}
