package integration

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestRevokeAndDeleteEndToEnd: three real agents enrolled, reporting and
// connected to the server's embedded broker. An operator revokes one with
// the real CLI: its open MQTT connection is closed, its reconnects and its
// HTTP reports are refused, and it stays listed as revoked. An admin
// deletes another: the same, and it is gone from the list. The third goes
// on as before. Enrolment tokens are listed without their secrets and
// revoked.
func TestRevokeAndDeleteEndToEnd(t *testing.T) {
	repo := newFleetRepo(t)
	srv, mqttAddr := startPushServer(t, filepath.Join(t.TempDir(), "data"))
	dumpOnFailure(t, srv)
	agents := map[string]*agent{}
	for _, name := range []string{"pi-lost", "pi-gone", "pi-kept"} {
		a := startAgent(t, srv, repo, name, repo.deviceRoot(t), agentConfig{})
		a.waitLog(t, 0, 30*time.Second, "mqtt connected")
		waitReported(t, srv, a)
		agents[name] = a
	}
	lost, gone, kept := agents["pi-lost"], agents["pi-gone"], agents["pi-kept"]
	report := func(a *agent, id string) int {
		code, _ := call(t, "POST", srv.url+protocol.PathReport, a.credential, fullReport(id, basePackages), nil)
		return code
	}
	operator := makeToken(t, srv, protocol.RoleOperator)
	opEnv := []string{"RPMFLEET_SERVER=" + srv.url, "RPMFLEET_TOKEN=" + operator.Token}

	t.Run("revoke", func(t *testing.T) {
		mark := len(lost.log.String())
		out := must(t, opEnv, "rpmfleet", "device", "revoke", "pi-lost")
		if !strings.Contains(out.stdout, "pi-lost") || !strings.Contains(out.stdout, "revoked") {
			t.Errorf("rpmfleet device revoke: %q", out.stdout)
		}
		// Its open connection is closed by the broker, and its reconnects
		// are refused.
		lost.waitLog(t, mark, 20*time.Second, "mqtt connection lost")
		lost.waitLog(t, mark, 30*time.Second, "mqtt connect failed")
		if _, err := dialMQTT(t, mqttAddr, lost.id, lost.id, lost.credential); err == nil {
			t.Errorf("the revoked device logged in to the broker")
		}
		if code := report(lost, "after-revoke"); code != http.StatusUnauthorized {
			t.Errorf("the revoked device's report: %d, want 401", code)
		}
		if code, _ := call(t, "GET", srv.url+protocol.PathPlan, lost.credential, nil, nil); code != http.StatusUnauthorized {
			t.Errorf("the revoked device's plan: %d, want 401", code)
		}
		// Listed, as revoked.
		var ds []protocol.DeviceSummary
		if err := json.Unmarshal([]byte(must(t, adminEnv(srv), "rpmfleet", "devices", "--json").stdout), &ds); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if (d.Name == "pi-lost") != (d.Revoked != nil) {
				t.Errorf("%s listed with revoked %v", d.Name, d.Revoked)
			}
		}
		if table := must(t, adminEnv(srv), "rpmfleet", "devices").stdout; !strings.Contains(table, "revoked") {
			t.Errorf("rpmfleet devices does not show the revocation:\n%s", table)
		}
	})

	t.Run("delete", func(t *testing.T) {
		// An operator may revoke but not delete.
		if r := run(t, opEnv, "rpmfleet", "device", "delete", "pi-gone"); r.code == 0 || !strings.Contains(r.stderr, "403") {
			t.Errorf("an operator deleting: exit %d, %s", r.code, r.stderr)
		}
		mark := len(gone.log.String())
		must(t, adminEnv(srv), "rpmfleet", "device", "delete", "pi-gone")
		gone.waitLog(t, mark, 20*time.Second, "mqtt connection lost")
		gone.waitLog(t, mark, 30*time.Second, "mqtt connect failed")
		if code := report(gone, "after-delete"); code != http.StatusUnauthorized {
			t.Errorf("the deleted device's report: %d, want 401", code)
		}
		if r := run(t, adminEnv(srv), "rpmfleet", "device", "pi-gone"); r.code == 0 || !strings.Contains(r.stderr, "404") {
			t.Errorf("rpmfleet device pi-gone after the delete: exit %d, %s", r.code, r.stderr)
		}
		if table := must(t, adminEnv(srv), "rpmfleet", "devices").stdout; strings.Contains(table, "pi-gone") {
			t.Errorf("the deleted device is still listed:\n%s", table)
		}
	})

	t.Run("the other device goes on", func(t *testing.T) {
		if strings.Contains(kept.log.String(), "mqtt connection lost") {
			t.Errorf("pi-kept lost its MQTT connection:\n%s", kept.log)
		}
		if code := report(kept, "still-here"); code != 200 {
			t.Errorf("pi-kept's report: %d", code)
		}
	})

	t.Run("enrolment tokens", func(t *testing.T) {
		secret := strings.TrimSpace(must(t, adminEnv(srv), "rpmfleet", "enroll-token", "create", "--uses", "3", "--label", "site=barn").stdout)
		var ts []protocol.EnrollTokenInfo
		listed := must(t, adminEnv(srv), "rpmfleet", "enroll-token", "list", "--json").stdout
		if err := json.Unmarshal([]byte(listed), &ts); err != nil {
			t.Fatal(err)
		}
		table := must(t, adminEnv(srv), "rpmfleet", "enroll-token", "list").stdout
		if strings.Contains(listed+table, secret) {
			t.Errorf("the token list shows a secret:\n%s\n%s", listed, table)
		}
		last := ts[len(ts)-1]
		if last.UsesLeft != 3 || last.Labels["site"] != "barn" || last.Revoked != nil || !strings.Contains(table, last.ID) {
			t.Fatalf("the new token is listed as %+v:\n%s", last, table)
		}
		if r := run(t, opEnv, "rpmfleet", "enroll-token", "list"); r.code == 0 || !strings.Contains(r.stderr, "403") {
			t.Errorf("an operator listing enrolment tokens: exit %d, %s", r.code, r.stderr)
		}
		must(t, adminEnv(srv), "rpmfleet", "enroll-token", "revoke", last.ID)
		code, raw := call(t, "POST", srv.url+protocol.PathEnroll, "", protocol.EnrollRequest{Token: secret, Name: "pi-late"}, nil)
		if code != http.StatusUnauthorized {
			t.Errorf("enrolling with the revoked token: %d %s, want 401", code, raw)
		}
		if table := must(t, adminEnv(srv), "rpmfleet", "enroll-token", "list").stdout; !strings.Contains(table, last.ID) {
			t.Errorf("the revoked token is no longer listed:\n%s", table)
		}
		// Bounds at creation.
		for _, args := range [][]string{{"--uses", "10001"}, {"--expires", "9000h"}} {
			if r := run(t, adminEnv(srv), "rpmfleet", append([]string{"enroll-token", "create"}, args...)...); r.code == 0 {
				t.Errorf("rpmfleet enroll-token create %v was accepted", args)
			}
		}
		code, raw = call(t, "POST", srv.url+protocol.PathEnrollTokens, srv.admin, protocol.EnrollTokenCreateRequest{Expires: time.Now().Add(-time.Hour)}, nil)
		if e := apiError(t, raw); code != 400 || e.Field != "expires" || !strings.Contains(e.Error, "not in the future") {
			t.Errorf("an expired token at creation: %d %+v, want 400 naming expires", code, e)
		}
	})
}
