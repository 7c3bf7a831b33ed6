package integration

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// enrollDevice enrols a device through the API and returns its credential.
func enrollDevice(t *testing.T, srv *server, name string) protocol.EnrollResponse {
	t.Helper()
	var tok protocol.EnrollTokenCreateResponse
	if code, raw := call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{}, &tok); code != 200 {
		t.Fatalf("create enrolment token: %d %s", code, raw)
	}
	var resp protocol.EnrollResponse
	if code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", protocol.EnrollRequest{Token: tok.Token, Name: name,
		Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64"}}, &resp); code != 200 {
		t.Fatalf("enroll %s: %d %s", name, code, raw)
	}
	return resp
}

var basePackages = []protocol.Package{
	{Name: "bash", Version: "5.1.8", Release: "6.el9_1", Arch: "aarch64"},
	{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64"},
}

func fullReport(id string, pkgs []protocol.Package) protocol.Report {
	return protocol.Report{ID: id, Time: time.Now().UTC(), Device: protocol.DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64"},
		Inventory: protocol.Inventory{Kind: protocol.InventoryFull, Packages: pkgs, Digest: protocol.InventoryDigest(pkgs)}}
}

func makeToken(t *testing.T, srv *server, role protocol.Role) protocol.TokenCreateResponse {
	t.Helper()
	var tok protocol.TokenCreateResponse
	if code, raw := call(t, "POST", srv.url+protocol.PathTokens, srv.admin, protocol.TokenCreateRequest{Name: "t-" + string(role), Role: role}, &tok); code != 200 {
		t.Fatalf("create %s token: %d %s", role, code, raw)
	}
	return tok
}

// TestSecurity tries to break each rule of the API's threat model against
// the real server, and checks the refusal names what was wrong.
func TestSecurity(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "data"))
	a := enrollDevice(t, srv, "dev-a")
	b := enrollDevice(t, srv, "dev-b")
	if code, raw := call(t, "POST", srv.url+protocol.PathReport, a.Credential, fullReport("a-1", basePackages), nil); code != 200 {
		t.Fatalf("dev-a's own report: %d %s", code, raw)
	}

	t.Run("a device reads only its own record", func(t *testing.T) {
		var d protocol.Device
		if code, raw := call(t, "GET", srv.url+protocol.PathDevice+"dev-a", a.Credential, nil, &d); code != 200 || d.Name != "dev-a" {
			t.Fatalf("own record: %d %s", code, raw)
		}
		if code, _ := call(t, "GET", srv.url+protocol.PathDevice+"dev-a", b.Credential, nil, nil); code != http.StatusForbidden {
			t.Errorf("dev-b reading dev-a: %d, want 403", code)
		}
		for _, p := range []string{protocol.PathDevices, protocol.PathCVE + "CVE-2023-2650", protocol.PathSummary, protocol.PathAdvisories, protocol.PathTokens} {
			if code, _ := call(t, "GET", srv.url+p, b.Credential, nil, nil); code != http.StatusForbidden {
				t.Errorf("device credential GET %s: %d, want 403", p, code)
			}
		}
	})

	t.Run("a device posts only its own reports", func(t *testing.T) {
		// There is no way to name another device in a report: the
		// credential decides whose it is. dev-b's report never lands on
		// dev-a, and dev-a's record is unchanged by it.
		var before protocol.Device
		call(t, "GET", srv.url+protocol.PathDevice+"dev-a", srv.admin, nil, &before)
		other := []protocol.Package{{Name: "zlib", Version: "1.2.11", Release: "40.el9", Arch: "aarch64"}}
		if code, raw := call(t, "POST", srv.url+protocol.PathReport, b.Credential, fullReport("a-1", other), nil); code != 200 {
			t.Fatalf("dev-b report: %d %s", code, raw)
		}
		var after protocol.Device
		call(t, "GET", srv.url+protocol.PathDevice+"dev-a", srv.admin, nil, &after)
		if after.Packages != before.Packages || !after.LastSeen.Equal(before.LastSeen) {
			t.Errorf("dev-b's report changed dev-a: before %+v, after %+v", before.DeviceSummary, after.DeviceSummary)
		}
		// An admin token is not a device: it cannot post a report.
		if code, _ := call(t, "POST", srv.url+protocol.PathReport, srv.admin, fullReport("x", other), nil); code != http.StatusForbidden {
			t.Errorf("admin token posting a report: %d, want 403", code)
		}
	})

	t.Run("unknown device", func(t *testing.T) {
		code, raw := call(t, "POST", srv.url+protocol.PathReport, "rfd_not-a-credential", fullReport("u-1", basePackages), nil)
		if code != http.StatusUnauthorized {
			t.Errorf("unknown credential: %d %s, want 401", code, raw)
		}
		if code, _ := call(t, "POST", srv.url+protocol.PathReport, "", fullReport("u-1", basePackages), nil); code != http.StatusUnauthorized {
			t.Errorf("no credential: %d, want 401", code)
		}
	})

	t.Run("single-use enrolment token", func(t *testing.T) {
		var tok protocol.EnrollTokenCreateResponse
		call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{}, &tok)
		req := protocol.EnrollRequest{Token: tok.Token, Name: "once-1"}
		if code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", req, nil); code != 200 {
			t.Fatalf("first use: %d %s", code, raw)
		}
		req.Name = "once-2"
		code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", req, nil)
		if code != http.StatusUnauthorized || !strings.Contains(apiError(t, raw).Error, "used up") {
			t.Errorf("second use: %d %s, want 401 used up", code, raw)
		}
	})

	t.Run("counted enrolment token", func(t *testing.T) {
		var tok protocol.EnrollTokenCreateResponse
		call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{Uses: 2}, &tok)
		for i, want := range []int{200, 200, 401} {
			req := protocol.EnrollRequest{Token: tok.Token, Name: "counted-" + string(rune('a'+i))}
			if code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", req, nil); code != want {
				t.Errorf("use %d: %d %s, want %d", i+1, code, raw, want)
			}
		}
	})

	t.Run("expired enrolment token", func(t *testing.T) {
		// A token already expired is refused at creation
		// (lifecycle_test.go); this one expires a second after.
		var tok protocol.EnrollTokenCreateResponse
		expires := time.Now().Add(time.Second)
		if code, raw := call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{Expires: expires}, &tok); code != 200 {
			t.Fatalf("create a token expiring in a second: %d %s", code, raw)
		}
		time.Sleep(time.Until(expires) + 100*time.Millisecond)
		code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", protocol.EnrollRequest{Token: tok.Token, Name: "late"}, nil)
		if code != http.StatusUnauthorized || !strings.Contains(apiError(t, raw).Error, "expired") {
			t.Errorf("expired token: %d %s, want 401 expired", code, raw)
		}
	})

	t.Run("enrolment name taken", func(t *testing.T) {
		var tok protocol.EnrollTokenCreateResponse
		call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{}, &tok)
		if code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", protocol.EnrollRequest{Token: tok.Token, Name: "dev-a"}, nil); code != http.StatusConflict {
			t.Errorf("taking dev-a's name: %d %s, want 409", code, raw)
		}
	})

	t.Run("roles", func(t *testing.T) {
		ro := makeToken(t, srv, protocol.RoleReadOnly)
		op := makeToken(t, srv, protocol.RoleOperator)
		osv := []byte(`{"id":"ALSA-2099:0001","affected":[]}`)
		tests := []struct {
			name, method, path, secret string
			body                       any
			want                       int
		}{
			{"read-only reads", "GET", protocol.PathSummary, ro.Token, nil, 200},
			{"read-only imports", "POST", protocol.PathImport, ro.Token, osv, 403},
			{"read-only makes enrolment tokens", "POST", protocol.PathEnrollTokens, ro.Token, protocol.EnrollTokenCreateRequest{}, 403},
			{"operator makes enrolment tokens", "POST", protocol.PathEnrollTokens, op.Token, protocol.EnrollTokenCreateRequest{}, 200},
			{"operator makes admin tokens", "POST", protocol.PathTokens, op.Token, protocol.TokenCreateRequest{Name: "x", Role: protocol.RoleAdmin}, 403},
			{"operator lists tokens", "GET", protocol.PathTokens, op.Token, nil, 403},
			{"admin lists tokens", "GET", protocol.PathTokens, srv.admin, nil, 200},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if code, raw := call(t, tt.method, srv.url+tt.path, tt.secret, tt.body, nil); code != tt.want {
					t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, code, raw, tt.want)
				}
			})
		}
	})

	t.Run("revoked token", func(t *testing.T) {
		tok := makeToken(t, srv, protocol.RoleOperator)
		if code, _ := call(t, "GET", srv.url+protocol.PathSummary, tok.Token, nil, nil); code != 200 {
			t.Fatalf("fresh token refused: %d", code)
		}
		if code, raw := call(t, "DELETE", srv.url+protocol.PathTokens+"/"+tok.ID, srv.admin, nil, nil); code != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", code, raw)
		}
		if code, _ := call(t, "GET", srv.url+protocol.PathSummary, tok.Token, nil, nil); code != http.StatusUnauthorized {
			t.Errorf("revoked token: %d, want 401", code)
		}
	})

	t.Run("malformed JSON names the field", func(t *testing.T) {
		tests := []struct {
			name, body, field, words string
		}{
			{"wrong type", `{"id":"m-1","inventory":{"kind":"full","packages":[{"name":7}]}}`, "inventory.packages.name", "string"},
			{"unknown field", `{"id":"m-2","inventroy":{}}`, "inventroy", "unknown field"},
			{"syntax", `{"id":"m-3",`, "", "JSON"},
			{"empty id", `{"inventory":{"kind":"full"}}`, "id", "id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, raw := call(t, "POST", srv.url+protocol.PathReport, a.Credential, tt.body, nil)
				e := apiError(t, raw)
				if code != http.StatusBadRequest || e.Field != tt.field || !strings.Contains(e.Error, tt.words) {
					t.Errorf("%s: %d %+v, want 400 field %q mentioning %q", tt.body, code, e, tt.field, tt.words)
				}
			})
		}
	})

	t.Run("oversized body", func(t *testing.T) {
		big := bytes.Repeat([]byte(" "), 2<<20)
		code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", append(big, '{', '}'), nil)
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("2 MB enrolment: %d %s, want 413", code, raw)
		}
	})

	t.Run("a retried report counts once", func(t *testing.T) {
		added := protocol.Package{Name: "zlib", Version: "1.2.11", Release: "40.el9", Arch: "aarch64"}
		all := append([]protocol.Package{added}, basePackages...)
		delta := protocol.Report{ID: "a-retry", Time: time.Now().UTC(), Inventory: protocol.Inventory{Kind: protocol.InventoryDelta,
			Added: []protocol.Package{added}, Digest: protocol.InventoryDigest(all)}}
		var first, second protocol.ReportResponse
		if code, raw := call(t, "POST", srv.url+protocol.PathReport, a.Credential, delta, &first); code != 200 || first.Duplicate || first.NeedFullInventory {
			t.Fatalf("first send: %d %s", code, raw)
		}
		if code, raw := call(t, "POST", srv.url+protocol.PathReport, a.Credential, delta, &second); code != 200 || !second.Duplicate {
			t.Fatalf("second send: %d %s, want duplicate", code, raw)
		}
		var d protocol.Device
		call(t, "GET", srv.url+protocol.PathDevice+"dev-a", srv.admin, nil, &d)
		if d.Packages != len(all) {
			t.Errorf("after the retried delta dev-a has %d packages, want %d", d.Packages, len(all))
		}
	})

	t.Run("a delta with a wrong digest asks for the full list", func(t *testing.T) {
		delta := protocol.Report{ID: "a-bad-digest", Time: time.Now().UTC(), Inventory: protocol.Inventory{Kind: protocol.InventoryDelta,
			Removed: basePackages[:1], Digest: strings.Repeat("0", 64)}}
		var resp protocol.ReportResponse
		if code, raw := call(t, "POST", srv.url+protocol.PathReport, a.Credential, delta, &resp); code != 200 || !resp.NeedFullInventory {
			t.Errorf("wrong digest: %d %s, want need_full_inventory", code, raw)
		}
	})
}

// TestPlainHTTPRefusedOffLoopback: the server will not serve plain HTTP on
// an address other machines reach unless told to.
func TestPlainHTTPRefusedOffLoopback(t *testing.T) {
	r := run(t, nil, "rpmfleet-server", "--data", t.TempDir(), "--listen", "0.0.0.0:0")
	if r.code == 0 || !strings.Contains(r.stderr, "allow-insecure-http") {
		t.Errorf("plain HTTP on 0.0.0.0: exit %d, stderr %s; want a refusal naming --allow-insecure-http", r.code, r.stderr)
	}
}
