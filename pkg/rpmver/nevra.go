package rpmver

import (
	"errors"
	"fmt"
	"strings"
)

// NEVRA is a package's name, epoch, version, release and architecture: what
// identifies one build of a package in an rpm database or a repository.
type NEVRA struct {
	Name string
	EVR
	// Arch is the build architecture: "x86_64", "aarch64", "noarch", "src".
	Arch string
}

// ErrNEVRA is returned by ParseNEVRA for a string that is not a NEVRA; the
// wrapping error says which part is wrong.
var ErrNEVRA = errors.New("rpmver: malformed NEVRA")

// ParseNEVRA reads "name-[epoch:]version-release.arch", as rpm writes
// %{nevra} and dnf its package specs ("openssl-libs-1:3.0.7-16.el9_2.aarch64"),
// and the same followed by ".rpm", as in rpm file names
// ("bash-5.1.8-6.el9_1.x86_64.rpm").
//
// The arch is what follows the last '.', the release what follows the last
// '-' before it, the version what follows the '-' before that, and the name
// is the rest, so names may hold '-' and '.' but versions and releases may
// not hold '-'. A missing epoch is left "" (it compares as 0). Every part
// must be non-empty; the epoch, when given, must be digits; ':' may appear
// only after the epoch; the arch is ASCII letters, digits and '_', and not
// "rpm"; no part may hold whitespace, control bytes or '/'. A file path must
// be cut to its base name first.
func ParseNEVRA(s string) (NEVRA, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("parse NEVRA %q: %s: %w", s, fmt.Sprintf(format, args...), ErrNEVRA)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '/' {
			return NEVRA{}, bad("byte %q at offset %d", c, i)
		}
	}
	rest := strings.TrimSuffix(s, ".rpm")

	var n NEVRA
	dot := strings.LastIndexByte(rest, '.')
	if dot < 0 {
		return NEVRA{}, bad("no '.arch' at the end")
	}
	n.Arch, rest = rest[dot+1:], rest[:dot]
	switch {
	case n.Arch == "":
		return NEVRA{}, bad("empty arch")
	case n.Arch == "rpm":
		return NEVRA{}, bad("no arch before '.rpm'")
	}
	for i := 0; i < len(n.Arch); i++ {
		if c := n.Arch[i]; !isAlnum(c) && c != '_' {
			return NEVRA{}, bad("arch %q: byte %q is not a letter, digit or '_'", n.Arch, c)
		}
	}

	dash := strings.LastIndexByte(rest, '-')
	if dash < 0 {
		return NEVRA{}, bad("no '-release' before the arch")
	}
	n.Release, rest = rest[dash+1:], rest[:dash]
	if n.Release == "" {
		return NEVRA{}, bad("empty release")
	}
	if strings.IndexByte(n.Release, ':') >= 0 {
		return NEVRA{}, bad("release %q holds ':'", n.Release)
	}

	dash = strings.LastIndexByte(rest, '-')
	if dash < 0 {
		return NEVRA{}, bad("no '-version' before the release")
	}
	n.Name, rest = rest[:dash], rest[dash+1:]
	if n.Name == "" {
		return NEVRA{}, bad("empty name")
	}
	if strings.IndexByte(n.Name, ':') >= 0 {
		return NEVRA{}, bad("name %q holds ':' (the epoch goes before the version: name-epoch:version-release.arch)", n.Name)
	}

	if colon := strings.IndexByte(rest, ':'); colon >= 0 {
		n.Epoch, rest = rest[:colon], rest[colon+1:]
		if n.Epoch == "" {
			return NEVRA{}, bad("empty epoch before ':'")
		}
		for i := 0; i < len(n.Epoch); i++ {
			if !isDigit(n.Epoch[i]) {
				return NEVRA{}, bad("epoch %q is not a number", n.Epoch)
			}
		}
		if strings.IndexByte(rest, ':') >= 0 {
			return NEVRA{}, bad("version %q holds ':'", rest)
		}
	}
	n.Version = rest
	if n.Version == "" {
		return NEVRA{}, bad("empty version")
	}
	return n, nil
}

// String writes "name-epoch:version-release.arch" with the epoch always
// written, 0 when absent ("bash-0:5.1.8-6.el9_1.x86_64"), the form rpmfleet
// uses in plans and reports. ParseNEVRA reads it back.
func (n NEVRA) String() string {
	return n.Name + "-" + n.EVR.String() + "." + n.Arch
}

// NVRA writes "name-version-release.arch", never an epoch
// ("openssl-libs-3.0.7-16.el9_2.aarch64"): what `rpm -qa` prints (its
// default query format is %{nvra}).
func (n NEVRA) NVRA() string {
	return n.Name + "-" + n.Version + "-" + n.Release + "." + n.Arch
}

// Short writes "name-[epoch:]version-release.arch" with the epoch left out
// when it is absent or 0 ("bash-5.1.8-6.el9_1.x86_64",
// "openssl-libs-1:3.0.7-16.el9_2.aarch64"): the form dnf prints and
// `rpm -q --qf '%{NEVRA}'` prints for a package without an epoch, and the
// one the agent's update journal and verdicts name packages by. ParseNEVRA
// reads it back.
func (n NEVRA) Short() string {
	return n.Name + "-" + n.EVR.Short() + "." + n.Arch
}

// Key is one build of a package as a comparable value: two NEVRAs that
// name the same build (an epoch "0" and none) have equal Keys, so a Key
// keys a map, as the SHA-256 digests a signed plan pins on the agent do.
// The zero Key names no package. Make one with NEVRA.Key.
type Key struct {
	// n is the NEVRA with a 0 epoch written as none.
	n NEVRA
}

// Key returns n's Key.
func (n NEVRA) Key() Key {
	if n.Epoch == "0" {
		n.Epoch = ""
	}
	return Key{n: n}
}

// NEVRA returns the package the Key names, a 0 epoch given as none.
func (k Key) NEVRA() NEVRA { return k.n }

// String writes the Key as NEVRA.Short does, byte for byte; it is the
// form in which plans' pins have always been keyed.
func (k Key) String() string { return k.n.Short() }

// Filename returns the package's rpm file name,
// "name-version-release.arch.rpm": rpm file names never carry the epoch.
func (n NEVRA) Filename() string {
	return n.NVRA() + ".rpm"
}
