package dashboard

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/fleet"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// Rollouts reads rollouts and moves them (fleet.Service does: its
// ActRollout is what the API's rollout actions call too).
type Rollouts interface {
	// Rollouts lists every rollout, newest first, without devices.
	Rollouts(ctx context.Context) ([]protocol.Rollout, error)
	// RolloutView returns one rollout with its devices' results.
	RolloutView(ctx context.Context, id string) (protocol.Rollout, error)
	// ActRollout pauses, resumes, aborts or approves a rollout.
	ActRollout(ctx context.Context, id, action string) (protocol.Rollout, error)
}

// rolloutActions are the actions the rollout page offers, in its order.
var rolloutActions = []string{protocol.RolloutPause, protocol.RolloutResume, protocol.RolloutApprove, protocol.RolloutAbort}

// rolloutAllows says whether action applies to a rollout in state, as
// fleet.Service.ActRollout judges it.
func rolloutAllows(state protocol.RolloutState, action string) bool {
	live := state == protocol.RolloutRunning || state == protocol.RolloutPaused
	switch action {
	case protocol.RolloutPause:
		return state == protocol.RolloutRunning
	case protocol.RolloutResume:
		return state == protocol.RolloutPaused
	case protocol.RolloutAbort, protocol.RolloutApprove:
		return live
	}
	return false
}

// rolloutFacts is what both rollout pages show of a rollout: its target
// and where its current phase stands.
type rolloutFacts struct {
	protocol.Rollout
	// Target is the advisory, or how many security advisories an
	// all-security rollout took.
	Target string
	// Progress counts the devices done (applied or patched) of Total.
	Progress int
	// PhaseDevices counts the current phase's devices, PhaseFailed those
	// failing, and FailureRate is their share, as the gate judges it.
	PhaseDevices, PhaseFailed int
	FailureRate               float64
	// OverGate says the failure rate is above MaxFailureRate.
	OverGate bool
	// Unjudged says its devices could not be judged: its group was
	// deleted once it ended (a running or paused rollout's group cannot
	// be), so progress and failure rate are unknown.
	Unjudged bool
}

// PhaseNumber is the current phase from 1.
func (f *rolloutFacts) PhaseNumber() int { return f.Phase + 1 }

// ProgressShare is Progress over Total, 0 to 1.
func (f *rolloutFacts) ProgressShare() float64 {
	if f.Total == 0 {
		return 0
	}
	return float64(f.Progress) / float64(f.Total)
}

func factsOf(r protocol.Rollout) rolloutFacts {
	f := rolloutFacts{Rollout: r}
	switch len(r.Advisories) {
	case 1:
		f.Target = r.Advisories[0]
	default:
		f.Target = strconv.Itoa(len(r.Advisories)) + " security advisories"
	}
	for _, d := range r.Devices {
		if d.Result == protocol.ResultApplied || d.Result == protocol.ResultPatched {
			f.Progress++
		}
		if d.Phase == r.Phase {
			f.PhaseDevices++
			if d.Result == protocol.ResultFailed {
				f.PhaseFailed++
			}
		}
	}
	if f.PhaseDevices > 0 {
		f.FailureRate = float64(f.PhaseFailed) / float64(f.PhaseDevices)
	}
	f.OverGate = f.PhaseFailed > 0 && f.FailureRate > r.MaxFailureRate
	return f
}

// --- rollouts ---

type rolloutsView struct {
	Rollouts []rolloutFacts
	Pager    pager
	Sort     string
	Desc     bool
	State    string
	States   []protocol.RolloutState
	Columns  []column
}

func (*rolloutsView) title() (string, string) { return "Rollouts", "rollouts" }

// rolloutSorts are the rollout list's sort keys. Progress and failure rate
// are not among them: they are judged from the devices' cycles, which the
// list reads for the rows of its page only.
var rolloutSorts = map[string]struct {
	label string
	cmp   func(a, b *protocol.Rollout) int
	desc  bool
}{
	"created": {"Created", func(a, b *protocol.Rollout) int { return a.Created.Compare(b.Created) }, true},
	"updated": {"Updated", func(a, b *protocol.Rollout) int { return a.Updated.Compare(b.Updated) }, true},
	"group":   {"Group", func(a, b *protocol.Rollout) int { return strings.Compare(a.Group, b.Group) }, false},
	"state":   {"State", func(a, b *protocol.Rollout) int { return strings.Compare(string(a.State), string(b.State)) }, false},
}

var rolloutColumns = []string{"group", "state", "created", "updated"}

var rolloutStates = []protocol.RolloutState{protocol.RolloutRunning, protocol.RolloutPaused, protocol.RolloutAborted, protocol.RolloutCompleted}

func (d *Dashboard) rollouts(w http.ResponseWriter, r *http.Request) {
	ro := d.opts.Rollouts
	key := r.URL.Query().Get("sort")
	srt, ok := rolloutSorts[key]
	if !ok {
		key, srt = "created", rolloutSorts["created"]
	}
	desc := srt.desc
	switch r.URL.Query().Get("order") {
	case "asc":
		desc = false
	case "desc":
		desc = true
	}
	state := protocol.RolloutState(r.URL.Query().Get("state"))
	if state != "" && !slices.Contains(rolloutStates, state) {
		d.fail(w, r, http.StatusBadRequest, "Unknown state; choose running, paused, aborted or completed.")
		return
	}
	all, err := ro.Rollouts(r.Context())
	if err != nil {
		d.internal(w, r, err)
		return
	}
	list := all
	if state != "" {
		list = all[:0:0]
		for _, x := range all {
			if x.State == state {
				list = append(list, x)
			}
		}
	}
	slices.SortStableFunc(list, func(a, b protocol.Rollout) int {
		c := srt.cmp(&a, &b)
		if desc {
			c = -c
		}
		return cmp.Or(c, -a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	pg, lo, hi := paginate(len(list), intParam(r, "page"))
	order := "asc"
	if desc {
		order = "desc"
	}
	v := &rolloutsView{Pager: pg.linked("/rollouts", "page", "sort", key, "order", order, "state", string(state)),
		Sort: key, Desc: desc, State: string(state), States: rolloutStates}
	// Only the page's rollouts are judged (their devices' cycles read).
	for _, x := range list[lo:hi] {
		full, err := ro.RolloutView(r.Context(), x.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			f := factsOf(x)
			f.Unjudged = true
			v.Rollouts = append(v.Rollouts, f)
		case err != nil:
			d.internal(w, r, err)
			return
		default:
			f := factsOf(full)
			f.Unjudged = full.GroupDeleted
			v.Rollouts = append(v.Rollouts, f)
		}
	}
	for _, k := range rolloutColumns {
		v.Columns = append(v.Columns, column{Key: k, Label: rolloutSorts[k].label, Current: k == key, Desc: k == key && desc})
	}
	d.render(w, r, http.StatusOK, "rollouts", v)
}

// --- rollout ---

// FailuresShown is how many failing devices a rollout's page lists before
// pointing to its device list filtered to failures.
const FailuresShown = 50

// AdvisoriesShown is how many of a rollout's advisories its page links.
const AdvisoriesShown = 50

type rolloutView struct {
	rolloutFacts
	Phases     []phaseRow
	Advisories []string
	// MoreAdvisories counts those not linked.
	MoreAdvisories int
	SoakEnds       time.Time
	// Failing are the failed devices, by phase then name; MoreFailing
	// counts those not listed.
	Failing     []protocol.RolloutDevice
	MoreFailing int
	Devices     []protocol.RolloutDevice
	Pager       pager
	Result      string
	Results     []string
	// Actions are the actions the user may take now.
	Actions []string
}

// phaseRow is one phase and where its devices stand.
type phaseRow struct {
	Number                                     int
	Share                                      string
	Devices, Pending, Applied, Failed, Patched int
	Current, Past                              bool
}

func (v *rolloutView) title() (string, string) { return "Rollout " + v.ID, "rollouts" }

func (d *Dashboard) rollout(w http.ResponseWriter, r *http.Request) {
	id, ok := textParam(r, "id")
	if !ok || id == "" {
		d.fail(w, r, http.StatusBadRequest, "Which rollout? The id is missing or too long.")
		return
	}
	results := []string{protocol.ResultFailed, protocol.ResultPending, protocol.ResultApplied, protocol.ResultPatched}
	result := r.URL.Query().Get("result")
	if result != "" && !slices.Contains(results, result) {
		d.fail(w, r, http.StatusBadRequest, "Unknown result; choose failed, pending, applied or patched.")
		return
	}
	ro, err := d.opts.Rollouts.RolloutView(r.Context(), id)
	unjudged := false
	if errors.Is(err, store.ErrNotFound) {
		// The rollout, or only its deleted group, is gone.
		ro, err = d.findRollout(r.Context(), id)
		unjudged = err == nil
	}
	if errors.Is(err, store.ErrNotFound) {
		d.fail(w, r, http.StatusNotFound, "There is no rollout by that id.")
		return
	}
	if err != nil {
		d.internal(w, r, err)
		return
	}
	v := &rolloutView{rolloutFacts: factsOf(ro), Result: result, Results: results, Advisories: ro.Advisories}
	v.Unjudged = unjudged || ro.GroupDeleted
	if n := len(v.Advisories); n > AdvisoriesShown {
		v.Advisories, v.MoreAdvisories = v.Advisories[:AdvisoriesShown], n-AdvisoriesShown
	}
	if soak, err := time.ParseDuration(ro.Soak); err == nil {
		v.SoakEnds = ro.PhaseStarted.Add(soak)
	}
	for i, share := range ro.Phases {
		v.Phases = append(v.Phases, phaseRow{Number: i + 1, Share: share, Current: i == ro.Phase, Past: i < ro.Phase})
	}
	var list []protocol.RolloutDevice
	for _, dv := range ro.Devices {
		if dv.Phase >= 0 && dv.Phase < len(v.Phases) {
			p := &v.Phases[dv.Phase]
			p.Devices++
			switch dv.Result {
			case protocol.ResultPending:
				p.Pending++
			case protocol.ResultApplied:
				p.Applied++
			case protocol.ResultFailed:
				p.Failed++
			case protocol.ResultPatched:
				p.Patched++
			}
		}
		if dv.Result == protocol.ResultFailed {
			if len(v.Failing) < FailuresShown {
				v.Failing = append(v.Failing, dv)
			} else {
				v.MoreFailing++
			}
		}
		if result == "" || dv.Result == result {
			list = append(list, dv)
		}
	}
	pg, lo, hi := paginate(len(list), intParam(r, "page"))
	v.Devices, v.Pager = list[lo:hi], pg.linked("/rollout", "page", "id", ro.ID, "result", result)
	if userFrom(r.Context()).CanOperate() {
		for _, a := range rolloutActions {
			if rolloutAllows(ro.State, a) {
				v.Actions = append(v.Actions, a)
			}
		}
	}
	d.render(w, r, http.StatusOK, "rollout", v)
}

// findRollout returns rollout id from the list of every rollout, without
// its devices, or store.ErrNotFound.
func (d *Dashboard) findRollout(ctx context.Context, id string) (protocol.Rollout, error) {
	all, err := d.opts.Rollouts.Rollouts(ctx)
	if err != nil {
		return protocol.Rollout{}, err
	}
	for _, x := range all {
		if x.ID == id {
			return x, nil
		}
	}
	return protocol.Rollout{}, store.ErrNotFound
}

// actRollout serves POST /rollout/ACTION: the same fleet method the API's
// POST /api/v1/rollout/ID/ACTION calls, recorded in the audit log under the
// same action name.
func (d *Dashboard) actRollout(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PostFormValue("id")
		if id == "" || len(id) > maxQuery {
			d.fail(w, r, http.StatusBadRequest, "Which rollout? The id is missing or too long.")
			return
		}
		if (action == protocol.RolloutAbort || action == protocol.RolloutApprove) && r.PostFormValue("confirm") != "yes" {
			d.fail(w, r, http.StatusBadRequest, "Tick the box to confirm: "+action+" cannot be undone.")
			return
		}
		_, err := d.opts.Rollouts.ActRollout(r.Context(), id, action)
		u := userFrom(r.Context())
		status := http.StatusOK
		switch {
		case errors.Is(err, store.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, fleet.ErrBadRequest):
			status = http.StatusConflict
		case err != nil:
			status = http.StatusInternalServerError
		}
		if d.opts.Audit != nil {
			e := protocol.AuditEntry{ActorID: u.ID, Actor: u.Name, Role: u.Role, Action: "rollout." + action, Target: id,
				Detail: "dashboard", Status: status}
			switch status {
			case http.StatusOK:
			case http.StatusInternalServerError:
				e.Error = "internal error"
			default:
				e.Error = err.Error()
			}
			d.opts.Audit.Audit(r.Context(), e)
		}
		switch status {
		case http.StatusOK:
		case http.StatusNotFound:
			d.fail(w, r, status, "There is no rollout by that id.")
			return
		case http.StatusConflict:
			// The fleet's own words: "cannot pause a rollout that is
			// paused", or that it moved meanwhile.
			d.fail(w, r, status, "Not done: "+strings.TrimPrefix(err.Error(), fleet.ErrBadRequest.Error()+": ")+". Reload the page to see where it stands.")
			return
		default:
			d.internal(w, r, err)
			return
		}
		d.log.Info("rollout moved from the dashboard", "rollout", id, "action", action, "by", u.Name)
		http.Redirect(w, r, "/rollout?"+queryOf("id", id), http.StatusSeeOther)
	}
}
