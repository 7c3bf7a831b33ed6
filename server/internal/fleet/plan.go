package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// PlanTTL is how long a signed plan is valid. An agent polls more often
// than that; a plan kept longer (a frozen or replayed answer) is refused.
const PlanTTL = time.Hour

// ErrNoSigner is returned by the methods that sign when the Service was
// built without a notice signer (Options.Signer).
var ErrNoSigner = errors.New("fleet: no notice signer")

// Plan returns the device's plan signed for it (a pkg/notice envelope of
// kind plan whose body is a protocol.Plan), and its ETag: a hash of the
// plan's body, not of the envelope, so it stays the same while the plan
// does although every signing differs. store.ErrNotFound for an unknown
// device.
func (s *Service) Plan(ctx context.Context, deviceID string) (signed []byte, etag string, err error) {
	if s.opts.Signer == nil {
		return nil, "", ErrNoSigner
	}
	advs, err := s.st.DevicePlan(ctx, deviceID)
	if err != nil {
		return nil, "", fmt.Errorf("plan: %w", err)
	}
	if advs == nil {
		advs = []protocol.PlanAdvisory{}
	}
	plan, err := s.gatePlan(ctx, deviceID, advs)
	if err != nil {
		return nil, "", fmt.Errorf("plan: %w", err)
	}
	etag, err = PlanETag(plan)
	if err != nil {
		return nil, "", fmt.Errorf("plan of device %s: %w", deviceID, err)
	}
	signed, err = s.opts.Signer.Sign(notice.KindPlan, deviceID, plan, PlanTTL)
	if err != nil {
		return nil, "", fmt.Errorf("plan of device %s: %w", deviceID, err)
	}
	return signed, etag, nil
}

// PlanETag returns the strong ETag of a plan: the quoted SHA-256 of its
// JSON encoding, which is deterministic for a protocol.Plan (struct fields
// in order; a map's keys are sorted).
func PlanETag(p protocol.Plan) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`, nil
}
