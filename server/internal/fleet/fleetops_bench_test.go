package fleet

import (
	"fmt"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// BenchmarkPlan measures a device's signed plan (four advisories) as the
// groups holding a policy grow, since the plan's gate reads every group
// on each plan:
//
//	go test -run '^$' -bench BenchmarkPlan ./server/internal/fleet/
func BenchmarkPlan(b *testing.B) {
	for _, groups := range []int{0, 10, 1000} {
		b.Run(fmt.Sprint(groups, "-groups"), func(b *testing.B) {
			f := newOpsFleet(b)
			ctx := b.Context()
			advs := []advisory.Advisory{
				opsAdvisory("RFSA-C", advisory.Security, advisory.Critical, "crit-lib", day0),
				opsAdvisory("RFSA-M", advisory.Security, advisory.Moderate, "mod-lib", day0),
				opsAdvisory("RFSA-I", advisory.Security, advisory.Important, "imp-lib", day0),
				opsAdvisory("RFBA-B", advisory.Bugfix, advisory.Critical, "bug-lib", day0),
			}
			if _, err := f.svc.Import(ctx, advs); err != nil {
				b.Fatal(err)
			}
			f.enroll(b, "edge-1", map[string]string{"ring": "g0"})
			pol := &protocol.Policy{Version: 1, Mode: "apply", ApproveAfterDays: map[string]int{"Critical": 0, "Moderate": 7}}
			for i := range groups {
				name := fmt.Sprint("g", i)
				if err := f.st.PutGroup(ctx, store.Group{Name: name, Selector: map[string]string{"ring": name}, Created: day0, Updated: day0}); err != nil {
					b.Fatal(err)
				}
				if err := f.st.SetGroupPolicy(ctx, name, pol, day0); err != nil {
					b.Fatal(err)
				}
			}
			id := f.ids["edge-1"]
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := f.svc.Plan(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkImportWithExposureWebhook measures the first import of the
// real AlmaLinux 9 OSV database (testdata/almalinux-osv) into a fleet of
// 20 devices with an old openssl-libs, with no webhook and with one
// asking for every exposure (min_severity Low): the exposure event reads
// each changed advisory's exposed devices before and after the import.
//
//	go test -run '^$' -bench BenchmarkImportWithExposureWebhook -benchtime 3x ./server/internal/fleet/
func BenchmarkImportWithExposureWebhook(b *testing.B) {
	advs, err := source.Load(b.Context(), fixtures.Path(b, "almalinux-osv/almalinux9.jsonl.gz"), source.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, hooks := range []int{0, 1} {
		b.Run(fmt.Sprint(hooks, "-webhooks"), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				f := newOpsFleet(b)
				if hooks > 0 {
					f.opts.Webhooks = []Webhook{{Name: "ops", URL: "http://127.0.0.1:9/", Secret: []byte("bench-secret-0123456789"),
						Events: []string{protocol.WebhookExposure}, MinSeverity: advisory.Low}}
					if f.svc, err = New(b.Context(), f.st, f.opts); err != nil {
						b.Fatal(err)
					}
				}
				for i := range 20 {
					f.enroll(b, fmt.Sprint("pi-", i), nil)
					f.reportPkgs(b, fmt.Sprint("pi-", i), "r1", []protocol.Package{alma9, oldSSL}, nil)
				}
				b.StartTimer()
				if _, err := f.svc.Import(b.Context(), advs); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if hooks > 0 {
					ds, err := f.st.ListDeliveries(b.Context(), store.DeliveryFilter{})
					if err != nil || len(ds) != 1 {
						b.Fatalf("deliveries after the import: %d, %v; want the one exposure event", len(ds), err)
					}
				}
				b.StartTimer()
			}
		})
	}
}
