package sqlstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// What a report must be before the store takes it.

// maxReportID bounds a report id's length.
const maxReportID = 128

// validate checks what the store relies on, naming the field at fault.
func validate(r *protocol.Report) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", store.ErrBadReport, field, fmt.Sprintf(format, args...))
	}
	if r.ID == "" {
		return bad("id", "empty")
	}
	if len(r.ID) > maxReportID {
		return bad("id", "%d bytes, at most %d allowed", len(r.ID), maxReportID)
	}
	checkPkgs := func(field string, ps []protocol.Package) error {
		for i, p := range ps {
			switch {
			case p.Name == "":
				return bad(fmt.Sprintf("%s[%d].name", field, i), "empty")
			case p.Version == "":
				return bad(fmt.Sprintf("%s[%d].version", field, i), "empty")
			case p.Arch == "":
				return bad(fmt.Sprintf("%s[%d].arch", field, i), "empty")
			case strings.ContainsAny(p.Name+p.Epoch+p.Version+p.Release+p.Arch+p.ModularityLabel, "\t\n"):
				return bad(fmt.Sprintf("%s[%d]", field, i), "tab or newline in a field")
			}
			for _, c := range p.Epoch {
				if c < '0' || c > '9' {
					return bad(fmt.Sprintf("%s[%d].epoch", field, i), "%q is not a number", p.Epoch)
				}
			}
		}
		return nil
	}
	inv := &r.Inventory
	switch inv.Kind {
	case protocol.InventoryFull:
		if len(inv.Added)+len(inv.Removed) > 0 {
			return bad("inventory", "a full inventory carries no added or removed")
		}
		if err := checkPkgs("inventory.packages", inv.Packages); err != nil {
			return err
		}
	case protocol.InventoryDelta:
		if len(inv.Packages) > 0 {
			return bad("inventory.packages", "a delta inventory carries added and removed, not packages")
		}
		if err := checkPkgs("inventory.added", inv.Added); err != nil {
			return err
		}
		if err := checkPkgs("inventory.removed", inv.Removed); err != nil {
			return err
		}
	default:
		return bad("inventory.kind", "%q, want %q or %q", inv.Kind, protocol.InventoryFull, protocol.InventoryDelta)
	}
	if b, err := hex.DecodeString(inv.Digest); err != nil || len(b) != sha256.Size || strings.ToLower(inv.Digest) != inv.Digest {
		return bad("inventory.digest", "%q is not 64 lower-case hex digits", inv.Digest)
	}
	for i, cy := range r.Cycles {
		switch cy.Outcome {
		case protocol.OutcomeApplied, protocol.OutcomeRolledBack, protocol.OutcomeFailed, protocol.OutcomeAbandoned:
		default:
			return bad(fmt.Sprintf("cycles[%d].outcome", i), "unknown outcome %q", cy.Outcome)
		}
	}
	return nil
}
