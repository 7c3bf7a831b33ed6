package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

func pkgs(names ...string) []advisory.Package {
	var out []advisory.Package
	for _, n := range names {
		out = append(out, advisory.Package{Name: n, Arch: "aarch64"})
	}
	return out
}

func TestDecide(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	weekend := Window{Days: 1<<time.Saturday | 1<<time.Sunday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}
	inWindow := utc("2026-11-28T02:00:00Z")    // saturday 03:00 CET
	outOfWindow := utc("2026-11-25T12:00:00Z") // wednesday
	openssl := &advisory.Advisory{ID: "ALSA-2023:3722", Type: advisory.Security, Severity: advisory.Important, Packages: pkgs("openssl", "openssl-libs")}
	kernel := &advisory.Advisory{ID: "ALSA-2024:0001", Type: advisory.Security, Severity: advisory.Critical, Packages: pkgs("kernel", "kernel-core", "bpftool")}
	bugfix := &advisory.Advisory{ID: "ALBA-2023:1111", Type: advisory.Bugfix, Packages: pkgs("tzdata")}
	untyped := &advisory.Advisory{ID: "ALSA-2023:9999", Severity: advisory.Low, Packages: pkgs("curl")}
	tests := []struct {
		name         string
		adv          *advisory.Advisory
		pol          Policy
		now          time.Time
		want         Verb
		wantPackages string
		wantReason   string
	}{
		{name: "notify mode notifies", adv: openssl, pol: Policy{Mode: Notify}, now: outOfWindow, want: NotifyOnly, wantPackages: "openssl,openssl-libs", wantReason: "mode is notify"},
		{name: "download mode downloads", adv: openssl, pol: Policy{Mode: Download}, now: outOfWindow, want: DownloadOnly, wantPackages: "openssl,openssl-libs"},
		{name: "apply without windows applies at once", adv: openssl, pol: Policy{Mode: Apply}, now: outOfWindow, want: ApplyNow, wantReason: "no maintenance window"},
		{name: "apply inside the window", adv: openssl, pol: Policy{Mode: Apply, Windows: []Window{weekend}}, now: inWindow, want: ApplyNow, wantReason: "window is open"},
		{name: "apply outside the window only notifies and says when", adv: openssl, pol: Policy{Mode: Apply, Windows: []Window{weekend}}, now: outOfWindow, want: NotifyOnly, wantReason: "next opens 2026-11-28 02:00 CET"},
		{name: "security only skips a bug fix", adv: bugfix, pol: Policy{Mode: Apply, SecurityOnly: true}, now: inWindow, want: Skip, wantReason: `type "bugfix" is not security`},
		{name: "bug fix passes without security only, min severity not applied", adv: bugfix, pol: Policy{Mode: Apply, MinSeverity: advisory.Critical}, now: inWindow, want: ApplyNow},
		{name: "below min severity skipped", adv: openssl, pol: Policy{Mode: Apply, MinSeverity: advisory.Critical}, now: inWindow, want: Skip, wantReason: "severity Important is below min_severity Critical"},
		{name: "at min severity acted on", adv: openssl, pol: Policy{Mode: Apply, MinSeverity: advisory.Important}, now: inWindow, want: ApplyNow},
		{name: "type from the id when the source gives none", adv: untyped, pol: Policy{Mode: Notify, SecurityOnly: true, MinSeverity: advisory.Moderate}, now: inWindow, want: Skip, wantReason: "severity Low is below"},
		{name: "exclude globs drop packages one by one", adv: kernel, pol: Policy{Mode: Apply, Exclude: []string{"kernel*"}}, now: inWindow, want: ApplyNow, wantPackages: "bpftool", wantReason: "excluded kernel (kernel*), kernel-core (kernel*)"},
		{name: "every package excluded skips", adv: openssl, pol: Policy{Mode: Apply, Exclude: []string{"grub2*", "openssl?libs", "openssl"}}, now: inWindow, want: Skip, wantReason: "every package is excluded: openssl (openssl), openssl-libs (openssl?libs)"},
		{name: "glob matches whole name only", adv: openssl, pol: Policy{Mode: Notify, Exclude: []string{"openss"}}, now: inWindow, want: NotifyOnly, wantPackages: "openssl,openssl-libs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.adv, &tt.pol, tt.now)
			if got.Verb != tt.want {
				t.Errorf("verb = %v (%s), want %v", got.Verb, got.Reason, tt.want)
			}
			if !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", got.Reason, tt.wantReason)
			}
			if tt.wantPackages != "" {
				var names []string
				for _, p := range got.Packages {
					names = append(names, p.Name)
				}
				if s := strings.Join(names, ","); s != tt.wantPackages {
					t.Errorf("packages = %s, want %s", s, tt.wantPackages)
				}
			}
		})
	}
}

func TestRebootAllowed(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	weekend := Window{Days: 1<<time.Saturday | 1<<time.Sunday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}
	in, out := utc("2026-11-28T02:00:00Z"), utc("2026-11-25T12:00:00Z")
	tests := []struct {
		name string
		pol  Policy
		now  time.Time
		want bool
	}{
		{name: "when-needed inside a window", pol: Policy{Reboot: RebootWhenNeeded, Windows: []Window{weekend}}, now: in, want: true},
		{name: "when-needed outside the window", pol: Policy{Reboot: RebootWhenNeeded, Windows: []Window{weekend}}, now: out, want: false},
		{name: "when-needed without any window never reboots", pol: Policy{Reboot: RebootWhenNeeded}, now: in, want: false},
		{name: "never, even in the window", pol: Policy{Reboot: RebootNever, Windows: []Window{weekend}}, now: in, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.pol.RebootAllowed(tt.now); got != tt.want {
				t.Errorf("RebootAllowed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseModeAndReboot(t *testing.T) {
	for _, s := range []string{"notify", "download", "apply"} {
		m, err := ParseMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("Apply"); err == nil {
		t.Error("ParseMode is case-sensitive like every other key value; Apply accepted")
	}
	for _, s := range []string{"never", "when-needed"} {
		r, err := ParseReboot(s)
		if err != nil || r.String() != s {
			t.Errorf("ParseReboot(%q) = %v, %v", s, r, err)
		}
	}
	if _, err := ParseReboot("always"); err == nil {
		t.Error("ParseReboot(always) accepted")
	}
	for _, g := range []string{"kernel*", "openssl-[0-9]*", `a\*`} {
		if err := CheckGlob(g); err != nil {
			t.Errorf("CheckGlob(%q) = %v", g, err)
		}
	}
	for _, g := range []string{"", "kernel[", `trailing\`} {
		if err := CheckGlob(g); err == nil {
			t.Errorf("CheckGlob(%q) accepted", g)
		}
	}
}

// TestSeveralWindows: the policy is open when any window is, and the next
// opening is the earliest of all, whatever their zones.
func TestSeveralWindows(t *testing.T) {
	ny, berlin := mustLoc(t, "America/New_York"), mustLoc(t, "Europe/Berlin")
	p := Policy{Windows: []Window{
		{Days: 1 << time.Saturday, Start: 2 * time.Hour, Length: time.Hour, Location: berlin}, // sat 01:00Z
		{Days: 1 << time.Friday, Start: 22 * time.Hour, Length: time.Hour, Location: ny},      // sat 03:00Z
	}}
	from := utc("2026-11-25T12:00:00Z")
	if got := p.NextWindow(from); !got.Equal(utc("2026-11-28T01:00:00Z")) {
		t.Errorf("NextWindow = %s, want the Berlin one", got.UTC())
	}
	if got := p.NextWindow(utc("2026-11-28T01:00:01Z")); !got.Equal(utc("2026-11-28T03:00:00Z")) {
		t.Errorf("NextWindow after Berlin opened = %s, want the New York one", got.UTC())
	}
	for at, want := range map[string]bool{"2026-11-28T01:30:00Z": true, "2026-11-28T02:30:00Z": false, "2026-11-28T03:30:00Z": true} {
		if got := p.InWindow(utc(at)); got != want {
			t.Errorf("InWindow(%s) = %v, want %v", at, got, want)
		}
	}
	if !(&Policy{}).InWindow(from) || !(&Policy{}).NextWindow(from).IsZero() {
		t.Error("without windows: always in window, no next window")
	}
}
