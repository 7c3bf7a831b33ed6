package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/client"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// standaloneConfig makes the world's agent standalone: no server, no
// enrolment, the world's repository.
func (w *world) standaloneConfig(t *testing.T, body string) {
	t.Helper()
	if err := os.Remove(filepath.Join(w.stateDir, "credential.json")); err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("state_dir = %q\nroot = %q\n\n[[repo]]\nid = \"demo\"\nbaseurl = %q\ngpgkey = [%q]\n\n%s", w.stateDir, w.root, w.repo.URL, w.key.PublicKeyFile, body)
	if err := os.WriteFile(w.cfgPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStandaloneCheckKeyedByChecksums: standalone, a check whose
// repositories and installed set are unchanged reads repomd.xml only and
// keeps its plan; a change to the rpm database (a package installed by
// hand) makes a new plan without downloading the metadata again (the cache
// is keyed by checksum); the advisory the policy holds back (notify) is
// pending with its reason. No report is attempted: there is no server.
func TestStandaloneCheckKeyedByChecksums(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.standaloneConfig(t, policyTOML("notify", "")+"\n[poll]\ninterval = \"1s\"\njitter = \"0s\"\nconnected_interval = \"1s\"\n")
	if _, err := (client.State{Dir: w.stateDir}).LoadCredential(); err == nil {
		t.Fatal("still enrolled")
	}
	r := w.start(t)
	waitFor(t, 30*time.Second, "the advisory pending", func() bool {
		st := r.Status()
		return len(st.Pending) == 1 && st.Pending[0].ID == testAdvisory && st.Pending[0].Action == "notify"
	})
	const repomd = "/repodata/repomd.xml"
	data := func() int { return w.repo.Total() - w.repo.Requests(repomd) - w.repo.Requests(repomd+".asc") }
	first, checks := data(), w.repo.Requests(repomd)
	if first < 2 {
		t.Fatalf("%d metadata downloads, want updateinfo and primary", first)
	}
	waitFor(t, 20*time.Second, "three more checks", func() bool { return w.repo.Requests(repomd) >= checks+3 })
	if n := data(); n != first {
		t.Errorf("unchanged checks downloaded %d more files than repomd.xml", n-first)
	}
	if n := strings.Count(r.log.String(), "plan derived from the repositories"); n != 1 {
		t.Errorf("plan derived %d times, want once while nothing changed", n)
	}

	w.rpm(t, "-i", "--nodeps", "--noscripts", "--nosignature", w.rpms["demo-extra-3.0"])
	waitFor(t, 20*time.Second, "a new plan after the rpm database changed", func() bool {
		return strings.Count(r.log.String(), "plan derived from the repositories") == 2
	})
	if n := data(); n != first {
		t.Errorf("the new plan downloaded %d metadata files again", n-first)
	}
	if len(w.srv.Reports()) != 0 || w.srv.PlanGets() != 0 {
		t.Errorf("standalone talked to the fleet server: %d reports, %d plan fetches", len(w.srv.Reports()), w.srv.PlanGets())
	}
	if strings.Contains(r.log.String(), "not enrolled") {
		t.Error("standalone logged 'not enrolled'")
	}
}

// TestErrataURL: Home Assistant's release_url is the advisory's own page:
// its "self" reference (AlmaLinux; the one below is made up in its form), else the erratum link Rocky Linux's
// updateinfo gives (the cve, bugzilla and erratum references below are from
// testdata/updateinfo/rocky8/updateinfo.xml), never a CVE or bug tracker
// entry, never a non-http link.
func TestErrataURL(t *testing.T) {
	t.Parallel()
	cve := advisory.Reference{Type: "cve", ID: "CVE-2021-3520", URL: "https://access.redhat.com/hydra/rest/securitydata/cve/CVE-2021-3520.json"}
	bug := advisory.Reference{Type: "bugzilla", ID: "1692520", URL: "https://bugzilla.redhat.com/show_bug.cgi?id=1692520"}
	rocky := advisory.Reference{Type: "erratum", ID: "RHBA-2021:2580", URL: "https://access.redhat.com/errata/RHBA-2021:2580"}
	self := advisory.Reference{Type: "self", ID: "ALSA-2023:3722", URL: "https://errata.almalinux.org/9/ALSA-2023-3722.html"}
	tests := []struct {
		name string
		refs []advisory.Reference
		want string
	}{
		{"self first", []advisory.Reference{cve, rocky, self}, self.URL},
		{"rocky's erratum", []advisory.Reference{cve, bug, rocky}, rocky.URL},
		{"only trackers", []advisory.Reference{cve, bug}, ""},
		{"not http", []advisory.Reference{{Type: "self", URL: "javascript:alert(1)"}, {Type: "erratum", URL: "file:///etc/shadow"}}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errataURL(&advisory.Advisory{References: tt.refs}); got != tt.want {
				t.Errorf("errataURL = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestStandaloneFailedCycleNotRetriedAtOnce: standalone, the check that
// follows a cycle must not start the same failing cycle again at once
// (a tampered package here; a passing network fault alike), which would
// use up the advisory's attempts in seconds; it waits for the next
// scheduled check, and says why in the pending list.
func TestStandaloneFailedCycleNotRetriedAtOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	f := filepath.Join(w.repoDir, "Packages", filepath.Base(w.rpms["demo-lib-1.1"]))
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	w.standaloneConfig(t, policyTOML("apply", ""))
	r := w.start(t)
	waitFor(t, 60*time.Second, "the failed cycle and the check after it", func() bool {
		st := r.Status()
		return st.LastCycle != nil && st.LastCycle.Phase != "" && len(st.Pending) == 1 && strings.Contains(st.Pending[0].Reason, "last update cycle failed")
	})
	time.Sleep(2 * time.Second)
	if n := strings.Count(r.log.String(), "update cycle starting"); n != 1 {
		t.Errorf("%d cycles started, want 1 until the next scheduled check", n)
	}
	if st := r.Status(); st.LastCycle.Phase == "committed" {
		t.Errorf("a tampered package was committed: %+v", st.LastCycle)
	}
}

// TestStandaloneFromDeviceRepoFiles: standalone with no [[repo]] in the
// configuration reads the device's own /etc/yum.repos.d (a disabled
// repository left alone, the key from the .repo file's gpgkey inside the
// root) and applies the security fix the policy allows from it.
func TestStandaloneFromDeviceRepoFiles(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	keyDir := filepath.Join(w.root, "etc/pki/rpm-gpg")
	repoDir := filepath.Join(w.root, "etc/yum.repos.d")
	for _, d := range []string{keyDir, repoDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	key, err := os.ReadFile(w.key.PublicKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keyDir, "RPM-GPG-KEY-demo"), key, 0o644); err != nil {
		t.Fatal(err)
	}
	repoFile := fmt.Sprintf("[demo]\nname=Demo $releasever\nbaseurl=%s\nenabled=1\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-demo\n\n[off]\nbaseurl=http://127.0.0.1:1/nothing/\nenabled=0\n", w.repo.URL)
	if err := os.WriteFile(filepath.Join(repoDir, "demo.repo"), []byte(repoFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(w.stateDir, "credential.json")); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("state_dir = %q\nroot = %q\n\n%s", w.stateDir, w.root, policyTOML("apply", ""))
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := w.start(t)
	waitFor(t, 60*time.Second, "the fix from the device's .repo file", func() bool { return slices.Equal(w.installed(t), []string{"demo-lib-1.1-1"}) })
	waitFor(t, 10*time.Second, "the committed cycle", func() bool {
		st := r.Status()
		return st.LastCycle != nil && st.LastCycle.Phase == "committed"
	})
}
