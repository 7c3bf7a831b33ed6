package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store/postgres/pgtest"
)

// The packages of the story's device: the openssl-libs AlmaLinux 9.0
// shipped, exposed to CVE-2023-2650, and two others.
var storyPackages = []rpmtest.Package{
	{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64"},
	{Name: "almalinux-release", Version: "9.2", Release: "1.el9", Arch: "aarch64"},
	{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"},
}

// TestStory is issue 4's "done when": a new user starts the server, imports
// the AlmaLinux 9 OSV database, enrols a device holding openssl-libs
// 3.0.1-23.el9_0, and sees it exposed to CVE-2023-2650 with ALSA-2023:3722
// and the fixed version; after the device upgrades and reports again, it is
// listed as patched.
func TestStory(t *testing.T) { story(t) }

// TestStoryPostgres runs the story on the PostgreSQL store (--db), on a
// throwaway PostgreSQL the test starts.
func TestStoryPostgres(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatalf("start PostgreSQL (run make deps): %v", err)
	}
	t.Cleanup(func() { pg.Stop() })
	story(t, "--db", pg.NewDatabase(t))
}

func story(t *testing.T, serverFlags ...string) {
	srv := startServer(t, filepath.Join(t.TempDir(), "rpmfleet-data"), serverFlags...)
	st, err := os.Stat(filepath.Join(srv.data, "admin.token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if !strings.Contains(srv.log.String(), filepath.Join(srv.data, "admin.token")) {
		t.Errorf("the server log does not say where the admin token is:\n%s", srv.log)
	}

	// The admin logs in once; later commands use the saved login.
	home := t.TempDir()
	admin := []string{"HOME=" + home}
	must(t, admin, "rpmfleet", "login", "--server", srv.url, "--token", srv.admin)
	if st, err := os.Stat(filepath.Join(home, ".config", "rpmfleet", "login.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("login.json: %v; want mode 0600", err)
	}

	osv := filepath.Join(fixtures(t), "almalinux-osv", "almalinux9.jsonl.gz")
	imp := must(t, admin, "rpmfleet", "import", osv)
	if !strings.Contains(imp.stdout, "imported") || !strings.Contains(imp.stderr, "uploaded almalinux9.jsonl.gz") {
		t.Errorf("import printed no result or no progress:\nstdout: %s\nstderr: %s", imp.stdout, imp.stderr)
	}

	tok := strings.TrimSpace(must(t, admin, "rpmfleet", "enroll-token", "create", "--label", "site=lab").stdout)
	if strings.ContainsAny(tok, " \n") || tok == "" {
		t.Fatalf("enroll-token create printed %q, want the token alone", tok)
	}

	root := devRoot(t, storyPackages...)
	state := filepath.Join(t.TempDir(), "state")
	must(t, nil, "rpmfleet-agent", "enroll", "--server", srv.url, "--token", tok, "--name", "pi-kitchen", "--state-dir", state, "--root", root)
	if st, err := os.Stat(filepath.Join(state, "credential.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credential.json: %v; want mode 0600", err)
	}
	rep := must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)
	if !strings.Contains(rep.stdout, "full inventory") {
		t.Errorf("first report was not a full inventory: %s", rep.stdout)
	}

	got := cve(t, admin, "CVE-2023-2650")
	want := protocol.CVEExposure{Device: "pi-kitchen", Advisory: "ALSA-2023:3722", Package: "openssl-libs",
		Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"}
	if !containsExposure(got.Exposed, want) || len(got.Patched) != 0 {
		t.Fatalf("cve before the fix = %+v, want %+v exposed and none patched", got, want)
	}
	text := must(t, admin, "rpmfleet", "cve", "CVE-2023-2650").stdout
	for _, w := range []string{"pi-kitchen", "ALSA-2023:3722", "1:3.0.7-16.el9_2"} {
		if !strings.Contains(text, w) {
			t.Errorf("cve table lacks %q:\n%s", w, text)
		}
	}
	devs := must(t, admin, "rpmfleet", "devices", "--exposed-to", "CVE-2023-2650", "--label", "site=lab").stdout
	if !strings.Contains(devs, "pi-kitchen") {
		t.Errorf("devices --exposed-to lacks the device:\n%s", devs)
	}

	// The device applies the fix; rpm writes it to its database.
	upgrade(t, root, rpmtest.Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "aarch64"})
	rep = must(t, nil, "rpmfleet-agent", "report", "--once", "--root", root, "--state-dir", state)
	if !strings.Contains(rep.stdout, "delta inventory") {
		t.Errorf("second report was not a delta: %s", rep.stdout)
	}
	got = cve(t, admin, "CVE-2023-2650")
	if len(got.Exposed) != 0 || len(got.Patched) != 1 || got.Patched[0] != (protocol.CVEPatched{Device: "pi-kitchen", Advisory: "ALSA-2023:3722"}) {
		t.Fatalf("cve after the fix = %+v, want pi-kitchen patched by ALSA-2023:3722 and nothing exposed", got)
	}

	var sum protocol.Summary
	if err := json.Unmarshal([]byte(must(t, admin, "rpmfleet", "summary", "--json").stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Devices != 1 {
		t.Errorf("summary = %+v, want 1 device", sum)
	}
	var adv protocol.AdvisoryStatus
	if err := json.Unmarshal([]byte(must(t, admin, "rpmfleet", "advisory", "ALSA-2023:3722", "--json").stdout), &adv); err != nil {
		t.Fatal(err)
	}
	if adv.Patched != 1 || adv.Affected != 0 {
		t.Errorf("advisory ALSA-2023:3722 = %+v, want 1 patched, 0 affected", adv.AdvisorySummary)
	}
}

func cve(t *testing.T, env []string, id string) protocol.CVEResponse {
	t.Helper()
	out := must(t, env, "rpmfleet", "cve", id, "--json").stdout
	var r protocol.CVEResponse
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("cve --json printed %q: %v", out, err)
	}
	if r.CVE != id || r.Exposed == nil || r.Patched == nil {
		t.Errorf("cve --json = %s, want cve %s and both lists present", out, id)
	}
	return r
}

func containsExposure(xs []protocol.CVEExposure, want protocol.CVEExposure) bool {
	for _, x := range xs {
		if x == want {
			return true
		}
	}
	return false
}
