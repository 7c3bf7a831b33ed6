package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// The fleet operations of issue 13: labels, groups and their policies,
// hand approvals, rollouts, the audit log and FleetLock slots; and the
// --label/--group selection devices, cve, advisories and summary take.

func init() {
	register("labels", "set a device's labels (replacing them)", runLabels)
	register("group", "list, show, set or delete groups (label selectors) and their policies", runGroup)
	register("approve", "approve an advisory by hand, or list or withdraw approvals", runApprove)
	register("rollout", "create, list, show, pause, resume, abort or approve rollouts", runRollout)
	register("audit", "read the audit log", runAudit)
	register("fleetlock", "list or release FleetLock reboot slots", runFleetLock)
}

// selectionFlags are --label k=v (repeatable) and --group NAME.
type selectionFlags struct {
	labels labelFlag
	group  string
}

func addSelection(fs *flag.FlagSet) *selectionFlags {
	s := &selectionFlags{labels: labelFlag{}}
	fs.Var(s.labels, "label", "only devices with this label, key=value (repeatable)")
	fs.StringVar(&s.group, "group", "", "only the devices of this group")
	return s
}

// apply adds the selection to path's query.
func (s *selectionFlags) apply(path string) string {
	q := url.Values{}
	for k, v := range s.labels {
		q.Add(protocol.QueryLabel, k+"="+v)
	}
	if s.group != "" {
		q.Set(protocol.QueryGroup, s.group)
	}
	if len(q) == 0 {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + q.Encode()
}

// getNamedSel is getNamed with the selection flags.
func getNamedSel(ctx context.Context, e *env, args []string, cmd, usage, path string, out any, show func()) int {
	var c conn
	fs := newFlagSet(e, cmd, usage, &c)
	asJSON := fs.Bool("json", false, "print JSON")
	sel := addSelection(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ExitUsage
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, cmd, err)
	}
	if err := api.get(ctx, sel.apply(path+esc(fs.Arg(0))), out); err != nil {
		return fail(e, cmd, err)
	}
	if *asJSON {
		writeJSON(e.stdout, out)
		return ExitOK
	}
	show()
	return ExitOK
}

// sub splits "CMD SUB args..." for the commands with subcommands.
func sub(args []string) (string, []string) {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a, append(append([]string{}, args[:i]...), args[i+1:]...)
		}
	}
	return "", args
}

func runLabels(ctx context.Context, e *env, args []string) int {
	var c conn
	fs := newFlagSet(e, "labels", "labels DEVICE [key=value ...] [--json] (no labels: remove them all)", &c)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return ExitUsage
	}
	labels := labelFlag{}
	for _, kv := range fs.Args()[1:] {
		if err := labels.Set(kv); err != nil {
			return fail(e, "labels", err)
		}
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "labels", err)
	}
	var d protocol.DeviceSummary
	if err := api.do(ctx, http.MethodPut, protocol.PathDevice+esc(fs.Arg(0))+protocol.PathLabelsSuffix, protocol.LabelsRequest{Labels: labels}, "", &d); err != nil {
		return fail(e, "labels", err)
	}
	if *asJSON {
		writeJSON(e.stdout, d)
		return ExitOK
	}
	fmt.Fprintf(e.stdout, "%s: labels %s\n", show(d.Name), show(dash(labelFlag(d.Labels).String())))
	return ExitOK
}

const groupUsage = "group list | group show NAME | group set NAME [key=value ...] | group delete NAME | group policy NAME FILE.json | group policy NAME --delete"

func runGroup(ctx context.Context, e *env, args []string) int {
	verb, rest := sub(args)
	var c conn
	fs := newFlagSet(e, "group", groupUsage, &c)
	asJSON := fs.Bool("json", false, "print JSON")
	del := fs.Bool("delete", false, "with policy: detach the group's policy")
	if code, ok := parseFlags(fs, rest); !ok {
		return code
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "group", err)
	}
	var g protocol.Group
	switch {
	case verb == "list" && fs.NArg() == 0:
		var gs []protocol.Group
		if err := api.get(ctx, protocol.PathGroups, &gs); err != nil {
			return fail(e, "group list", err)
		}
		if *asJSON {
			writeJSON(e.stdout, gs)
			return ExitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tSELECTOR\tDEVICES\tPOLICY")
		for _, g := range gs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", show(g.Name), show(dash(labelFlag(g.Selector).String())), g.Devices, policyLine(g.Policy))
		}
		tw.Flush()
		return ExitOK
	case verb == "show" && fs.NArg() == 1:
		if err := api.get(ctx, protocol.PathGroup+esc(fs.Arg(0)), &g); err != nil {
			return fail(e, "group show", err)
		}
	case verb == "set" && fs.NArg() >= 1:
		sel := labelFlag{}
		for _, kv := range fs.Args()[1:] {
			if err := sel.Set(kv); err != nil {
				return fail(e, "group set", err)
			}
		}
		if err := api.do(ctx, http.MethodPut, protocol.PathGroup+esc(fs.Arg(0)), protocol.GroupRequest{Selector: sel}, "", &g); err != nil {
			return fail(e, "group set", err)
		}
	case verb == "delete" && fs.NArg() == 1:
		if err := api.do(ctx, http.MethodDelete, protocol.PathGroup+esc(fs.Arg(0)), nil, "", nil); err != nil {
			return fail(e, "group delete", err)
		}
		fmt.Fprintf(e.stdout, "group %s deleted\n", show(fs.Arg(0)))
		return ExitOK
	case verb == "policy" && fs.NArg() == 1 && *del:
		if err := api.do(ctx, http.MethodDelete, protocol.PathGroup+esc(fs.Arg(0))+protocol.PathPolicySuffix, nil, "", &g); err != nil {
			return fail(e, "group policy", err)
		}
	case verb == "policy" && fs.NArg() == 2:
		b, err := os.ReadFile(fs.Arg(1))
		if err != nil {
			return fail(e, "group policy", err)
		}
		var p protocol.Policy
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return fail(e, "group policy", fmt.Errorf("%s: %w", fs.Arg(1), err))
		}
		if err := api.do(ctx, http.MethodPut, protocol.PathGroup+esc(fs.Arg(0))+protocol.PathPolicySuffix, p, "", &g); err != nil {
			return fail(e, "group policy", err)
		}
	default:
		fs.Usage()
		return ExitUsage
	}
	if *asJSON {
		writeJSON(e.stdout, g)
		return ExitOK
	}
	fmt.Fprintf(e.stdout, "group %s: selector %s, %d devices\n  policy: %s\n", show(g.Name), show(dash(labelFlag(g.Selector).String())), g.Devices, policyLine(g.Policy))
	return ExitOK
}

func policyLine(p *protocol.Policy) string {
	if p == nil {
		return "-"
	}
	var parts []string
	parts = append(parts, "mode "+show(p.Mode))
	if p.SecurityOnly {
		parts = append(parts, "security only")
	}
	if p.MinSeverity != "" {
		parts = append(parts, "at least "+show(p.MinSeverity))
	}
	if len(p.Exclude) > 0 {
		parts = append(parts, "excluding "+show(strings.Join(p.Exclude, " ")))
	}
	if len(p.AllowUpdates) > 0 {
		parts = append(parts, "updating without advisory "+show(strings.Join(p.AllowUpdates, " ")))
	}
	for _, w := range p.Windows {
		parts = append(parts, fmt.Sprintf("window %s %s for %s (%s)", show(strings.Join(w.Days, ",")), show(w.Start), show(w.Length), show(w.Timezone)))
	}
	parts = append(parts, "reboot "+show(p.Reboot))
	if len(p.ApproveAfterDays) > 0 {
		var ds []string
		for _, sev := range []string{"Critical", "Important", "Moderate", "Low", "None"} {
			if n, ok := p.ApproveAfterDays[sev]; ok {
				ds = append(ds, fmt.Sprintf("%s %dd", sev, n))
			}
		}
		parts = append(parts, "approve after "+strings.Join(ds, ", "))
	}
	return strings.Join(parts, "; ")
}

func runApprove(ctx context.Context, e *env, args []string) int {
	var c conn
	fs := newFlagSet(e, "approve", "approve ADVISORY | approve --list | approve --withdraw ADVISORY", &c)
	asJSON := fs.Bool("json", false, "print JSON")
	list := fs.Bool("list", false, "list the advisories approved by hand")
	withdraw := fs.Bool("withdraw", false, "withdraw the hand approval of ADVISORY")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "approve", err)
	}
	switch {
	case *list && fs.NArg() == 0:
		var as []protocol.Approval
		if err := api.get(ctx, protocol.PathApprovals, &as); err != nil {
			return fail(e, "approve", err)
		}
		if *asJSON {
			writeJSON(e.stdout, as)
			return ExitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADVISORY\tAPPROVED\tBY")
		for _, a := range as {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", show(a.Advisory), e.fmtTime(a.Approved), show(a.By))
		}
		tw.Flush()
	case *withdraw && fs.NArg() == 1:
		if err := api.do(ctx, http.MethodDelete, protocol.PathApprovals+"/"+esc(fs.Arg(0)), nil, "", nil); err != nil {
			return fail(e, "approve", err)
		}
		fmt.Fprintf(e.stdout, "approval of %s withdrawn\n", show(fs.Arg(0)))
	case !*list && !*withdraw && fs.NArg() == 1:
		var a protocol.Approval
		if err := api.do(ctx, http.MethodPost, protocol.PathApprovals, protocol.ApprovalRequest{Advisory: fs.Arg(0)}, "", &a); err != nil {
			return fail(e, "approve", err)
		}
		if *asJSON {
			writeJSON(e.stdout, a)
			return ExitOK
		}
		fmt.Fprintf(e.stdout, "%s approved %s by %s\n", show(a.Advisory), e.fmtTime(a.Approved), show(a.By))
	default:
		fs.Usage()
		return ExitUsage
	}
	return ExitOK
}

const rolloutUsage = "rollout create --group NAME (--advisory ID | --all-security) [--phases 1,10%,50%,100%] [--soak 1h] [--max-failure-rate 0] | rollout list | rollout show|pause|resume|abort|approve ID"

func runRollout(ctx context.Context, e *env, args []string) int {
	verb, rest := sub(args)
	var c conn
	fs := newFlagSet(e, "rollout", rolloutUsage, &c)
	asJSON := fs.Bool("json", false, "print JSON")
	group := fs.String("group", "", "create: the group to roll out to")
	adv := fs.String("advisory", "", "create: the advisory to roll out")
	allSec := fs.Bool("all-security", false, "create: every security advisory affecting a device of the group")
	phases := fs.String("phases", "", "create: comma-separated phases, a count or percentage then rising percentages (default 1,10%,50%,100%)")
	soak := fs.String("soak", "", "create: how long a phase runs before the next may start (default 1h)")
	maxFail := fs.Float64("max-failure-rate", 0, "create: the failure rate (0 to 1) above which the rollout pauses by itself")
	if code, ok := parseFlags(fs, rest); !ok {
		return code
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "rollout", err)
	}
	var r protocol.Rollout
	switch {
	case verb == "create" && fs.NArg() == 0:
		req := protocol.RolloutRequest{Advisory: *adv, Group: *group, Soak: *soak, MaxFailureRate: *maxFail}
		if *allSec {
			if *adv != "" {
				fs.Usage()
				return ExitUsage
			}
			req.Advisory = protocol.AllPendingSecurity
		}
		if *phases != "" {
			req.Phases = strings.Split(*phases, ",")
		}
		if err := api.do(ctx, http.MethodPost, protocol.PathRollouts, req, "", &r); err != nil {
			return fail(e, "rollout create", err)
		}
	case verb == "list" && fs.NArg() == 0:
		var rs []protocol.Rollout
		if err := api.get(ctx, protocol.PathRollouts, &rs); err != nil {
			return fail(e, "rollout list", err)
		}
		if *asJSON {
			writeJSON(e.stdout, rs)
			return ExitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tGROUP\tSTATE\tPHASE\tDEVICES\tADVISORIES\tCREATED")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", show(r.ID), show(r.Group), show(string(r.State)), r.Phase+1, len(r.Phases),
				r.Total, show(advList(r.Advisories)), e.fmtTime(r.Created))
		}
		tw.Flush()
		return ExitOK
	case verb == "show" && fs.NArg() == 1:
		if err := api.get(ctx, protocol.PathRollout+esc(fs.Arg(0)), &r); err != nil {
			return fail(e, "rollout show", err)
		}
	case (verb == protocol.RolloutPause || verb == protocol.RolloutResume || verb == protocol.RolloutAbort || verb == protocol.RolloutApprove) && fs.NArg() == 1:
		if err := api.do(ctx, http.MethodPost, protocol.PathRollout+esc(fs.Arg(0))+"/"+verb, nil, "", &r); err != nil {
			return fail(e, "rollout "+verb, err)
		}
	default:
		fs.Usage()
		return ExitUsage
	}
	if *asJSON {
		writeJSON(e.stdout, r)
		return ExitOK
	}
	fmt.Fprintf(e.stdout, "rollout %s to group %s: %s, phase %d of %d (%s), %d devices exposed at creation\n  advisories: %s\n  soak %s, pauses above %.0f%% failures\n",
		show(r.ID), show(r.Group), show(string(r.State)), r.Phase+1, len(r.Phases), show(strings.Join(r.Phases, " ")), r.Total,
		show(advList(r.Advisories)), show(r.Soak), 100*r.MaxFailureRate)
	if r.Reason != "" {
		fmt.Fprintf(e.stdout, "  reason: %s\n", show(r.Reason))
	}
	if len(r.Devices) > 0 {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nDEVICE\tPHASE\tRESULT\tERROR")
		for _, d := range r.Devices {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", show(d.Device), d.Phase+1, show(d.Result), show(dash(d.Error)))
		}
		tw.Flush()
	}
	return ExitOK
}

func advList(as []string) string {
	if len(as) > 5 {
		return strings.Join(as[:5], " ") + fmt.Sprintf(" and %d more", len(as)-5)
	}
	return strings.Join(as, " ")
}

func runAudit(ctx context.Context, e *env, args []string) int {
	var c conn
	fs := newFlagSet(e, "audit", "audit [--limit N] [--before ID] [--action NAME] [--json]", &c)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 100, "at most this many entries, newest first")
	before := fs.Int64("before", 0, "only entries older than this id (the next page)")
	action := fs.String("action", "", "only entries of this action (import, token.create, rollout.pause, ...)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "audit", err)
	}
	q := url.Values{}
	q.Set("limit", strconv.Itoa(*limit))
	if *before > 0 {
		q.Set("before", strconv.FormatInt(*before, 10))
	}
	if *action != "" {
		q.Set("action", *action)
	}
	var es []protocol.AuditEntry
	if err := api.get(ctx, protocol.PathAudit+"?"+q.Encode(), &es); err != nil {
		return fail(e, "audit", err)
	}
	if *asJSON {
		writeJSON(e.stdout, es)
		return ExitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tWHO\tROLE\tACTION\tTARGET\tSTATUS\tRESULT")
	for _, a := range es {
		result := "ok"
		if a.Error != "" {
			result = a.Error
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", a.ID, a.Time.UTC().Format("2006-01-02 15:04:05"), show(a.Actor), show(dash(string(a.Role))),
			show(a.Action), show(dash(a.Target)), a.Status, show(result))
	}
	tw.Flush()
	return ExitOK
}

func runFleetLock(ctx context.Context, e *env, args []string) int {
	verb, rest := sub(args)
	var c conn
	fs := newFlagSet(e, "fleetlock", "fleetlock list | fleetlock release GROUP ID", &c)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, rest); !ok {
		return code
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "fleetlock", err)
	}
	switch {
	case verb == "list" && fs.NArg() == 0:
		var sl []protocol.FleetLockSlot
		if err := api.get(ctx, protocol.PathFleetLock, &sl); err != nil {
			return fail(e, "fleetlock list", err)
		}
		if *asJSON {
			writeJSON(e.stdout, sl)
			return ExitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tHOLDER\tTAKEN\tEXPIRES")
		for _, s := range sl {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", show(s.Group), show(s.ID), e.fmtTime(s.Taken), e.fmtTime(s.Expires))
		}
		tw.Flush()
	case verb == "release" && fs.NArg() == 2:
		if err := api.do(ctx, http.MethodDelete, protocol.PathFleetLock+"/"+esc(fs.Arg(0))+"/"+esc(fs.Arg(1)), nil, "", nil); err != nil {
			return fail(e, "fleetlock release", err)
		}
		fmt.Fprintf(e.stdout, "slot of %s in group %s released\n", show(fs.Arg(1)), show(fs.Arg(0)))
	default:
		fs.Usage()
		return ExitUsage
	}
	return ExitOK
}
