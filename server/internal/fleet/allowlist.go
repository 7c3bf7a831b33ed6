package fleet

import (
	"context"
	"slices"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Allow-listed updates (issue 13, Policy.AllowUpdates) have no advisory a
// rollout could name, so they follow the group's rollouts as a whole:
// while a rollout to one of a device's groups is running or paused, a
// device none of those rollouts has reached yet gets its plan's policy
// without the allow-list, and keeps its packages where they are. Once a
// phase reaches it, or the rollouts end (completed or aborted), the
// allow-list is back. A group whose allow-list should go out in phases
// thus gets a rollout of its pending security advisories (or one
// advisory) and the allow-listed updates ride along with it.

// holdAllowList reports whether a running or paused rollout to one of the
// device's groups (member) has not reached the device. It reads the
// rollouts only when the policy allow-lists something, so plans without
// an allow-list cost nothing more.
func (s *Service) holdAllowList(ctx context.Context, deviceID string, member map[string]bool) (bool, error) {
	rs, err := s.st.Rollouts(ctx, protocol.RolloutRunning, protocol.RolloutPaused)
	if err != nil {
		return false, err
	}
	var mine []store.Rollout
	for _, r := range rs {
		if member[r.Group] {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return false, nil
	}
	reached, err := s.st.RolloutsReaching(ctx, deviceID)
	if err != nil {
		return false, err
	}
	return !slices.ContainsFunc(mine, func(r store.Rollout) bool { return reached[r.ID] }), nil
}
