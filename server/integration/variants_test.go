package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// checkPackage is one package of an advisory in rpmfleet-agent check
// --json, and of the server's list for a device.
type checkPackage struct {
	Name      string `json:"name"`
	Arch      string `json:"arch"`
	Installed string `json:"installed"`
	Fixed     string `json:"fixed"`
}

// deviceList is a device's whole list: per advisory id, its installed
// packages older than the fix, sorted.
type deviceList map[string][]checkPackage

func sortPackages(ps []checkPackage) {
	slices.SortFunc(ps, func(a, b checkPackage) int {
		return strings.Compare(a.Name+"\x00"+a.Arch+"\x00"+a.Installed, b.Name+"\x00"+b.Arch+"\x00"+b.Installed)
	})
}

// TestServerAgreesWithCheckOnRealData is issue 11's test of "the server
// must give every device the same answer as rpmfleet-agent check", with
// the real binaries: the real AlmaLinux 8, 9 and 10 OSV files are imported
// with rpmfleet import, in two orders (8, 9, 10 and 10, 9, 8; all six are
// tried at the service level by the fleet package's
// TestEveryImportOrderAgreesWithCheck), into a fresh rpmfleet-server each
// time, and two device roots whose rpm databases the real rpm wrote enrol
// and report: an AlmaLinux 8.10 device running OpenJDK 17
// (java-17-openjdk-headless 1:17.0.1.0.12-2.el8_5) and an AlmaLinux 9.6 one
// (rpmtest.AlmaLinux8OpenJDK, AlmaLinux9OpenJDK: the real UBI images). Each
// device's whole list on the server (rpmfleet device, and the packages of
// its signed plan) must equal what check --json says on the same root with
// all three files, and rpmfleet cve CVE-2024-21131 must list the AlmaLinux 8
// device's OpenJDK. A file imported a second time changes nothing. The
// server used to keep one advisory per id, so the file imported last took
// the other release's entries of the 37 advisories the files share: the
// AlmaLinux 8 device lost 13 of them, CVE-2024-21131 among them, and every
// re-import of a file reported about 80 changed.
func TestServerAgreesWithCheckOnRealData(t *testing.T) {
	osv := filepath.Join(fixtures(t), "almalinux-osv")
	files := map[string]string{}
	for _, rel := range []string{"8", "9", "10"} {
		files[rel] = filepath.Join(osv, "almalinux"+rel+".jsonl.gz")
	}

	// The roots, and what check says on each: built once, shared by the
	// orders (nothing writes to a root).
	type device struct {
		name, root string
		check      deviceList
	}
	var devices []device
	for _, d := range []struct {
		name string
		img  func() (rpmtest.Image, error)
	}{{"alma8-java", rpmtest.AlmaLinux8OpenJDK}, {"alma9-java", rpmtest.AlmaLinux9OpenJDK}} {
		img, err := d.img()
		if err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		if err := rpmtest.NewDevRoot(root, img.OSRelease, img.Packages); err != nil {
			t.Fatalf("make device root (run make deps if rpm is missing): %v", err)
		}
		devices = append(devices, device{d.name, root, checkList(t, root, files["8"], files["9"], files["10"])})
	}
	for _, d := range devices {
		if _, ok := d.check["ALSA-2024:4568"]; !ok {
			t.Fatalf("check does not list ALSA-2024:4568 on %s: the test would not try an advisory the files share", d.name)
		}
	}

	for _, order := range [][]string{{"8", "9", "10"}, {"10", "9", "8"}} {
		t.Run("almalinux"+strings.Join(order, "-then-"), func(t *testing.T) {
			srv := startServer(t, filepath.Join(t.TempDir(), "data"))
			admin := adminEnv(srv)
			for i, rel := range order {
				imported := importFile(t, admin, files[rel])
				if imported.Advisories == 0 || imported.Changed == 0 {
					t.Errorf("import of %s: %+v, want advisories read and changed", files[rel], imported)
				}
				if i == 0 {
					if again := importFile(t, admin, files[rel]); again.Changed != 0 {
						t.Errorf("import of %s again: %+v, want 0 new or changed", files[rel], again)
					}
				}
			}
			for _, d := range devices {
				a := enrollAgent(t, srv, nil, d.name, d.root)
				must(t, nil, "rpmfleet-agent", "report", "--once", "--root", d.root, "--state-dir", a.state)
				got := serverList(t, srv, admin, a)
				if diff := diffLists(got, d.check); diff != "" {
					t.Errorf("%s: the server's list differs from check's:%s", d.name, diff)
				}
			}
			want := protocol.CVEExposure{Device: "alma8-java", Package: "java-17-openjdk-headless", Installed: "1:17.0.1.0.12-2.el8_5"}
			found := false
			for _, e := range cve(t, admin, "CVE-2024-21131").Exposed {
				found = found || (e.Device == want.Device && e.Package == want.Package && e.Installed == want.Installed)
			}
			if !found {
				t.Errorf("rpmfleet cve CVE-2024-21131 does not list %s's java-17-openjdk-headless %s", want.Device, want.Installed)
			}
		})
	}
}

// importFile uploads an advisory file with rpmfleet import --json.
func importFile(t *testing.T, admin []string, path string) protocol.ImportResponse {
	t.Helper()
	out := must(t, admin, "rpmfleet", "import", "--json", path).stdout
	var r protocol.ImportResponse
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("rpmfleet import --json printed %q: %v", out, err)
	}
	return r
}

// checkList runs rpmfleet-agent check --json on root against srcs. An
// advisory the sources hold twice for the device's release (the same
// record in two releases' files, as the AlmaLinux OSV database writes the
// ones it shares) is one entry of the list, and must say the same both
// times: check prints such an advisory once per file (11 of the 302
// entries on each of these roots), the server lists an id once.
func checkList(t *testing.T, root string, srcs ...string) deviceList {
	t.Helper()
	args := []string{"check", "--json", "--root", root}
	for _, s := range srcs {
		args = append(args, "--advisories", s)
	}
	r := run(t, nil, "rpmfleet-agent", args...)
	if r.code != 0 && r.code != 100 {
		t.Fatalf("rpmfleet-agent %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	var out struct {
		Advisories []struct {
			ID       string         `json:"id"`
			Packages []checkPackage `json:"packages"`
		} `json:"advisories"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("check --json printed %q: %v", r.stdout, err)
	}
	list := deviceList{}
	for _, a := range out.Advisories {
		sortPackages(a.Packages)
		if old, ok := list[a.ID]; ok && !slices.Equal(old, a.Packages) {
			t.Fatalf("check lists %s twice, differently: %v and %v", a.ID, old, a.Packages)
		}
		list[a.ID] = a.Packages
	}
	return list
}

// serverList is a device's list on the server: the advisories rpmfleet
// device says affect it, with the packages of its signed plan.
func serverList(t *testing.T, srv *server, admin []string, a *agent) deviceList {
	t.Helper()
	var d protocol.Device
	out := must(t, admin, "rpmfleet", "device", a.name, "--json").stdout
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("rpmfleet device %s --json printed %q: %v", a.name, out, err)
	}
	plan, _ := fetchPlan(t, srv, a)
	list := deviceList{}
	for _, p := range plan.Advisories {
		var ps []checkPackage
		for _, x := range p.Packages {
			ps = append(ps, checkPackage{x.Name, x.Arch, x.Installed, x.Fixed})
		}
		sortPackages(ps)
		list[p.ID] = ps
	}
	var affected []string
	for _, x := range d.Advisories {
		if x.Status == protocol.StatusAffected {
			affected = append(affected, x.Advisory)
		}
	}
	slices.Sort(affected)
	if ids := slices.Sorted(maps.Keys(list)); !slices.Equal(ids, affected) {
		t.Errorf("%s: its plan lists %d advisories, rpmfleet device %d affected", a.name, len(ids), len(affected))
	}
	return list
}

// diffLists describes how got differs from want, "" when equal.
func diffLists(got, want deviceList) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[id]; !ok {
			fmt.Fprintf(&b, "\n  missing %s %v", id, want[id])
		} else if !slices.Equal(g, want[id]) {
			fmt.Fprintf(&b, "\n  %s: %v, check says %v", id, g, want[id])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			fmt.Fprintf(&b, "\n  extra %s %v", id, got[id])
		}
	}
	return b.String()
}
