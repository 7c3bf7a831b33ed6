package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// InventoryDigest returns the digest of a package set, as Inventory.Digest
// carries it: "sha256:" and the hex SHA-256 of the set's canonical form.
//
// The canonical form is one line per distinct package,
// "name\tepoch:version-release\tarch\tmodularity_label\n" with the epoch
// written "0" when empty, the lines sorted bytewise. The order packages are
// given in and repeated entries do not change the digest, so the agent and
// the server agree on it however they list the set.
func InventoryDigest(pkgs []Package) string {
	lines := make([]string, len(pkgs))
	for i, p := range pkgs {
		lines[i] = p.canonical()
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// EVR returns the package's "epoch:version-release", epoch always written.
func (p Package) EVR() string {
	epoch := p.Epoch
	if epoch == "" {
		epoch = "0"
	}
	return epoch + ":" + p.Version + "-" + p.Release
}

// Key identifies the package in a set: name, EVR and arch. Two installed
// packages never share a key, though they may share a name (several
// kernels).
func (p Package) Key() string {
	return p.Name + "-" + p.EVR() + "." + p.Arch
}

func (p Package) canonical() string {
	var b strings.Builder
	b.Grow(len(p.Name) + len(p.Version) + len(p.Release) + len(p.Arch) + len(p.ModularityLabel) + 8)
	b.WriteString(p.Name)
	b.WriteByte('\t')
	b.WriteString(p.EVR())
	b.WriteByte('\t')
	b.WriteString(p.Arch)
	b.WriteByte('\t')
	b.WriteString(p.ModularityLabel)
	b.WriteByte('\n')
	return b.String()
}
