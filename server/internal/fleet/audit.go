package fleet

import (
	"context"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Audit records an action in the audit log, stamped with the service's
// clock when e.Time is zero. The action has happened whatever the log
// says, so a failure to record it is logged (at error level, for the
// operator to see), not returned. Callers never put a secret in e.
func (s *Service) Audit(ctx context.Context, e protocol.AuditEntry) {
	if e.Time.IsZero() {
		e.Time = s.opts.Now().UTC()
	}
	if err := s.st.AddAudit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit entry not recorded", "action", e.Action, "target", e.Target, "actor", e.Actor, "err", err)
	}
}

// AuditLog reads a page of the audit log, newest first.
func (s *Service) AuditLog(ctx context.Context, f store.AuditFilter) ([]protocol.AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, protocol.MaxAuditPage)
	return s.st.Audit(ctx, f)
}
