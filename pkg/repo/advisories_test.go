package repo

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// TestEachAdvisory: every advisory of a createrepo_c repository's
// updateinfo, in order; none from a repository without one; fn's error
// stops the stream as it is; a tampered updateinfo is a checksum error
// naming the repository.
func TestEachAdvisory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := makeRepo(t, "gz", true)
	r, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []*advisory.Advisory
	if err := r.EachAdvisory(ctx, func(a *advisory.Advisory) error { got = append(got, a); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := testAdvisories(); !reflect.DeepEqual(got, want) {
		t.Errorf("EachAdvisory gave\n %+v\nwant %+v", got, want)
	}

	stop := errors.New("enough")
	n := 0
	if err := r.EachAdvisory(ctx, func(*advisory.Advisory) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("EachAdvisory with fn failing = %v after %d advisories, want fn's error as it is after 1", err, n)
	}

	bare, err := New(makeRepo(t, "gz", false), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bare.EachAdvisory(ctx, func(*advisory.Advisory) error { t.Error("an advisory from no updateinfo"); return nil }); err != nil {
		t.Errorf("EachAdvisory without updateinfo = %v, want nil", err)
	}

	m, err := r.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := m.Get("updateinfo")
	path := filepath.Join(dir, d.Location)
	raw := readFile(t, path)
	writeFile(t, path, raw[:len(raw)-10])
	r, err = New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = r.EachAdvisory(ctx, func(*advisory.Advisory) error { return nil })
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "read updateinfo of "+r.String()) {
		t.Errorf("EachAdvisory of a cut updateinfo = %v, want ErrChecksum naming %s", err, r)
	}
}
