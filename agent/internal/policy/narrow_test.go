package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestNarrowOnlyNarrows: for each key the device's file sets, the result
// is the stricter of the server's and the device's; a key the file leaves
// out keeps the server's value.
func TestNarrowOnlyNarrows(t *testing.T) {
	all := SetMode | SetSecurityOnly | SetMinSeverity | SetReboot
	tests := []struct {
		name          string
		server, local Policy
		want          Policy
	}{
		{"server apply, local notify: notify",
			Policy{Mode: Apply}, Policy{Mode: Notify, Set: SetMode},
			Policy{Mode: Notify}},
		{"server notify, local apply: still notify",
			Policy{Mode: Notify}, Policy{Mode: Apply, Set: SetMode},
			Policy{Mode: Notify}},
		{"server apply, local download: download",
			Policy{Mode: Apply}, Policy{Mode: Download, Set: SetMode},
			Policy{Mode: Download}},
		{"server download, local apply: download",
			Policy{Mode: Download}, Policy{Mode: Apply, Set: SetMode},
			Policy{Mode: Download}},
		{"local file without mode keeps the server's apply",
			Policy{Mode: Apply}, Policy{Mode: Notify, SecurityOnly: true},
			Policy{Mode: Apply}},
		{"security only on either side wins (server)",
			Policy{Mode: Apply, SecurityOnly: true}, Policy{Mode: Apply, SecurityOnly: false, Set: all},
			Policy{Mode: Apply, SecurityOnly: true}},
		{"security only on either side wins (local)",
			Policy{Mode: Apply}, Policy{Mode: Apply, SecurityOnly: true, Set: all},
			Policy{Mode: Apply, SecurityOnly: true}},
		{"higher minimum severity: server's",
			Policy{Mode: Apply, MinSeverity: advisory.Important}, Policy{Mode: Apply, MinSeverity: advisory.Low, Set: all},
			Policy{Mode: Apply, MinSeverity: advisory.Important}},
		{"higher minimum severity: local",
			Policy{Mode: Apply, MinSeverity: advisory.Low}, Policy{Mode: Apply, MinSeverity: advisory.Critical, Set: all},
			Policy{Mode: Apply, MinSeverity: advisory.Critical}},
		{"reboot never on the device beats the server's when-needed",
			Policy{Mode: Apply, Reboot: RebootWhenNeeded}, Policy{Mode: Apply, Reboot: RebootNever, Set: all},
			Policy{Mode: Apply, Reboot: RebootNever}},
		{"reboot when-needed on the device does not beat the server's never",
			Policy{Mode: Apply, Reboot: RebootNever}, Policy{Mode: Apply, Reboot: RebootWhenNeeded, Set: all},
			Policy{Mode: Apply, Reboot: RebootNever}},
		{"excludes are the union",
			Policy{Mode: Apply, Exclude: []string{"kernel*", "glibc"}}, Policy{Mode: Apply, Exclude: []string{"glibc", "openssl*"}, Set: SetMode},
			Policy{Mode: Apply, Exclude: []string{"kernel*", "glibc", "openssl*"}}},
		{"health checks are the device's",
			Policy{Mode: Apply, HealthChecks: []string{"forged"}}, Policy{HealthChecks: []string{"systemctl is-active app"}},
			Policy{Mode: Apply, HealthChecks: []string{"systemctl is-active app"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Narrow(tt.server, tt.local)
			if got.Mode != tt.want.Mode || got.SecurityOnly != tt.want.SecurityOnly || got.MinSeverity != tt.want.MinSeverity ||
				got.Reboot != tt.want.Reboot || !slices.Equal(got.Exclude, tt.want.Exclude) || !slices.Equal(got.HealthChecks, tt.want.HealthChecks) {
				t.Errorf("Narrow = mode %v security_only %v min %v reboot %v exclude %v checks %v; want mode %v security_only %v min %v reboot %v exclude %v checks %v",
					got.Mode, got.SecurityOnly, got.MinSeverity, got.Reboot, got.Exclude, got.HealthChecks,
					tt.want.Mode, tt.want.SecurityOnly, tt.want.MinSeverity, tt.want.Reboot, tt.want.Exclude, tt.want.HealthChecks)
			}
		})
	}
}

// TestNarrowWindowsIntersect: with windows on both sides the agent applies
// only while one of each is open; the next opening is where they overlap.
func TestNarrowWindowsIntersect(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	sat, _ := ParseDays([]string{"sat"})
	satsun, _ := ParseDays([]string{"sat-sun"})
	// Server: Saturday 01:00-05:00 Berlin. Device: Sat/Sun 03:00-07:00.
	server := Policy{Mode: Apply, Windows: []Window{{Days: sat, Start: time.Hour, Length: 4 * time.Hour, Location: berlin}}}
	local := Policy{Mode: Apply, Set: SetMode, Windows: []Window{{Days: satsun, Start: 3 * time.Hour, Length: 4 * time.Hour, Location: berlin}}}
	p := Narrow(server, local)
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 2026-12-05 is a Saturday.
	tests := []struct {
		name string
		at   string
		open bool
	}{
		{"server window only", "2026-12-05 02:00", false},
		{"both open", "2026-12-05 04:00", true},
		{"device window only", "2026-12-05 06:00", false},
		{"device window on Sunday, no server window", "2026-12-06 04:00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.InWindow(at(tt.at)); got != tt.open {
				t.Errorf("InWindow(%s) = %v, want %v", tt.at, got, tt.open)
			}
			act := Decide(&advisory.Advisory{ID: "ALSA-2026:1", Type: advisory.Security, Packages: []advisory.Package{{Name: "openssl"}}}, &p, at(tt.at))
			if want := map[bool]Verb{true: ApplyNow, false: NotifyOnly}[tt.open]; act.Verb != want {
				t.Errorf("Decide at %s = %v (%s), want %v", tt.at, act.Verb, act.Reason, want)
			}
		})
	}
	if got, want := p.NextWindow(at("2026-12-05 06:00")), at("2026-12-12 03:00"); !got.Equal(want) {
		t.Errorf("NextWindow = %v, want the next Saturday's overlap %v", got, want)
	}
	rp := p
	rp.Reboot = RebootWhenNeeded
	if !rp.RebootAllowed(at("2026-12-05 04:00")) || rp.RebootAllowed(at("2026-12-05 06:00")) {
		t.Errorf("RebootAllowed must hold only while both windows are open")
	}
	// Windows that never overlap: never open, and Decide says why.
	disjoint := Narrow(server, Policy{Windows: []Window{{Days: satsun, Start: 12 * time.Hour, Length: time.Hour, Location: berlin}}})
	if !disjoint.NextWindow(at("2026-12-05 00:00")).IsZero() {
		t.Errorf("disjoint windows: NextWindow = %v, want none", disjoint.NextWindow(at("2026-12-05 00:00")))
	}
	act := Decide(&advisory.Advisory{ID: "ALSA-2026:1", Type: advisory.Security}, &disjoint, at("2026-12-05 02:00"))
	if act.Verb != NotifyOnly || !strings.Contains(act.Reason, "never open together") {
		t.Errorf("disjoint windows: Decide = %v (%s)", act.Verb, act.Reason)
	}
	// One side only: those windows.
	if p := Narrow(server, Policy{}); len(p.Windows) != 1 || p.Within != nil || !p.InWindow(at("2026-12-05 02:00")) {
		t.Errorf("server windows alone: %+v", p.Windows)
	}
	if p := Narrow(Policy{Mode: Apply}, local); len(p.Windows) != 1 || !p.InWindow(at("2026-12-06 04:00")) {
		t.Errorf("device windows alone: %+v", p.Windows)
	}
}

// TestFromServer reads a plan's policy and refuses one it cannot read,
// naming the field.
func TestFromServer(t *testing.T) {
	good := protocol.Policy{Version: protocol.PolicyVersion, Mode: "download", SecurityOnly: true, MinSeverity: "Important",
		Exclude: []string{"kernel*"}, Reboot: "when-needed",
		Windows: []protocol.PolicyWindow{{Days: []string{"mon-fri"}, Start: "02:30", Length: "90m", Timezone: "America/New_York"}}}
	p, err := FromServer(&good)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != Download || !p.SecurityOnly || p.MinSeverity != advisory.Important || p.Reboot != RebootWhenNeeded ||
		len(p.Windows) != 1 || p.Windows[0].Length != 90*time.Minute || p.Windows[0].Location.String() != "America/New_York" {
		t.Errorf("FromServer = %+v", p)
	}
	tests := []struct {
		name  string
		edit  func(*protocol.Policy)
		field string
	}{
		{"later version", func(p *protocol.Policy) { p.Version = protocol.PolicyVersion + 1 }, "policy.version"},
		{"unknown mode", func(p *protocol.Policy) { p.Mode = "yolo" }, "mode"},
		{"bad severity", func(p *protocol.Policy) { p.MinSeverity = "Severe" }, "policy.min_severity"},
		{"bad glob", func(p *protocol.Policy) { p.Exclude = []string{"[kernel"} }, "policy.exclude[0]"},
		{"bad reboot", func(p *protocol.Policy) { p.Reboot = "always" }, "policy.reboot"},
		{"window without zone", func(p *protocol.Policy) { p.Windows[0].Timezone = "" }, "policy.windows[0]"},
		{"window of Local zone", func(p *protocol.Policy) { p.Windows[0].Timezone = "Local" }, "policy.windows[0]"},
		{"window too long", func(p *protocol.Policy) { p.Windows[0].Length = "200h" }, "policy.windows[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := good
			sp.Exclude = slices.Clone(good.Exclude)
			sp.Windows = slices.Clone(good.Windows)
			tt.edit(&sp)
			_, err := FromServer(&sp)
			if !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("FromServer = %v, want ErrBadValue naming %s", err, tt.field)
			}
		})
	}
}

// TestNarrowAllowUpdates: the device's file may drop names from the
// group's allow-list, never add one; a file without allow_updates keeps
// the server's list; excludes still take allow-listed names out; the
// install-only limit is the device's.
func TestNarrowAllowUpdates(t *testing.T) {
	pi := []string{"raspberrypi2-kernel4", "raspberrypi2-firmware"}
	tests := []struct {
		name          string
		server, local Policy
		want          []string
	}{
		{"file silent: the server's list", Policy{Mode: Apply, AllowUpdates: pi}, Policy{Mode: Apply, Set: SetMode}, pi},
		{"file narrows to the firmware", Policy{Mode: Apply, AllowUpdates: pi},
			Policy{AllowUpdates: []string{"raspberrypi2-firmware"}, Set: SetAllowUpdates}, []string{"raspberrypi2-firmware"}},
		{"file cannot add a name", Policy{Mode: Apply, AllowUpdates: []string{"raspberrypi2-firmware"}},
			Policy{AllowUpdates: pi, Set: SetAllowUpdates}, []string{"raspberrypi2-firmware"}},
		{"file cannot allow-list what the server does not", Policy{Mode: Apply},
			Policy{AllowUpdates: []string{"kernel-core"}, Set: SetAllowUpdates}, nil},
		{"an empty list in the file refuses all", Policy{Mode: Apply, AllowUpdates: pi},
			Policy{AllowUpdates: []string{}, Set: SetAllowUpdates}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Narrow(tt.server, tt.local)
			if !slices.Equal(got.AllowUpdates, tt.want) {
				t.Errorf("Narrow allow_updates = %q, want %q", got.AllowUpdates, tt.want)
			}
		})
	}
	got := Narrow(Policy{Mode: Apply, AllowUpdates: pi, InstallonlyLimit: 9}, Policy{Exclude: []string{"*-firmware"}, InstallonlyLimit: 2})
	allowed, excluded := got.PlainUpdates()
	if !slices.Equal(allowed, []string{"raspberrypi2-kernel4"}) || !slices.Equal(excluded, []string{"raspberrypi2-firmware (*-firmware)"}) {
		t.Errorf("PlainUpdates = %q, %q; want the kernel, and the firmware excluded by its glob", allowed, excluded)
	}
	if got.InstallonlyLimit != 2 {
		t.Errorf("InstallonlyLimit = %d, want the device's 2", got.InstallonlyLimit)
	}
	if _, err := FromServer(&protocol.Policy{Version: 1, Mode: "apply", AllowUpdates: []string{"raspberrypi2-*"}}); !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "allow_updates[0]") {
		t.Errorf("FromServer of a glob in allow_updates = %v, want ErrBadValue naming allow_updates[0]", err)
	}
}
