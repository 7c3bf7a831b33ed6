package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Issue 13's stories of hand approvals and the audit log.

// testApprovalsAndAudit: hand approvals keep their first time; the audit
// log pages newest first and filters by action.
func testApprovalsAndAudit(t *testing.T, b Backend) {
	s := open(t, b)
	ctx := t.Context()
	if err := s.Approve(ctx, protocol.Approval{Advisory: "ALSA-2023:3722", Approved: t0, By: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Approve(ctx, protocol.Approval{Advisory: "ALSA-2023:3722", Approved: t0.Add(time.Hour), By: "bob"}); err != nil {
		t.Fatal(err)
	}
	as, err := s.Approvals(ctx)
	if err != nil || len(as) != 1 || as[0].By != "alice" || !as[0].Approved.Equal(t0) {
		t.Errorf("Approvals = %+v, %v; want alice's at %v", as, err, t0)
	}
	if err := s.Unapprove(ctx, "ALSA-2023:3722"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unapprove(ctx, "ALSA-2023:3722"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("withdrawing twice: %v, want ErrNotFound", err)
	}

	for i := range 5 {
		action := "import"
		if i%2 == 1 {
			action = "token.create"
		}
		e := protocol.AuditEntry{Time: t0.Add(time.Duration(i) * time.Second), ActorID: "tok1", Actor: "alice", Role: protocol.RoleAdmin,
			Action: action, Target: fmt.Sprint("t", i), Detail: "POST /x", Status: 200}
		if i == 4 {
			e.Status, e.Error = 400, "urls: empty"
		}
		if err := s.AddAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.Audit(ctx, store.AuditFilter{Limit: 3})
	if err != nil || len(page) != 3 || page[0].Target != "t4" || page[2].Target != "t2" {
		t.Fatalf("first page = %+v, %v; want t4, t3, t2", page, err)
	}
	if page[0].Error != "urls: empty" || page[0].Status != 400 || page[0].Role != protocol.RoleAdmin || !page[0].Time.Equal(t0.Add(4*time.Second)) {
		t.Errorf("newest entry = %+v", page[0])
	}
	next, err := s.Audit(ctx, store.AuditFilter{Limit: 3, Before: page[2].ID})
	if err != nil || len(next) != 2 || next[0].Target != "t1" || next[1].Target != "t0" {
		t.Errorf("second page = %+v, %v; want t1, t0", next, err)
	}
	imports, err := s.Audit(ctx, store.AuditFilter{Limit: 10, Action: "token.create"})
	if err != nil || len(imports) != 2 || imports[0].Target != "t3" {
		t.Errorf("token.create entries = %+v, %v; want t3, t1", imports, err)
	}
}
