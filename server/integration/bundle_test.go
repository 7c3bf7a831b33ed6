package integration

// The air-gap path end to end: rpmfleet bundle, run on the server's host
// against its data folder, writes a bundle straight into a real agent's
// spool; the agent verifies the plan with the server's key it learnt at
// enrolment and applies the fix from the bundle's own repository.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// TestBundleAppliedFromSpool: a device the server never sent the fix to
// (the advisory was never imported, so its plans are empty) gets it from a
// bundle made by the real rpmfleet binary from a folder of the signed RPMs
// and an updateinfo.xml; the agent moves the bundle to done/ and rpm says
// the fix is installed. A bundle for another device is refused, naming why.
func TestBundleAppliedFromSpool(t *testing.T) {
	repo := newFleetRepo(t)
	data := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, data, "--mqtt-listen", "off")
	dumpOnFailure(t, srv)
	a := startAgent(t, srv, repo, "pi-airgap", repo.deviceRoot(t), agentConfig{Mode: "apply", Window: "open"})
	waitReported(t, srv, a)

	in := t.TempDir()
	rpms := filepath.Join(in, "rpms")
	if err := os.Mkdir(rpms, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, nv := range []string{"demo-lib-1.0", "demo-lib-1.1"} {
		b, err := os.ReadFile(repo.rpms[nv])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rpms, filepath.Base(repo.rpms[nv])), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	arch := rpmArch(t)
	var ui bytes.Buffer
	w := updateinfo.NewWriter(&ui)
	if err := w.Write(&advisory.Advisory{ID: fixAdvisory, Type: advisory.Security, Severity: advisory.Important,
		Title: "demo-lib security update", Issued: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
		Packages: []advisory.Package{{Name: "demo-lib", EVR: rpmver.MustParseEVR(newLib), Arch: arch}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	uiPath := filepath.Join(in, "updateinfo.xml")
	if err := os.WriteFile(uiPath, ui.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(a.state, "spool")
	bundle := func(device, name string) result {
		return must(t, nil, "rpmfleet", "bundle", "--data", data, "--device", device, "--rpms", rpms,
			"--updateinfo", uiPath, "--name", name, spool)
	}

	// First a bundle signed for another device: refused, nothing installed.
	mark := a.log.Len()
	bundle("someone-else", "a-other-device")
	a.waitLog(t, mark, 60*time.Second, "spool bundle moved", "bundle=a-other-device", "to=failed")
	if b, err := os.ReadFile(filepath.Join(spool, "failed", "a-other-device.reason")); err != nil || !strings.Contains(string(b), "notice: for another device") {
		t.Errorf("reason %q (%v), want it to say notice: for another device", b, err)
	}

	r := bundle(a.id, "b-fix")
	if !strings.Contains(r.stdout, fixAdvisory) || !strings.Contains(r.stdout, "demo-lib-0:"+newLib+"."+arch) {
		t.Errorf("rpmfleet bundle printed %q, want %s and its package", r.stdout, fixAdvisory)
	}
	a.waitLog(t, mark, 90*time.Second, "spool bundle moved", "bundle=b-fix", "to=done")
	a.waitInstalled(t, 30*time.Second, "demo-lib", newLib)
	if b, err := os.ReadFile(filepath.Join(spool, "done", "b-fix.reason")); err != nil || !strings.Contains(string(b), "committed") {
		t.Errorf("done reason %q (%v), want the cycle committed", b, err)
	}
}
