package sqlstore

import (
	"slices"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func TestNextStatus(t *testing.T) {
	const a = "ALSA-2023:3722"
	none := events{}
	failed := events{failed: map[string]bool{a: true}}
	succeeded := events{failed: map[string]bool{a: false}, succeeded: map[string]bool{a: true}}
	reboot := events{reboot: map[string]bool{a: true}, rebootPending: true}
	stillPending := events{rebootPending: true}
	tests := []struct {
		name     string
		cur      protocol.Status
		affected bool
		ev       events
		want     protocol.Status
	}{
		{"new and vulnerable", "", true, none, protocol.StatusAffected},
		{"new and fixed", "", false, none, protocol.StatusPatched},
		{"attempt failed", protocol.StatusAffected, true, failed, protocol.StatusFailed},
		{"failed stays failed without news", protocol.StatusFailed, true, none, protocol.StatusFailed},
		{"failed, then fixed by hand", protocol.StatusFailed, false, none, protocol.StatusPatched},
		{"applied, reboot needed", protocol.StatusAffected, false, reboot, protocol.StatusPendingReboot},
		{"reboot still pending", protocol.StatusPendingReboot, false, stillPending, protocol.StatusPendingReboot},
		{"rebooted", protocol.StatusPendingReboot, false, none, protocol.StatusPatched},
		{"reboot-needing fix rolled back by a downgrade", protocol.StatusPendingReboot, true, stillPending, protocol.StatusAffected},
		{"applied after failing", protocol.StatusFailed, false, succeeded, protocol.StatusPatched},
		{"reported success but still vulnerable", protocol.StatusFailed, true, succeeded, protocol.StatusAffected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextStatus(tt.cur, tt.affected, a, tt.ev); got != tt.want {
				t.Errorf("nextStatus(%q, affected=%v) = %q, want %q", tt.cur, tt.affected, got, tt.want)
			}
		})
	}
}

func TestApplyDelta(t *testing.T) {
	p := func(name, v string) protocol.Package {
		return protocol.Package{Name: name, Version: v, Release: "1.el9", Arch: "aarch64"}
	}
	prev := []protocol.Package{p("bash", "5.1"), p("kernel", "5.14.0"), p("kernel", "5.14.1"), p("zlib", "1.2")}
	got := applyDelta(prev, []protocol.Package{p("kernel", "5.14.2"), p("curl", "7.76")}, []protocol.Package{p("kernel", "5.14.0"), p("nothere", "1")})
	want := []protocol.Package{p("bash", "5.1"), p("curl", "7.76"), p("kernel", "5.14.1"), p("kernel", "5.14.2"), p("zlib", "1.2")}
	if !slices.Equal(got, want) {
		t.Errorf("applyDelta =\n%v\nwant\n%v", got, want)
	}
}

// FuzzSetCodec checks that a stored package set reads back as written and
// that decodeSet refuses damaged blobs with an error, never a panic.
func FuzzSetCodec(f *testing.F) {
	f.Add("openssl-libs", "1", "3.0.1", "23.el9_0", "aarch64", "", []byte("a\t0\t1\t1\tnoarch\t\n"))
	f.Add("perl", "4", "5.32", "1", "x86_64", "perl:5.32:1:x", []byte("a\tb\n"))
	f.Fuzz(func(t *testing.T, name, epoch, version, release, arch, label string, blob []byte) {
		in := []protocol.Package{{Name: name, Epoch: epoch, Version: version, Release: release, Arch: arch, ModularityLabel: label}}
		enc, err := encodeSet(in)
		if err == nil {
			out, err := decodeSet(enc)
			if err != nil || !slices.Equal(in, out) {
				t.Errorf("round trip of %+v: %+v, %v", in, out, err)
			}
		}
		decodeSet(blob)
	})
}
