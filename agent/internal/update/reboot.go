package update

import (
	"fmt"
	"strings"
)

// rebootNames are the packages whose new version takes effect only after a
// reboot: the kernel, the C library, the init system, the message bus and
// the TLS library every daemon has loaded. A trailing * matches any suffix.
// The Raspberry Pi's kernel and firmware packages (raspberrypi2-*) are
// read by its boot loader only at boot.
var rebootNames = []string{"kernel*", "glibc", "systemd", "dbus*", "openssl-libs", "linux-firmware", "raspberrypi2-*"}

// needsReboot decides whether the replaced packages or the advisories call
// for a reboot, and says why.
func needsReboot(pkgs []Package, advs []AdvisoryRef) Reboot {
	var r Reboot
	for _, p := range pkgs {
		if p.InstallOnly {
			r.Reasons = append(r.Reasons, fmt.Sprintf("package %s was installed beside the running one", p.Name))
			continue
		}
		for _, n := range rebootNames {
			if p.Name == n || (strings.HasSuffix(n, "*") && strings.HasPrefix(p.Name, strings.TrimSuffix(n, "*"))) {
				r.Reasons = append(r.Reasons, fmt.Sprintf("package %s was updated", p.Name))
				break
			}
		}
	}
	for _, a := range advs {
		if a.RebootSuggested {
			r.Reasons = append(r.Reasons, fmt.Sprintf("advisory %s suggests a reboot", a.ID))
		}
	}
	r.Needed = len(r.Reasons) > 0
	return r
}
