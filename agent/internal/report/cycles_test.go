package report

import (
	"reflect"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func TestCycleResults(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ssl := update.Package{Name: "openssl-libs", Arch: "aarch64", From: "1:3.0.1-23.el9_0", To: "1:3.0.7-16.el9_2"}
	cycles := []*update.Cycle{
		{ID: 1, Phase: update.Failed, Started: t0, Finished: t0.Add(time.Minute), Error: "download: 503",
			Advisories: []update.AdvisoryRef{{ID: "ALSA-2023:3722"}}, Packages: []update.Package{ssl}},
		{ID: 2, Phase: update.Committed, Started: t0.Add(time.Hour), Finished: t0.Add(time.Hour + time.Minute),
			Advisories: []update.AdvisoryRef{{ID: "ALSA-2023:3722"}}, Packages: []update.Package{ssl}, Reboot: update.Reboot{Needed: true}},
		{ID: 3, Phase: update.Applying, Started: t0.Add(2 * time.Hour)},
	}
	before := protocol.Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64"}
	after := protocol.Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "aarch64"}
	tests := []struct {
		name     string
		after    int
		want     []protocol.CycleResult
		wantLast int
	}{
		{
			name: "none reported yet; the running cycle waits",
			want: []protocol.CycleResult{
				{ID: 1, Advisories: []string{"ALSA-2023:3722"}, Before: []protocol.Package{before}, Outcome: protocol.OutcomeFailed,
					Error: "download: 503", Started: t0, Finished: t0.Add(time.Minute)},
				{ID: 2, Advisories: []string{"ALSA-2023:3722"}, Before: []protocol.Package{before}, After: []protocol.Package{after},
					Outcome: protocol.OutcomeApplied, RebootNeeded: true, Started: t0.Add(time.Hour), Finished: t0.Add(time.Hour + time.Minute)},
			},
			wantLast: 2,
		},
		{name: "all finished ones reported", after: 2, wantLast: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, last := cycleResults(cycles, tt.after)
			if !reflect.DeepEqual(got, tt.want) || last != tt.wantLast {
				t.Errorf("cycleResults = %+v, %d\nwant %+v, %d", got, last, tt.want, tt.wantLast)
			}
		})
	}

	if !rebootPending(cycles, t0) {
		t.Errorf("booted before the kernel update: no reboot pending")
	}
	if rebootPending(cycles, t0.Add(3*time.Hour)) {
		t.Errorf("booted after the kernel update: reboot still pending")
	}
	if rebootPending(cycles[:1], t0) {
		t.Errorf("a failed cycle asks for a reboot")
	}
}
