package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// testAdvisoryDetail: KnownCVE tells a CVE an imported advisory names
// (whatever its case) from one none does, and AdvisoryVariants returns each
// release's copy of an id, sorted by release, and none for an unknown id,
// on both stores.
func testAdvisoryDetail(t *testing.T, b Backend) {
	ctx := t.Context()
	shared, err := SharedAdvisory()
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, b)
	if _, err := s.PutAdvisories(ctx, shared, time.Unix(1764950000, 0), Match(shared)); err != nil {
		t.Fatal(err)
	}
	d, ok := s.(interface {
		KnownCVE(ctx context.Context, cve string) (bool, error)
		AdvisoryVariants(ctx context.Context, id string) ([]store.Variant, error)
	})
	if !ok {
		t.Fatalf("%T has no KnownCVE and AdvisoryVariants", s)
	}
	cve := shared[0].CVEs[0]
	for _, tt := range []struct {
		cve  string
		want bool
	}{{cve, true}, {" " + strings.ToLower(cve) + " ", true}, {"CVE-1999-0001", false}} {
		if got, err := d.KnownCVE(ctx, tt.cve); err != nil || got != tt.want {
			t.Errorf("KnownCVE(%q) = %v, %v; want %v", tt.cve, got, err, tt.want)
		}
	}
	vs, err := d.AdvisoryVariants(ctx, shared[0].ID)
	if err != nil || len(vs) != 2 || vs[0].Ecosystem != "AlmaLinux:8" || vs[1].Ecosystem != "AlmaLinux:9" || len(vs[1].Packages) == 0 {
		t.Fatalf("AdvisoryVariants = %d variants, %v; want AlmaLinux:8 and :9 with their packages", len(vs), err)
	}
	if vs, err := d.AdvisoryVariants(ctx, "ALSA-1999:0001"); err != nil || len(vs) != 0 {
		t.Errorf("AdvisoryVariants of an unknown id = %d, %v; want none", len(vs), err)
	}
}
