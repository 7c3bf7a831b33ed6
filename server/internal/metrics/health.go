package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// The health endpoints answer without a login, so they say nothing a
// stranger could use: "ok", "ready" or "not ready", never which check
// failed or why (that goes to the log).

// readyTimeout bounds each readiness check.
const readyTimeout = 2 * time.Second

// Check is one readiness check: nil when the part it checks can serve.
type Check struct {
	// Name names the part in the log ("store", "broker").
	Name  string
	Ready func(ctx context.Context) error
}

// Healthz answers 200 "ok" while the process serves HTTP at all: a
// liveness probe.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok\n")
	})
}

// Readyz answers 200 "ready" when every check passes and 503 "not ready"
// otherwise, logging which failed and why. A failed store check is also
// counted in rpmfleet_store_errors_total{op="ready"} when m is not nil.
func Readyz(m *Metrics, log *slog.Logger, checks ...Check) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "health")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := true
		for _, c := range checks {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			err := c.Ready(ctx)
			cancel()
			if err != nil {
				ok = false
				log.Warn("not ready", "check", c.Name, "err", err)
				if m != nil && c.Name == "store" {
					m.StoreError("ready")
				}
			}
		}
		if !ok {
			plain(w, http.StatusServiceUnavailable, "not ready\n")
			return
		}
		plain(w, http.StatusOK, "ready\n")
	})
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

// StoreCheck checks that the store answers a query: it looks up an admin
// token by a hash no secret has (all zeros), an index probe whose "not
// found" proves the database answered.
func StoreCheck(st store.Tokens) Check {
	return Check{Name: "store", Ready: func(ctx context.Context) error {
		_, err := st.TokenByHash(ctx, store.Hash{})
		if err == nil || errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}}
}

// ListenerCheck checks that something accepts TCP connections on addr
// (the embedded broker's listener): a connection is opened and closed at
// once.
func ListenerCheck(name, addr string) Check {
	return Check{Name: name, Ready: func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}}
}
