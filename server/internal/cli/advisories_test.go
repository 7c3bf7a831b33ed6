package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/api"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store/sqlite"
)

// TestAdvisoriesNameTheRelease: AlmaLinux's OSV files use one id for the
// AlmaLinux 8 and 9 advisories of a fix (the real ALSA-2024:0265); once
// both are imported, rpmfleet advisories adds a RELEASE column naming
// each row's releases, so the two are not taken for one. A fleet with
// no such id keeps the narrower table.
func TestAdvisoriesNameTheRelease(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := fleet.New(ctx, st, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	load := func(rel string) []advisory.Advisory {
		advs, err := source.Load(ctx, fixtures.Path(t, rel), source.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return advs
	}
	admin, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: "t", Role: protocol.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(svc, api.Options{TempDir: t.TempDir()}))
	defer srv.Close()
	cli := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		code := commands[args[0]].run(context.Background(), e, append(args[1:], "--server", srv.URL, "--token", admin.Token, "--utc"))
		if errb.Len() > 0 {
			t.Errorf("%v: stderr %s", args, errb.String())
		}
		return code, out.String()
	}

	if _, err := svc.Import(ctx, load("almalinux-osv/samples/almalinux9_ALSA-2023_6330.json")); err != nil {
		t.Fatal(err)
	}
	if code, out := cli("advisories"); code != ExitOK || strings.Contains(out, "RELEASE") || !strings.HasPrefix(strings.Join(strings.Fields(out), " "), "ADVISORY SEVERITY ISSUED") {
		t.Errorf("one release only: exit %d\n%s; want no RELEASE column", code, out)
	}

	shared := load("almalinux-osv/samples/almalinux9_ALSA-2024_0265.json")
	if len(shared) != 2 || shared[0].ID != shared[1].ID || shared[0].Ecosystem == shared[1].Ecosystem {
		t.Fatalf("the sample gives %d advisories; want ALSA-2024:0265 for two releases", len(shared))
	}
	if _, err := svc.Import(ctx, shared); err != nil {
		t.Fatal(err)
	}
	code, out := cli("advisories")
	if code != ExitOK {
		t.Fatalf("advisories: exit %d\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(strings.Join(strings.Fields(lines[0]), " "), "ADVISORY RELEASE SEVERITY ISSUED") {
		t.Fatalf("advisories:\n%s\nwant a header with RELEASE and two rows", out)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	if r := rows["ALSA-2024:0265"]; len(r) < 2 || r[1] != "AlmaLinux:8,AlmaLinux:9" {
		t.Errorf("ALSA-2024:0265's row %q; want its releases AlmaLinux:8,AlmaLinux:9", r)
	}
	if r := rows["ALSA-2023:6330"]; len(r) < 2 || r[1] != "AlmaLinux:9" {
		t.Errorf("ALSA-2023:6330's row %q; want AlmaLinux:9", r)
	}
	// The columns stay aligned: SEVERITY starts at one offset in every line.
	col := strings.Index(lines[0], "SEVERITY")
	for _, l := range lines[1:] {
		if c := strings.IndexAny(l[col:col+1], "ILMCN"); c != 0 {
			t.Errorf("severity not under its header in %q", l)
		}
	}

	var as []protocol.AdvisorySummary
	if _, out := cli("advisories", "--json"); json.Unmarshal([]byte(out), &as) != nil || len(as) != 2 {
		t.Fatalf("advisories --json:\n%s", out)
	}
	for _, a := range as {
		if a.ID == "ALSA-2024:0265" && !slices.Equal(a.Ecosystems, []string{"AlmaLinux:8", "AlmaLinux:9"}) {
			t.Errorf("JSON ecosystems of %s = %v", a.ID, a.Ecosystems)
		}
	}
}
