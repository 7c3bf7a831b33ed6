package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// InventoryDigest returns the digest of a package set, as Inventory.Digest
// carries it: the lower-case hex SHA-256 of the set's canonical lines, one
// per package, "name-epoch:version-release.arch modularity_label\n" (the
// epoch written "0" when empty, "-release" left out when empty), sorted
// bytewise. A package listed twice counts twice. The order packages are
// given in does not change the digest, so the agent and the server agree
// on it however they list the set.
//
// It is the same function as pkg/inventory's Digest, which the agent uses
// on what it reads from the rpm database; a test holds them equal.
func InventoryDigest(pkgs []Package) string {
	lines := make([]string, len(pkgs))
	for i, p := range pkgs {
		lines[i] = p.Key() + " " + p.ModularityLabel + "\n"
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// EVR returns the package's "epoch:version-release", epoch always written,
// as rpmver.EVR.String does.
func (p Package) EVR() string {
	epoch := p.Epoch
	if epoch == "" {
		epoch = "0"
	}
	if p.Release == "" {
		return epoch + ":" + p.Version
	}
	return epoch + ":" + p.Version + "-" + p.Release
}

// Key identifies the package in a set: "name-epoch:version-release.arch".
// Two installed packages rarely share a key, though they may share a name
// (several kernels).
func (p Package) Key() string {
	return p.Name + "-" + p.EVR() + "." + p.Arch
}
