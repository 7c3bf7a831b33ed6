package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Issue 13's stories of labels set by admins, groups and the selection
// queries.

func summaryNames(ds []protocol.DeviceSummary) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

// testLabelsAndGroups: an admin relabels a device (its row and the label
// index both change, so the label filter finds it under its new labels
// only); groups keep a selector and a policy; the selection queries count
// only the selected devices.
func testLabelsAndGroups(t *testing.T, b Backend) {
	f := newFleet(t, b)
	ctx := t.Context()
	for _, n := range []string{"pi-1", "pi-2", "pi-3"} {
		d := f.enroll(n)
		f.report(d.ID, full("r-"+n, f.ubi))
	}
	if _, err := f.s.SetDeviceLabels(ctx, "pi-2", map[string]string{"site": "field", "ring": "canary"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SetDeviceLabels(ctx, "pi-none", map[string]string{"a": "b"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("labels of an unknown device: %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		labels map[string]string
		want   []string
	}{
		{map[string]string{"site": "lab"}, []string{"pi-1", "pi-3"}},
		{map[string]string{"site": "field"}, []string{"pi-2"}},
		{map[string]string{"site": "field", "ring": "canary"}, []string{"pi-2"}},
		{map[string]string{"ring": "canary", "site": "lab"}, nil},
	} {
		ds, err := f.s.Devices(ctx, store.DeviceFilter{Labels: tc.labels})
		if err != nil || !slices.Equal(summaryNames(ds), tc.want) {
			t.Errorf("Devices(%v) = %v, %v; want %v", tc.labels, summaryNames(ds), err, tc.want)
		}
	}
	d, err := f.s.Device(ctx, "pi-2")
	if err != nil || d.Labels["ring"] != "canary" || d.Labels["site"] != "field" || len(d.Labels) != 2 {
		t.Errorf("pi-2's labels = %v, %v", d.Labels, err)
	}

	// Groups.
	if err := f.s.PutGroup(ctx, store.Group{Name: "lab", Selector: map[string]string{"site": "lab"}, Created: t0, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	pol := &protocol.Policy{Version: 1, Mode: "apply", SecurityOnly: true, ApproveAfterDays: map[string]int{"Critical": 0, "Moderate": 7}}
	if err := f.s.SetGroupPolicy(ctx, "lab", pol, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SetGroupPolicy(ctx, "nope", pol, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("policy of an unknown group: %v, want ErrNotFound", err)
	}
	// Replacing the selector keeps the policy and the creation time.
	if err := f.s.PutGroup(ctx, store.Group{Name: "lab", Selector: map[string]string{"site": "lab"}, Created: t0.Add(time.Hour), Updated: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	g, err := f.s.Group(ctx, "lab")
	if err != nil || g.Policy == nil || g.Policy.ApproveAfterDays["Moderate"] != 7 || !g.Created.Equal(t0) || !g.Updated.Equal(t0.Add(time.Hour)) {
		t.Errorf("group lab = %+v (policy %+v), %v", g, g.Policy, err)
	}
	if err := f.s.SetGroupPolicy(ctx, "lab", nil, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if g, _ := f.s.Group(ctx, "lab"); g.Policy != nil {
		t.Errorf("a detached policy is still there: %+v", g.Policy)
	}
	if err := f.s.PutGroup(ctx, store.Group{Name: "all", Selector: nil, Created: t0, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	gs, err := f.s.Groups(ctx)
	if err != nil || len(gs) != 2 || gs[0].Name != "all" || gs[1].Name != "lab" {
		t.Errorf("Groups = %+v, %v", gs, err)
	}
	if err := f.s.DeleteGroup(ctx, "all"); err != nil {
		t.Errorf("DeleteGroup: %v", err)
	}
	if err := f.s.DeleteGroup(ctx, "all"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting it twice: %v, want ErrNotFound", err)
	}

	// The selection: counts over the selected devices only.
	all, err := f.s.Advisories(ctx, advisory.SeverityNone)
	if err != nil {
		t.Fatal(err)
	}
	lab, err := f.s.AdvisoriesFor(ctx, advisory.SeverityNone, map[string]string{"site": "lab"})
	if err != nil {
		t.Fatal(err)
	}
	if len(lab) == 0 {
		t.Fatal("AdvisoriesFor(site=lab) lists nothing; the UBI devices are affected by the test advisories")
	}
	for _, a := range lab {
		i := slices.IndexFunc(all, func(x protocol.AdvisorySummary) bool { return x.ID == a.ID })
		if i < 0 {
			t.Fatalf("%s in the selection but not in the fleet list", a.ID)
		}
		whole, part := all[i], a
		if whole.Affected+whole.Patched != 3*(part.Affected+part.Patched)/2 || part.Affected+part.Patched+part.Failed+part.PendingReboot != 2 {
			t.Errorf("%s: fleet %+v, site=lab %+v; want the lab's 2 devices of the fleet's 3", a.ID, whole, part)
		}
		if len(part.CVEs) != len(whole.CVEs) {
			t.Errorf("%s: CVEs %v in the selection, %v in the fleet", a.ID, part.CVEs, whole.CVEs)
		}
	}
	none, err := f.s.AdvisoriesFor(ctx, advisory.SeverityNone, map[string]string{"site": "moon"})
	if err != nil || len(none) != 0 {
		t.Errorf("AdvisoriesFor(site=moon) = %v, %v; want none", none, err)
	}
	exp, err := f.s.Exposed(ctx, map[string]string{"site": "lab"}, []string{lab[0].ID})
	if err != nil || len(exp) != 2 || exp[0].Name != "pi-1" || exp[1].Name != "pi-3" {
		t.Errorf("Exposed(site=lab, %s) = %+v, %v; want pi-1 and pi-3", lab[0].ID, exp, err)
	}
	if exp, err := f.s.Exposed(ctx, nil, []string{"ALSA-0000:0000"}); err != nil || len(exp) != 0 {
		t.Errorf("Exposed to an unknown advisory = %+v, %v", exp, err)
	}
}
