package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// send makes one API call against a live server and decodes a 2xx answer
// into out; it returns the status and the error body.
func send(t *testing.T, method, url, secret string, in, out any) (int, protocol.Error) {
	t.Helper()
	var body bytes.Buffer
	if in != nil {
		json.NewEncoder(&body).Encode(in)
	}
	req, _ := http.NewRequest(method, url, &body)
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e protocol.Error
	if resp.StatusCode/100 == 2 {
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatalf("%s %s: %v", method, url, err)
			}
		}
	} else {
		json.NewDecoder(resp.Body).Decode(&e)
	}
	return resp.StatusCode, e
}

func TestNastyNamesAndInfoRefused(t *testing.T) {
	base, admin, _, _ := liveServer(t, Options{})
	var et protocol.EnrollTokenCreateResponse
	if code, e := send(t, "POST", base+protocol.PathEnrollTokens, admin, protocol.EnrollTokenCreateRequest{Uses: 100}, &et); code != 200 {
		t.Fatalf("enrolment token: %d %s", code, e.Error)
	}
	tests := []struct {
		name  string
		req   protocol.EnrollRequest
		field string
	}{
		{"ANSI clear screen", protocol.EnrollRequest{Name: "pi\x1b[2J"}, "name"},
		{"newline", protocol.EnrollRequest{Name: "pi\nfake-row"}, "name"},
		{"right-to-left override", protocol.EnrollRequest{Name: "pi\u202eexe.txt"}, "name"},
		{"64 KiB", protocol.EnrollRequest{Name: strings.Repeat("a", 64<<10)}, ""}, // over the 16 KiB enrolment body: 413
		{"NUL", protocol.EnrollRequest{Name: "pi\x00"}, "name"},
		{"invalid UTF-8", protocol.EnrollRequest{Name: "pi\xff"}, "name"},
		{"host name standing for the name", protocol.EnrollRequest{Device: protocol.DeviceInfo{Hostname: "pi\x1b]0;x\x07"}}, "device.hostname"},
		{"escape in the kernel", protocol.EnrollRequest{Name: "pi", Device: protocol.DeviceInfo{Kernel: "6.1\x1b[31m"}}, "device.kernel"},
		{"long os id", protocol.EnrollRequest{Name: "pi", Device: protocol.DeviceInfo{OSID: strings.Repeat("x", 200)}}, "device.os_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Token = et.Token
			code, e := send(t, "POST", base+protocol.PathEnroll, "", tt.req, nil)
			want := http.StatusBadRequest
			if tt.field == "" {
				want = http.StatusRequestEntityTooLarge
			}
			if code != want || e.Field != tt.field {
				t.Errorf("enrol: %d %q (field %q), want %d naming %q", code, e.Error, e.Field, want, tt.field)
			}
			if strings.ContainsAny(e.Error, "\x1b\n\x00\u202e") {
				t.Errorf("the refusal echoes the raw value: %q", e.Error)
			}
		})
	}
	// None of them spent a use or made a device.
	var ds []protocol.DeviceSummary
	send(t, "GET", base+protocol.PathDevices, admin, nil, &ds)
	if len(ds) != 0 {
		t.Errorf("devices after the refusals: %+v", ds)
	}

	var dev protocol.EnrollResponse
	if code, e := send(t, "POST", base+protocol.PathEnroll, "", protocol.EnrollRequest{Token: et.Token, Name: "pi"}, &dev); code != 200 {
		t.Fatalf("enrol pi: %d %s", code, e.Error)
	}
	pkgs := []protocol.Package{{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"}}
	rep := protocol.Report{ID: "r1", Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Kernel: "\x1b[2J"},
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
	if code, e := send(t, "POST", base+protocol.PathReport, dev.Credential, rep, nil); code != 400 || e.Field != "device.kernel" {
		t.Errorf("a report with an escape in its kernel: %d %q (field %q), want 400 naming device.kernel", code, e.Error, e.Field)
	}
	rep.Device.Kernel = "5.14.0-284.11.1.el9_2.aarch64"
	bad := []protocol.Package{{Name: "bash", Version: "5.1.8", Release: "6.el9_1\x1b]0;owned\x07", Arch: "aarch64"}}
	badRep := rep
	badRep.Inventory = protocol.Inventory{Kind: protocol.InventoryFull, Packages: bad, Digest: protocol.InventoryDigest(bad)}
	if code, e := send(t, "POST", base+protocol.PathReport, dev.Credential, badRep, nil); code != 400 || e.Field != "inventory.packages[0].release" {
		t.Errorf("a report with an escape in a package release: %d %q (field %q), want 400 naming it", code, e.Error, e.Field)
	}
	if code, e := send(t, "POST", base+protocol.PathReport, dev.Credential, rep, nil); code != 200 {
		t.Errorf("the same report with a real kernel: %d %s", code, e.Error)
	}
}

func TestEnrollTokenBoundsRefused(t *testing.T) {
	base, admin, _, _ := liveServer(t, Options{})
	tests := []struct {
		name  string
		req   protocol.EnrollTokenCreateRequest
		field string
	}{
		{"expired already", protocol.EnrollTokenCreateRequest{Expires: time.Now().Add(-time.Minute)}, "expires"},
		{"two years", protocol.EnrollTokenCreateRequest{Expires: time.Now().Add(2 * 365 * 24 * time.Hour)}, "expires"},
		{"a million uses", protocol.EnrollTokenCreateRequest{Uses: 1000000}, "uses"},
		{"escape in a label", protocol.EnrollTokenCreateRequest{Labels: map[string]string{"site": "\x1b[2J"}}, "labels.site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, e := send(t, "POST", base+protocol.PathEnrollTokens, admin, tt.req, nil); code != 400 || e.Field != tt.field {
				t.Errorf("%d %q (field %q), want 400 naming %s", code, e.Error, e.Field, tt.field)
			}
		})
	}
	var ts []protocol.EnrollTokenInfo
	send(t, "GET", base+protocol.PathEnrollTokens, admin, nil, &ts)
	if len(ts) != 0 {
		t.Errorf("refused tokens were stored: %+v", ts)
	}
}

func TestLifecycleEndpoints(t *testing.T) {
	base, admin, svc, _ := liveServer(t, Options{})
	ctx := t.Context()
	role := func(r protocol.Role) string {
		tok, err := svc.CreateToken(ctx, protocol.TokenCreateRequest{Name: string(r), Role: r})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	ro, op := role(protocol.RoleReadOnly), role(protocol.RoleOperator)
	var et protocol.EnrollTokenCreateResponse
	send(t, "POST", base+protocol.PathEnrollTokens, op, protocol.EnrollTokenCreateRequest{Uses: 5, Labels: map[string]string{"site": "barn"}}, &et)
	devs := map[string]protocol.EnrollResponse{}
	for _, name := range []string{"pi-lost", "pi-gone", "pi-kept"} {
		var d protocol.EnrollResponse
		if code, e := send(t, "POST", base+protocol.PathEnroll, "", protocol.EnrollRequest{Token: et.Token, Name: name}, &d); code != 200 {
			t.Fatalf("enrol %s: %d %s", name, code, e.Error)
		}
		devs[name] = d
	}
	pkgs := []protocol.Package{{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"}}
	report := func(name, id string) int {
		code, _ := send(t, "POST", base+protocol.PathReport, devs[name].Credential, protocol.Report{ID: id,
			Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}, nil)
		return code
	}
	for name := range devs {
		if code := report(name, "r1"); code != 200 {
			t.Fatalf("%s's report: %d", name, code)
		}
	}

	steps := []struct {
		name, method, path, secret string
		want                       int
	}{
		{"read-only may not revoke", "POST", protocol.PathDevice + "pi-lost" + protocol.PathRevokeSuffix, ro, 403},
		{"a device may not revoke itself", "POST", protocol.PathDevice + "pi-lost" + protocol.PathRevokeSuffix, devs["pi-lost"].Credential, 403},
		{"operator revokes", "POST", protocol.PathDevice + "pi-lost" + protocol.PathRevokeSuffix, op, 200},
		{"revoking an unknown device", "POST", protocol.PathDevice + "pi-never" + protocol.PathRevokeSuffix, op, 404},
		{"operator may not delete", "DELETE", protocol.PathDevice + "pi-gone", op, 403},
		{"admin deletes", "DELETE", protocol.PathDevice + "pi-gone", admin, 204},
		{"deleting twice", "DELETE", protocol.PathDevice + "pi-gone", admin, 404},
		{"operator may not list enrolment tokens", "GET", protocol.PathEnrollTokens, op, 403},
		{"operator may not revoke enrolment tokens", "DELETE", protocol.PathEnrollTokens + "/" + et.ID, op, 403},
		{"admin revokes the enrolment token", "DELETE", protocol.PathEnrollTokens + "/" + et.ID, admin, 204},
		{"revoking it twice", "DELETE", protocol.PathEnrollTokens + "/" + et.ID, admin, 404},
	}
	for _, st := range steps {
		if code, e := send(t, st.method, base+st.path, st.secret, nil, nil); code != st.want {
			t.Errorf("%s: %s %s = %d %q, want %d", st.name, st.method, st.path, code, e.Error, st.want)
		}
	}

	// The revoked and the deleted device can no longer report or fetch a
	// plan; the kept one can.
	for name, want := range map[string]int{"pi-lost": 401, "pi-gone": 401, "pi-kept": 200} {
		if code := report(name, "r2"); code != want {
			t.Errorf("%s's report after the lifecycle steps: %d, want %d", name, code, want)
		}
	}
	if code, _ := send(t, "GET", base+protocol.PathPlan, devs["pi-lost"].Credential, nil, nil); code != 401 {
		t.Errorf("the revoked device's plan: %d, want 401", code)
	}
	// Listed: the revoked one marked, the deleted one gone.
	var ds []protocol.DeviceSummary
	send(t, "GET", base+protocol.PathDevices, ro, nil, &ds)
	got := map[string]bool{}
	for _, d := range ds {
		got[d.Name] = d.Revoked != nil
	}
	if len(got) != 2 || !got["pi-lost"] || got["pi-kept"] {
		t.Errorf("devices = %v (name: revoked), want pi-lost revoked and pi-kept in service", got)
	}
	var d protocol.Device
	if send(t, "GET", base+protocol.PathDevice+"pi-lost", ro, nil, &d); d.Revoked == nil {
		t.Errorf("GET device pi-lost does not say it is revoked: %+v", d.DeviceSummary)
	}
	// The token, listed without its secret; enrolment with it refused.
	var raw json.RawMessage
	send(t, "GET", base+protocol.PathEnrollTokens, admin, nil, &raw)
	if strings.Contains(string(raw), et.Token) || strings.Contains(string(raw), "token\"") {
		t.Errorf("the token list shows a secret: %s", raw)
	}
	var ts []protocol.EnrollTokenInfo
	json.Unmarshal(raw, &ts)
	if len(ts) != 1 || ts[0].ID != et.ID || ts[0].UsesLeft != 0 || ts[0].Revoked == nil || ts[0].Labels["site"] != "barn" {
		t.Errorf("enrolment tokens = %s", raw)
	}
	if code, e := send(t, "POST", base+protocol.PathEnroll, "", protocol.EnrollRequest{Token: et.Token, Name: "pi-late"}, nil); code != 401 {
		t.Errorf("enrolling with the revoked token: %d %s, want 401", code, e.Error)
	}
}
