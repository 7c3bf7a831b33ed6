package dashboard

import (
	"cmp"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// ChartDays is how many days the overview's exposure chart covers.
const ChartDays = 90

// maxQuery bounds a text query parameter (a name filter, a CVE id).
const maxQuery = 128

// pager is one page of a list.
type pager struct {
	Page, Pages, Total int
	// From and To number the rows shown, from 1.
	From, To int
	// Prev and Next link the pages around, "" at the ends.
	Prev, Next string
}

// linked returns p with links to its neighbours: path with the key, value
// pairs kv and the page number under key pageKey.
func (p pager) linked(path, pageKey string, kv ...any) pager {
	if p.Page > 1 {
		p.Prev = link(path, append(kv, pageKey, p.Page-1)...)
	}
	if p.Page < p.Pages {
		p.Next = link(path, append(kv, pageKey, p.Page+1)...)
	}
	return p
}

// paginate returns the bounds of page (from 1) of n rows.
func paginate(n, page int) (pager, int, int) {
	pages := max(1, (n+PageSize-1)/PageSize)
	page = min(max(page, 1), pages)
	lo := min((page-1)*PageSize, n)
	hi := min(lo+PageSize, n)
	return pager{Page: page, Pages: pages, Total: n, From: lo + 1, To: hi}, lo, hi
}

// intParam reads a positive integer query parameter; 0 when absent or
// not one.
func intParam(r *http.Request, name string) int {
	n, err := strconv.Atoi(r.URL.Query().Get(name))
	if err != nil || n < 0 || n > 1<<30 {
		return 0
	}
	return n
}

// textParam reads a query parameter, trimmed; ok is false past maxQuery.
func textParam(r *http.Request, name string) (string, bool) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	return v, len(v) <= maxQuery
}

// --- overview ---

type overviewView struct {
	Summary   protocol.Summary
	Severity  []severityCount
	Chart     *chart
	Recorded  int
	Revoked   int
	NeverSeen int
}

type severityCount struct {
	Name  string
	Count int
	// Width is the bar's width in percent of the largest count.
	Width int
}

func (*overviewView) title() (string, string) { return "Fleet overview", "overview" }

// severityNames are the severities, most severe first.
var severityNames = []string{"Critical", "Important", "Moderate", "Low", "None"}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sum, err := d.st.Summary(ctx)
	if err != nil {
		d.internal(w, r, err)
		return
	}
	v := &overviewView{Summary: sum}
	most := 0
	for _, s := range severityNames {
		most = max(most, sum.ExposedBySeverity[s])
	}
	for _, s := range severityNames {
		n := sum.ExposedBySeverity[s]
		width := 0
		if most > 0 {
			width = n * 100 / most
		}
		v.Severity = append(v.Severity, severityCount{Name: s, Count: n, Width: width})
	}
	now := d.opts.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	var days []store.ExposureDay
	if h, ok := d.st.(store.ExposureHistory); ok {
		days, err = h.ExposureDays(ctx, today.AddDate(0, 0, -ChartDays+1))
		if err != nil {
			d.internal(w, r, err)
			return
		}
		v.Recorded = len(days)
	}
	// Today's point is always the live one.
	if len(days) > 0 && days[len(days)-1].Day.Equal(today) {
		days = days[:len(days)-1]
	}
	days = append(days, store.ExposureDay{Day: today, Devices: sum.Devices, FullyPatched: sum.FullyPatched, ExposedBySeverity: sum.ExposedBySeverity})
	v.Chart = newChart(days)
	d.render(w, r, http.StatusOK, "overview", v)
}

// --- devices ---

type devicesView struct {
	Devices []deviceRow
	Pager   pager
	Sort    string
	Desc    bool
	Filter  string
	Exposed string
	Columns []column
	Query   string
}

type deviceRow struct {
	protocol.DeviceSummary
	Labels string
}

// column is a sortable column header.
type column struct {
	Key, Label string
	// Current marks the column the list is sorted by; Desc its order.
	Current, Desc bool
}

func (*devicesView) title() (string, string) { return "Devices", "devices" }

// deviceSorts are the device list's sort keys, each with its comparison
// (ascending) and whether it sorts descending by default.
var deviceSorts = map[string]struct {
	label string
	cmp   func(a, b *protocol.DeviceSummary) int
	desc  bool
}{
	"name":      {"Name", func(a, b *protocol.DeviceSummary) int { return strings.Compare(a.Name, b.Name) }, false},
	"last_seen": {"Last report", func(a, b *protocol.DeviceSummary) int { return a.LastSeen.Compare(b.LastSeen) }, true},
	"severity": {"Worst", func(a, b *protocol.DeviceSummary) int {
		return cmp.Compare(sevRank(a.WorstSeverity), sevRank(b.WorstSeverity))
	}, true},
	"affected": {"Advisories", func(a, b *protocol.DeviceSummary) int { return cmp.Compare(a.Affected, b.Affected) }, true},
	"packages": {"Packages", func(a, b *protocol.DeviceSummary) int { return cmp.Compare(a.Packages, b.Packages) }, true},
	"enrolled": {"Enrolled", func(a, b *protocol.DeviceSummary) int { return a.Enrolled.Compare(b.Enrolled) }, true},
}

var deviceColumns = []string{"name", "last_seen", "severity", "affected", "packages", "enrolled"}

// sevRank orders severity names; -1 for none.
func sevRank(s string) int {
	if s == "" {
		return -1
	}
	v, err := advisory.ParseSeverity(s)
	if err != nil {
		return -1
	}
	return int(v)
}

func (d *Dashboard) devices(w http.ResponseWriter, r *http.Request) {
	filter, ok1 := textParam(r, "q")
	exposed, ok2 := textParam(r, "exposed_to")
	if !ok1 || !ok2 {
		d.fail(w, r, http.StatusBadRequest, "A search is at most 128 characters.")
		return
	}
	key := r.URL.Query().Get("sort")
	srt, ok := deviceSorts[key]
	if !ok {
		key, srt = "name", deviceSorts["name"]
	}
	desc := srt.desc
	switch r.URL.Query().Get("order") {
	case "asc":
		desc = false
	case "desc":
		desc = true
	}
	f := store.DeviceFilter{}
	if exposed != "" {
		id, ok := cveID(exposed)
		if !ok {
			d.fail(w, r, http.StatusBadRequest, "exposed_to is not a CVE id (CVE-YYYY-NNNN).")
			return
		}
		f.ExposedTo, exposed = id, id
	}
	var rows []protocol.DeviceSummary
	var pg pager
	if dd, ok := d.st.(store.DeviceDetails); ok {
		// Sorted and paged by the database: a page reads PageSize rows.
		page := max(intParam(r, "page"), 1)
		q := store.DeviceQuery{Filter: f, NameContains: filter, Sort: key, Desc: desc, Offset: (page - 1) * PageSize, Limit: PageSize}
		var total int
		var err error
		rows, total, err = dd.DevicePage(r.Context(), q)
		if err == nil && len(rows) == 0 && total > 0 {
			// Past the last page: show the last.
			q.Offset = (total - 1) / PageSize * PageSize
			rows, total, err = dd.DevicePage(r.Context(), q)
		}
		if err != nil {
			d.internal(w, r, err)
			return
		}
		pg, _, _ = paginate(total, q.Offset/PageSize+1)
	} else {
		all, err := d.st.Devices(r.Context(), f)
		if err != nil {
			d.internal(w, r, err)
			return
		}
		shown := all
		if filter != "" {
			shown = all[:0:0]
			for _, dv := range all {
				if strings.Contains(dv.Name, filter) {
					shown = append(shown, dv)
				}
			}
		}
		byName := deviceSorts["name"].cmp
		slices.SortStableFunc(shown, func(a, b protocol.DeviceSummary) int {
			c := srt.cmp(&a, &b)
			if desc {
				c = -c
			}
			if c == 0 {
				c = byName(&a, &b)
			}
			return c
		})
		var lo, hi int
		pg, lo, hi = paginate(len(shown), intParam(r, "page"))
		rows = shown[lo:hi]
	}
	order := "asc"
	if desc {
		order = "desc"
	}
	pg = pg.linked("/devices", "page", "sort", key, "order", order, "q", filter, "exposed_to", exposed)
	v := &devicesView{Pager: pg, Sort: key, Desc: desc, Filter: filter, Exposed: exposed}
	for _, dv := range rows {
		v.Devices = append(v.Devices, deviceRow{DeviceSummary: dv, Labels: labelText(dv.Labels)})
	}
	for _, k := range deviceColumns {
		v.Columns = append(v.Columns, column{Key: k, Label: deviceSorts[k].label, Current: k == key, Desc: k == key && desc})
	}
	d.render(w, r, http.StatusOK, "devices", v)
}

// labelText writes labels as "k=v, k=v", sorted.
func labelText(l map[string]string) string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// --- device ---

// CyclesShown is how many of a device's last update cycles its page lists.
const CyclesShown = 20

type deviceView struct {
	Device     protocol.Device
	Labels     []string
	Pending    []protocol.PlanAdvisory
	Packages   []protocol.Package
	PkgPager   pager
	Details    bool
	Cycles     []protocol.CycleResult
	CanRevoke  bool
	Advisories []protocol.DeviceAdvisory
}

func (v *deviceView) title() (string, string) { return "Device " + v.Device.Name, "devices" }

func (d *Dashboard) device(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name, ok := textParam(r, "name")
	if !ok || name == "" {
		d.fail(w, r, http.StatusBadRequest, "Which device? The name is missing or too long.")
		return
	}
	dev, err := d.st.Device(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		d.fail(w, r, http.StatusNotFound, "There is no device by that name.")
		return
	}
	if err != nil {
		d.internal(w, r, err)
		return
	}
	v := &deviceView{Device: dev, Advisories: dev.Advisories}
	for k, val := range dev.Labels {
		v.Labels = append(v.Labels, k+"="+val)
	}
	slices.Sort(v.Labels)
	v.Pending, err = d.st.DevicePlan(ctx, dev.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		d.internal(w, r, err)
		return
	}
	if dd, ok := d.st.(store.DeviceDetails); ok {
		v.Details = true
		pkgs, err := dd.DevicePackages(ctx, dev.ID)
		if err != nil {
			d.internal(w, r, err)
			return
		}
		pg, lo, hi := paginate(len(pkgs), intParam(r, "pkgpage"))
		v.Packages, v.PkgPager = pkgs[lo:hi], pg.linked("/device", "pkgpage", "name", dev.Name)
		if v.Cycles, err = dd.DeviceCycles(ctx, dev.ID, CyclesShown); err != nil {
			d.internal(w, r, err)
			return
		}
	}
	v.CanRevoke = d.opts.Revoker != nil && dev.Revoked == nil && userFrom(ctx).CanOperate()
	d.render(w, r, http.StatusOK, "device", v)
}

func (d *Dashboard) revoke(w http.ResponseWriter, r *http.Request) {
	if d.opts.Revoker == nil {
		d.fail(w, r, http.StatusNotFound, "This server does not revoke devices from the dashboard.")
		return
	}
	name := r.PostFormValue("name")
	if name == "" || len(name) > maxQuery {
		d.fail(w, r, http.StatusBadRequest, "Which device? The name is missing or too long.")
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		d.fail(w, r, http.StatusBadRequest, "Tick the box to confirm the revocation.")
		return
	}
	_, err := d.opts.Revoker.RevokeDevice(r.Context(), name)
	u := userFrom(r.Context())
	if d.opts.Audit != nil {
		e := protocol.AuditEntry{ActorID: u.ID, Actor: u.Name, Role: u.Role, Action: "device.revoke", Target: name,
			Detail: "dashboard", Status: http.StatusOK}
		switch {
		case errors.Is(err, store.ErrNotFound):
			e.Status, e.Error = http.StatusNotFound, err.Error()
		case err != nil:
			e.Status, e.Error = http.StatusInternalServerError, "internal error"
		}
		d.opts.Audit.Audit(r.Context(), e)
	}
	if errors.Is(err, store.ErrNotFound) {
		d.fail(w, r, http.StatusNotFound, "There is no device by that name.")
		return
	}
	if err != nil {
		d.internal(w, r, err)
		return
	}
	d.log.Info("device revoked from the dashboard", "device", name, "by", u.Name)
	http.Redirect(w, r, "/device?"+queryOf("name", name), http.StatusSeeOther)
}

// --- CVE search ---

// CVEPageSize is how many devices a page of a CVE's answer covers.
const CVEPageSize = 100

var cvePattern = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,12}$`)

// cveID returns s as a CVE id in upper case, if it is one.
func cveID(s string) (string, bool) {
	id := strings.ToUpper(strings.TrimSpace(s))
	return id, cvePattern.MatchString(id)
}

type cveView struct {
	ID      string
	Asked   bool
	Exposed []protocol.CVEExposure
	Patched []protocol.CVEPatched
	// Devices counts the distinct devices exposed on this page.
	Devices int
	After   string
	Next    string
}

func (*cveView) title() (string, string) { return "CVE search", "cve" }

func (d *Dashboard) cve(w http.ResponseWriter, r *http.Request) {
	q, ok := textParam(r, "id")
	after, ok2 := textParam(r, "after")
	if !ok || !ok2 {
		d.fail(w, r, http.StatusBadRequest, "A CVE id is at most 128 characters.")
		return
	}
	v := &cveView{ID: q}
	if q == "" {
		d.render(w, r, http.StatusOK, "cve", v)
		return
	}
	id, valid := cveID(q)
	if !valid {
		d.render(w, r, http.StatusBadRequest, "error", &errorView{Status: http.StatusBadRequest, Message: "That is not a CVE id; they read CVE-2023-2650."})
		return
	}
	resp, err := d.st.CVEPage(r.Context(), id, after, CVEPageSize)
	if err != nil {
		d.internal(w, r, err)
		return
	}
	v.ID, v.Asked, v.Exposed, v.Patched, v.After, v.Next = id, true, resp.Exposed, resp.Patched, after, resp.Next
	seen := ""
	for _, e := range resp.Exposed {
		if e.Device != seen {
			v.Devices++
			seen = e.Device
		}
	}
	d.render(w, r, http.StatusOK, "cve", v)
}

// --- advisories ---

type advisoriesView struct {
	Advisories []protocol.AdvisorySummary
	Pager      pager
	Severity   string
	Severities []string
	Affected   bool
}

func (*advisoriesView) title() (string, string) { return "Advisories", "advisories" }

func (d *Dashboard) advisories(w http.ResponseWriter, r *http.Request) {
	sevName := r.URL.Query().Get("severity")
	sev, err := advisory.ParseSeverity(sevName)
	if err != nil || len(sevName) > maxQuery {
		d.fail(w, r, http.StatusBadRequest, "Unknown severity; choose Critical, Important, Moderate, Low or None.")
		return
	}
	affected := r.URL.Query().Get("affected") == "1"
	all, err := d.st.Advisories(r.Context(), sev)
	if err != nil {
		d.internal(w, r, err)
		return
	}
	list := all
	if affected {
		list = all[:0:0]
		for _, a := range all {
			if a.Affected+a.Failed > 0 {
				list = append(list, a)
			}
		}
	}
	pg, lo, hi := paginate(len(list), intParam(r, "page"))
	v := &advisoriesView{Severities: severityNames, Affected: affected}
	if sevName != "" {
		v.Severity = sev.String()
	}
	v.Advisories, v.Pager = list[lo:hi], pg.linked("/advisories", "page", "severity", v.Severity, "affected", affected)
	d.render(w, r, http.StatusOK, "advisories", v)
}

// --- advisory ---

type advisoryView struct {
	Advisory protocol.AdvisoryStatus
	Devices  []protocol.AdvisoryDevice
	Pager    pager
	Status   string
	Statuses []protocol.Status
}

func (v *advisoryView) title() (string, string) { return "Advisory " + v.Advisory.ID, "advisories" }

func (d *Dashboard) advisory(w http.ResponseWriter, r *http.Request) {
	id, ok := textParam(r, "id")
	if !ok || id == "" {
		d.fail(w, r, http.StatusBadRequest, "Which advisory? The id is missing or too long.")
		return
	}
	status := protocol.Status(r.URL.Query().Get("status"))
	statuses := []protocol.Status{protocol.StatusAffected, protocol.StatusFailed, protocol.StatusPendingReboot, protocol.StatusPatched}
	if status != "" && !slices.Contains(statuses, status) {
		d.fail(w, r, http.StatusBadRequest, "Unknown status; choose affected, failed, pending-reboot or patched.")
		return
	}
	a, err := d.st.Advisory(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		d.fail(w, r, http.StatusNotFound, "There is no advisory by that id.")
		return
	}
	if err != nil {
		d.internal(w, r, err)
		return
	}
	list := a.Devices
	if status != "" {
		list = nil
		for _, dv := range a.Devices {
			if dv.Status == status {
				list = append(list, dv)
			}
		}
	}
	pg, lo, hi := paginate(len(list), intParam(r, "page"))
	pg = pg.linked("/advisory", "page", "id", a.ID, "status", string(status))
	v := &advisoryView{Advisory: a, Devices: list[lo:hi], Pager: pg, Status: string(status), Statuses: statuses}
	d.render(w, r, http.StatusOK, "advisory", v)
}
