package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// TestDecidePlan is what the daemon does with a fetched plan and with a
// spool bundle's: which advisories one cycle applies, with which pins,
// which are downloaded ahead, and which are held back and why.
func TestDecidePlan(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	weekend := Window{Days: 1<<time.Saturday | 1<<time.Sunday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}
	inWindow := utc("2026-11-28T02:00:00Z")    // saturday 03:00 CET
	outOfWindow := utc("2026-11-25T12:00:00Z") // wednesday
	const sumSSL, sumKernel = "aa11", "bb22"
	plan := &protocol.Plan{Advisories: []protocol.PlanAdvisory{
		{ID: "ALSA-2023:3722", Type: "security", Severity: "Important", Packages: []protocol.PlanPackage{
			{Name: "openssl-libs", Fixed: "1:3.0.7-16.el9_2", Arch: "aarch64", SHA256: sumSSL},
			{Name: "openssl", Fixed: "1:3.0.7-16.el9_2", Arch: "aarch64"}, // no digest: nothing pinned
		}},
		{ID: "ALSA-2024:0001", Type: "security", Severity: "Critical", Packages: []protocol.PlanPackage{
			{Name: "kernel-core", Fixed: "5.14.0-427.el9", Arch: "aarch64", SHA256: sumKernel},
		}},
		{ID: "ALBA-2023:1111", Type: "bugfix", Packages: []protocol.PlanPackage{
			{Name: "tzdata", Fixed: "2024a-1.el9", Arch: "noarch", SHA256: "cc33"},
		}},
	}}
	ssl := rpmver.NEVRA{Name: "openssl-libs", EVR: rpmver.MustParseEVR("1:3.0.7-16.el9_2"), Arch: "aarch64"}.Key()
	kernel := rpmver.NEVRA{Name: "kernel-core", EVR: rpmver.MustParseEVR("5.14.0-427.el9"), Arch: "aarch64"}.Key()
	// held writes Held as "ID action excluded: reason-part" for comparing.
	held := func(hs []Held) []string {
		var out []string
		for _, h := range hs {
			out = append(out, fmt.Sprintf("%s %s %v", h.ID, h.Action, h.Excluded))
		}
		return out
	}
	tests := []struct {
		name         string
		pol          Policy
		now          time.Time
		o            PlanOptions
		wantApply    []string
		wantPins     map[rpmver.Key]string
		wantDownload []string
		wantDlPins   map[rpmver.Key]string
		wantHeld     []string
		wantReason   map[string]string // advisory to a part of its reason
		wantWaiting  bool
	}{
		{
			name: "apply without windows applies every security advisory with its pins",
			pol:  Policy{Mode: Apply, SecurityOnly: true}, now: outOfWindow,
			wantApply: []string{"ALSA-2023:3722", "ALSA-2024:0001"}, wantPins: map[rpmver.Key]string{ssl: sumSSL, kernel: sumKernel},
			wantHeld:   []string{"ALBA-2023:1111 skip false"},
			wantReason: map[string]string{"ALBA-2023:1111": "security_only"},
		},
		{
			name: "apply outside the window waits for it",
			pol:  Policy{Mode: Apply, SecurityOnly: true, Windows: []Window{weekend}}, now: outOfWindow,
			wantHeld:    []string{"ALSA-2023:3722 notify false", "ALSA-2024:0001 notify false", "ALBA-2023:1111 skip false"},
			wantReason:  map[string]string{"ALSA-2023:3722": "next opens 2026-11-28"},
			wantWaiting: true,
		},
		{
			name: "apply inside the window",
			pol:  Policy{Mode: Apply, Windows: []Window{weekend}}, now: inWindow,
			wantApply: []string{"ALSA-2023:3722", "ALSA-2024:0001", "ALBA-2023:1111"},
			wantPins:  map[rpmver.Key]string{ssl: sumSSL, kernel: sumKernel, rpmver.NEVRA{Name: "tzdata", EVR: rpmver.MustParseEVR("2024a-1.el9"), Arch: "noarch"}.Key(): "cc33"},
		},
		{
			name: "an excluded package holds its whole advisory back",
			pol:  Policy{Mode: Apply, SecurityOnly: true, Exclude: []string{"kernel*"}}, now: outOfWindow,
			wantApply: []string{"ALSA-2023:3722"}, wantPins: map[rpmver.Key]string{ssl: sumSSL},
			wantHeld:   []string{"ALSA-2024:0001 skip true", "ALBA-2023:1111 skip false"},
			wantReason: map[string]string{"ALSA-2024:0001": "every package is excluded: kernel-core (kernel*)"},
		},
		{
			name: "notify holds everything back and waits for no window",
			pol:  Policy{Mode: Notify, SecurityOnly: true}, now: outOfWindow,
			wantHeld:   []string{"ALSA-2023:3722 notify false", "ALSA-2024:0001 notify false", "ALBA-2023:1111 skip false"},
			wantReason: map[string]string{"ALSA-2024:0001": "mode is notify"},
		},
		{
			name: "download fetches ahead with the pins and holds the apply",
			pol:  Policy{Mode: Download, SecurityOnly: true}, now: outOfWindow,
			wantDownload: []string{"ALSA-2023:3722", "ALSA-2024:0001"}, wantDlPins: map[rpmver.Key]string{ssl: sumSSL, kernel: sumKernel},
			wantHeld: []string{"ALSA-2023:3722 download false", "ALSA-2024:0001 download false", "ALBA-2023:1111 skip false"},
		},
		{
			name: "an apply command forces past the mode and security_only",
			pol:  Policy{Mode: Notify, SecurityOnly: true}, now: outOfWindow, o: PlanOptions{Force: []string{"ALBA-2023:1111"}},
			wantApply: []string{"ALBA-2023:1111"}, wantPins: map[rpmver.Key]string{rpmver.NEVRA{Name: "tzdata", EVR: rpmver.MustParseEVR("2024a-1.el9"), Arch: "noarch"}.Key(): "cc33"},
			wantHeld: []string{"ALSA-2023:3722 notify false", "ALSA-2024:0001 notify false"},
		},
		{
			name: "a forced advisory whose every package is excluded is refused",
			pol:  Policy{Mode: Apply, Exclude: []string{"kernel*"}}, now: outOfWindow, o: PlanOptions{Force: []string{"ALSA-2024:0001"}},
			wantApply: []string{"ALSA-2023:3722", "ALBA-2023:1111"}, wantPins: map[rpmver.Key]string{ssl: sumSSL, rpmver.NEVRA{Name: "tzdata", EVR: rpmver.MustParseEVR("2024a-1.el9"), Arch: "noarch"}.Key(): "cc33"},
			wantHeld: []string{"ALSA-2024:0001 refused true"},
		},
		{
			name: "a forced advisory with one excluded package is notified, never applied in part",
			pol:  Policy{Mode: Notify, Exclude: []string{"openssl"}}, now: outOfWindow, o: PlanOptions{Force: []string{"ALSA-2023:3722"}},
			wantHeld:   []string{"ALSA-2023:3722 notify true", "ALSA-2024:0001 notify false", "ALBA-2023:1111 notify false"},
			wantReason: map[string]string{"ALSA-2023:3722": "a cycle applies whole advisories"},
		},
		{
			name: "after a failed cycle automatic applies wait, forced ones do not",
			pol:  Policy{Mode: Apply, SecurityOnly: true}, now: outOfWindow,
			o:         PlanOptions{Force: []string{"ALSA-2024:0001"}, HoldUntil: outOfWindow.Add(time.Hour)},
			wantApply: []string{"ALSA-2024:0001"}, wantPins: map[rpmver.Key]string{kernel: sumKernel},
			wantHeld:   []string{"ALSA-2023:3722 notify false", "ALBA-2023:1111 skip false"},
			wantReason: map[string]string{"ALSA-2023:3722": "the last update cycle failed; tried again at the next check after 2026-11-25T13:00:00Z"},
		},
		{
			name: "a hold that has passed holds nothing",
			pol:  Policy{Mode: Apply, SecurityOnly: true}, now: outOfWindow, o: PlanOptions{HoldUntil: outOfWindow.Add(-time.Second)},
			wantApply: []string{"ALSA-2023:3722", "ALSA-2024:0001"}, wantPins: map[rpmver.Key]string{ssl: sumSSL, kernel: sumKernel},
			wantHeld: []string{"ALBA-2023:1111 skip false"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DecidePlan(plan, &tt.pol, tt.now, tt.o)
			if !slices.Equal(d.Apply, tt.wantApply) {
				t.Errorf("Apply = %v, want %v", d.Apply, tt.wantApply)
			}
			if !slices.Equal(d.Download, tt.wantDownload) {
				t.Errorf("Download = %v, want %v", d.Download, tt.wantDownload)
			}
			if !maps.Equal(d.Pins, tt.wantPins) {
				t.Errorf("Pins = %v, want %v", d.Pins, tt.wantPins)
			}
			if !maps.Equal(d.DownloadPins, tt.wantDlPins) {
				t.Errorf("DownloadPins = %v, want %v", d.DownloadPins, tt.wantDlPins)
			}
			if got := held(d.Held); !slices.Equal(got, tt.wantHeld) {
				t.Errorf("Held = %q, want %q", got, tt.wantHeld)
			}
			for id, part := range tt.wantReason {
				i := slices.IndexFunc(d.Held, func(h Held) bool { return h.ID == id })
				if i < 0 || !strings.Contains(d.Held[i].Reason, part) {
					t.Errorf("reason of %s = %+v, want it to say %q", id, d.Held, part)
				}
			}
			if d.Waiting != tt.wantWaiting {
				t.Errorf("Waiting = %v, want %v", d.Waiting, tt.wantWaiting)
			}
		})
	}
}
