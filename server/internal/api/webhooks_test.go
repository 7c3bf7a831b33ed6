package api

import (
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// TestDeliveriesEndpoint: the delivery list is for admin tokens only, and
// a bad filter is refused naming it. (What it lists is tested with real
// deliveries in fleet's TestWebhookEvents and the integration tests.)
func TestDeliveriesEndpoint(t *testing.T) {
	base, admin, _, _ := liveServer(t, Options{})
	var op protocol.TokenCreateResponse
	if code, e := send(t, "POST", base+protocol.PathTokens, admin, protocol.TokenCreateRequest{Name: "ops", Role: protocol.RoleOperator}, &op); code != 200 {
		t.Fatalf("token: %d %s", code, e.Error)
	}
	var ds []protocol.WebhookDelivery
	if code, e := send(t, "GET", base+protocol.PathWebhookDeliveries, admin, nil, &ds); code != 200 || ds == nil || len(ds) != 0 {
		t.Errorf("no deliveries yet: %d %s %v; want 200 and []", code, e.Error, ds)
	}
	if code, _ := send(t, "GET", base+protocol.PathWebhookDeliveries, op.Token, nil, nil); code != 403 {
		t.Errorf("an operator token read the deliveries: %d, want 403", code)
	}
	for _, q := range []struct{ query, field string }{{"status=lost", "status"}, {"limit=0", "limit"}, {"limit=1001", "limit"},
		{"limit=x", "limit"}, {"webhook=" + strings.Repeat("a", 65), "webhook"}} {
		if code, e := send(t, "GET", base+protocol.PathWebhookDeliveries+"?"+q.query, admin, nil, nil); code != 400 || e.Field != q.field {
			t.Errorf("deliveries?%.20s: %d %q (field %q), want 400 naming %s", q.query, code, e.Error, e.Field, q.field)
		}
	}
}
