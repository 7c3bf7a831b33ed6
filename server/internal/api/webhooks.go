package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// deliveries lists the webhook outbox (GET PathWebhookDeliveries).
func (s *Server) deliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.DeliveryFilter{Status: q.Get("status"), Webhook: q.Get("webhook")}
	switch f.Status {
	case "", protocol.DeliveryPending, protocol.DeliveryDelivered, protocol.DeliveryFailed:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status: %q is not pending, delivered or failed", f.Status), "status")
		return
	}
	if len(f.Webhook) > 64 {
		writeError(w, http.StatusBadRequest, "webhook: longer than 64 bytes", "webhook")
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > protocol.MaxDeliveryPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not a number from 1 to %d", l, protocol.MaxDeliveryPage), "limit")
			return
		}
		f.Limit = n
	}
	ds, err := s.svc.Deliveries(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}
