package daemon

import (
	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// policyFor is the policy the agent follows for a plan: the device's own
// [policy] narrowed against the group policy the plan carries
// (policy.Narrow: the file may narrow the server's policy, never widen
// it). A plan without a policy leaves the device's file alone in force. A
// policy of a later version than this agent reads is ignored, as
// protocol.PolicyVersion says; one of a known version that cannot be read
// (a server fault) narrows to notify only, so a broken group policy never
// lets the agent install what the group may not have allowed.
func (d *daemon) policyFor(plan *protocol.Plan) *policy.Policy {
	local := d.cfg.Policy
	if plan == nil || plan.Policy == nil || plan.Policy.Version > protocol.PolicyVersion {
		return &local
	}
	server, err := policy.FromServer(plan.Policy)
	if err != nil {
		server = policy.Policy{Mode: policy.Notify, SecurityOnly: true, Reboot: policy.RebootNever}
	}
	p := policy.Narrow(server, local)
	return &p
}

// currentPolicy is policyFor the plan in hand.
func (d *daemon) currentPolicy() *policy.Policy {
	if d.plan == nil {
		return d.policyFor(nil)
	}
	return d.policyFor(&d.plan.Plan)
}

// notePlanPolicy logs, once per new plan, the group policy it carries and
// what the device's file made of it.
func (d *daemon) notePlanPolicy(plan *protocol.Plan) {
	sp := plan.Policy
	switch {
	case sp == nil:
		return
	case sp.Version > protocol.PolicyVersion:
		d.log.Warn("plan policy of a later version ignored; the device's own policy applies", "version", sp.Version, "known", protocol.PolicyVersion, "group", sp.Group)
		return
	}
	if _, err := policy.FromServer(sp); err != nil {
		d.log.Warn("plan policy unreadable; notifying only", "group", sp.Group, "err", err)
		return
	}
	p := d.policyFor(plan)
	d.log.Info("group policy in force", "group", sp.Group, "server_mode", sp.Mode, "mode", p.Mode, "reboot", p.Reboot, "windows", len(p.Windows), "also_within", len(p.Within))
}
