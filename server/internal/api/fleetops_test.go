package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestAuditAndSelection: admin actions land in the audit log with who,
// what and how they ended, and never a secret; labels set through the API
// are held to ValidateLabels; a group narrows the device list; the audit
// log is an admin's to read.
func TestAuditAndSelection(t *testing.T) {
	base, admin, _, _ := liveServer(t, Options{})
	enrolDevices(t, base, admin, "pi-1", "pi-2")
	var ro protocol.TokenCreateResponse
	if code, e := send(t, "POST", base+protocol.PathTokens, admin, protocol.TokenCreateRequest{Name: "viewer", Role: protocol.RoleReadOnly}, &ro); code != 200 {
		t.Fatalf("token: %d %s", code, e.Error)
	}
	var d protocol.DeviceSummary
	if code, e := send(t, "PUT", base+protocol.PathDevice+"pi-2"+protocol.PathLabelsSuffix, admin, protocol.LabelsRequest{Labels: map[string]string{"ring": "canary"}}, &d); code != 200 || d.Labels["ring"] != "canary" {
		t.Fatalf("labels: %d %s %+v", code, e.Error, d)
	}
	if code, e := send(t, "PUT", base+protocol.PathDevice+"pi-1"+protocol.PathLabelsSuffix, admin, protocol.LabelsRequest{Labels: map[string]string{"ring": "x\x1b[2J"}}, nil); code != 400 || e.Field != "labels.ring" {
		t.Errorf("an escape in a label: %d %q (field %q), want 400 naming labels.ring", code, e.Error, e.Field)
	}
	if code, e := send(t, "PUT", base+protocol.PathGroup+"canary", admin, protocol.GroupRequest{Selector: map[string]string{"ring": "canary"}}, nil); code != 200 {
		t.Fatalf("group: %d %s", code, e.Error)
	}
	if code, _ := send(t, "PUT", base+protocol.PathGroup+"viewers", ro.Token, protocol.GroupRequest{}, nil); code != 403 {
		t.Errorf("a read-only token made a group: %d", code)
	}
	if code, _ := send(t, "PUT", base+protocol.PathGroup+"outsiders", "rfa_guess", protocol.GroupRequest{}, nil); code != 401 {
		t.Errorf("an unknown token made a group: %d", code)
	}
	var ds []protocol.DeviceSummary
	if code, e := send(t, "GET", base+protocol.PathDevices+"?group=canary", ro.Token, nil, &ds); code != 200 || len(ds) != 1 || ds[0].Name != "pi-2" {
		t.Errorf("devices of group canary: %d %s %+v", code, e.Error, ds)
	}
	if code, _ := send(t, "GET", base+protocol.PathDevices+"?group=nope", ro.Token, nil, nil); code != 404 {
		t.Errorf("devices of an unknown group: %d, want 404", code)
	}
	var sum protocol.Summary
	if code, e := send(t, "GET", base+protocol.PathSummary+"?label=ring=canary", ro.Token, nil, &sum); code != 200 || sum.Devices != 1 {
		t.Errorf("summary of ring=canary: %d %s %+v", code, e.Error, sum)
	}
	if code, _ := send(t, "GET", base+protocol.PathAudit, ro.Token, nil, nil); code != 403 {
		t.Errorf("a read-only token read the audit log: %d", code)
	}
	for _, q := range []struct{ query, field string }{{"limit=1001", "limit"}, {"limit=0", "limit"}, {"before=x", "before"}, {"before=-1", "before"}} {
		if code, e := send(t, "GET", base+protocol.PathAudit+"?"+q.query, admin, nil, nil); code != 400 || e.Field != q.field {
			t.Errorf("audit?%s: %d %q (field %q), want 400 naming %s", q.query, code, e.Error, e.Field, q.field)
		}
	}
	req, _ := http.NewRequest("GET", base+protocol.PathAudit, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw strings.Builder
	var es []protocol.AuditEntry
	if err := json.NewDecoder(io.TeeReader(resp.Body, &raw)).Decode(&es); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, e := range es {
		got = append(got, e.Action+" "+e.Target+" "+http.StatusText(e.Status))
		if i > 0 && (e.Actor != "test" || e.Role != protocol.RoleAdmin) {
			t.Errorf("entry %+v: want actor test, role admin", e)
		}
	}
	// The read-only token's refused attempt is recorded, with its name
	// and role; the unknown token's is not.
	if es[0].Actor != "viewer" || es[0].Role != protocol.RoleReadOnly || !strings.Contains(es[0].Error, "needs admin") {
		t.Errorf("the refused attempt's entry = %+v", es[0])
	}
	want := []string{"group.put viewers Forbidden", "group.put canary OK", "device.labels pi-1 Bad Request", "device.labels pi-2 OK", "token.create  OK", "enroll-token.create  OK"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit log =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if es[2].Error == "" || !strings.Contains(es[2].Error, "labels.ring") {
		t.Errorf("the refused relabelling's error = %q, want it to name labels.ring", es[2].Error)
	}
	for _, secret := range []string{ro.Token, admin, "rfe_", "rfd_"} {
		if strings.Contains(raw.String(), secret) {
			t.Errorf("the audit log holds a secret (%s...)", secret[:4])
		}
	}
}
