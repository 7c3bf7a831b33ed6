// Package version reports the version of the rpmfleet binaries: the one
// stamped at build time with -ldflags -X, or else what the Go toolchain
// recorded about the module.
package version

import "runtime/debug"

// Version is set at build time:
//
//	go build -ldflags "-X github.com/rpmfleet/rpmfleet/pkg/version.Version=1.2.3"
var Version = ""

// String returns the stamped version, or the module version and VCS revision
// from the build info, or "devel".
func String() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
