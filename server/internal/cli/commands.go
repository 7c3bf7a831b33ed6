package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/pkg/durable"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

func init() {
	register("login", "save the server URL and token for later commands", runLogin)
	register("enroll-token", "create, list or revoke enrolment tokens for devices", runEnrollToken)
	register("import", "import advisories from files, folders or repository URLs", runImport)
	register("devices", "list devices", runDevices)
	register("device", "show one device and the advisories that apply to it; revoke or delete it", runDevice)
	register("cve", "list the devices exposed to a CVE and those patched", runCVE)
	register("advisory", "show an advisory's status across the fleet", runAdvisory)
	register("advisories", "list advisories with fleet counts", runAdvisories)
	register("summary", "the fleet at a glance", runSummary)
	register("token", "create, list or revoke admin tokens", runToken)
	register("bundle", "write a signed air-gap bundle (plan and repository) for an agent's spool from RPM files and an updateinfo", runBundle)
}

func runLogin(ctx context.Context, e *env, args []string) int {
	var c conn
	fs := newFlagSet(e, "login", "login --server URL --token T [--ca FILE]", &c)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if c.server == "" || c.token == "" || fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "login", err)
	}
	// Check the pair works before saving it.
	if err := api.get(ctx, protocol.PathSummary, &protocol.Summary{}); err != nil {
		return fail(e, "login", err)
	}
	p, err := loginPath(e)
	if err != nil {
		return fail(e, "login", err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fail(e, "login", err)
	}
	ca := c.ca
	if ca != "" {
		if ca, err = filepath.Abs(ca); err != nil {
			return fail(e, "login", err)
		}
	}
	b, _ := json.MarshalIndent(login{Server: c.server, Token: c.token, CA: ca}, "", "  ")
	if err := durable.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return fail(e, "login", err)
	}
	fmt.Fprintf(e.stderr, "login saved to %s\n", p)
	return ExitOK
}

func runImport(ctx context.Context, e *env, args []string) int {
	var c conn
	fs := newFlagSet(e, "import", "import SRC... (OSV files, JSON lines, updateinfo.xml, folders of OSV files, repository URLs)", &c)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return ExitUsage
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "import", err)
	}
	var total protocol.ImportResponse
	var urls []string
	for _, src := range fs.Args() {
		if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
			urls = append(urls, src)
			continue
		}
		files, err := sourceFiles(src)
		if err != nil {
			return fail(e, "import", err)
		}
		for _, f := range files {
			resp, err := uploadFile(ctx, api, f, e.stderr)
			if err != nil {
				return fail(e, "import", fmt.Errorf("%s: %w", f, err))
			}
			fmt.Fprintf(e.stderr, "%s: %d advisories, %d new or changed\n", f, resp.Advisories, resp.Changed)
			total.Advisories += resp.Advisories
			total.Changed += resp.Changed
		}
	}
	if len(urls) > 0 {
		fmt.Fprintf(e.stderr, "asking the server to import %s\n", strings.Join(urls, ", "))
		var resp protocol.ImportResponse
		if err := api.do(ctx, http.MethodPost, protocol.PathImport, protocol.ImportRequest{URLs: urls}, "", &resp); err != nil {
			return fail(e, "import", err)
		}
		total.Advisories += resp.Advisories
		total.Changed += resp.Changed
	}
	if *asJSON {
		writeJSON(e.stdout, total)
	} else {
		fmt.Fprintf(e.stdout, "imported %d advisories, %d new or changed\n", total.Advisories, total.Changed)
	}
	return ExitOK
}

// sourceFiles lists what to upload for src: the file itself, or a folder's
// regular files (a folder of OSV files), sorted.
func sourceFiles(src string) ([]string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{src}, nil
	}
	var files []string
	err = filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("%s: no files", src)
	}
	return files, err
}

// uploadFile sends one file as the import body, showing progress on w.
func uploadFile(ctx context.Context, api *apiClient, path string, w io.Writer) (protocol.ImportResponse, error) {
	var resp protocol.ImportResponse
	f, err := os.Open(path)
	if err != nil {
		return resp, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return resp, err
	}
	pr := &progress{r: f, total: st.Size(), w: w, name: filepath.Base(path), tty: isTerminal(w)}
	err = api.do(ctx, http.MethodPost, protocol.PathImport, pr, "application/octet-stream", &resp)
	pr.done()
	return resp, err
}

// progress reports how much of an upload was sent, every 10%, on a
// terminal; elsewhere (a log, a pipe) it says only when the upload is done.
type progress struct {
	r           io.Reader
	total, sent int64
	shown       int64
	w           io.Writer
	name        string
	tty         bool
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.sent += int64(n)
	if p.total > 0 && p.tty {
		if pct := p.sent * 100 / p.total; pct >= p.shown+10 {
			p.shown = pct - pct%10
			fmt.Fprintf(p.w, "\ruploading %s: %3d%% of %d kB", p.name, p.shown, p.total/1024)
		}
	}
	return n, err
}

func (p *progress) done() {
	switch {
	case p.shown > 0:
		fmt.Fprintf(p.w, "\ruploading %s: done, the server is reading it\n", p.name)
	case !p.tty:
		fmt.Fprintf(p.w, "uploaded %s (%d kB), the server is reading it\n", p.name, p.sent/1024)
	}
}

func runDevices(ctx context.Context, e *env, args []string) int {
	var c conn
	fs := newFlagSet(e, "devices", "devices [--label k=v ...] [--group NAME] [--exposed-to CVE] [--json]", &c)
	labels := labelFlag{}
	fs.Var(labels, "label", "only devices with this label, key=value (repeatable)")
	exposed := fs.String("exposed-to", "", "only devices exposed to this CVE")
	group := fs.String("group", "", "only the devices of this group")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "devices", err)
	}
	q := url.Values{}
	for k, v := range labels {
		q.Add("label", k+"="+v)
	}
	if *exposed != "" {
		q.Set("exposed_to", *exposed)
	}
	if *group != "" {
		q.Set(protocol.QueryGroup, *group)
	}
	path := protocol.PathDevices
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var ds []protocol.DeviceSummary
	if err := api.get(ctx, path, &ds); err != nil {
		return fail(e, "devices", err)
	}
	if *asJSON {
		writeJSON(e.stdout, ds)
		return ExitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOS\tARCH\tPACKAGES\tEXPOSED\tWORST\tLAST SEEN\tSTATE")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%d\t%d\t%s\t%s\t%s\n", show(d.Name), show(d.Info.OSID), show(d.Info.OSVersionID), show(d.Info.Arch),
			d.Packages, d.Affected, show(dash(d.WorstSeverity)), e.fmtTime(d.LastSeen), state(d))
	}
	tw.Flush()
	return ExitOK
}

// getNamed runs the shape shared by device, cve and advisory: one name as
// the argument, a GET of path+name into out, and out printed as JSON with
// --json or by show otherwise.
func getNamed(ctx context.Context, e *env, args []string, cmd, usage, path string, out any, show func()) int {
	var c conn
	fs := newFlagSet(e, cmd, usage, &c)
	asJSON := fs.Bool("json", false, "print JSON")
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
	if err := api.get(ctx, path+esc(fs.Arg(0)), out); err != nil {
		return fail(e, cmd, err)
	}
	if *asJSON {
		writeJSON(e.stdout, out)
		return ExitOK
	}
	show()
	return ExitOK
}

func runDevice(ctx context.Context, e *env, args []string) int {
	if sub, name, ok := deviceAction(args); ok {
		return runDeviceAction(ctx, e, sub, name, args)
	}
	var d protocol.Device
	code := getNamed(ctx, e, args, "device", "device NAME [--json] | device revoke NAME | device delete NAME", protocol.PathDevice, &d, func() {
		fmt.Fprintf(e.stdout, "%s (id %s)\n  os %s %s, %s, kernel %s, agent %s, host name %s\n  enrolled %s, last seen %s, %d packages\n",
			show(d.Name), show(d.ID), show(d.Info.OSID), show(d.Info.OSVersionID), show(d.Info.Arch), show(dash(d.Info.Kernel)),
			show(dash(d.Info.AgentVersion)), show(dash(d.Info.Hostname)), e.fmtTime(d.Enrolled), e.fmtTime(d.LastSeen), d.Packages)
		if len(d.Labels) > 0 {
			fmt.Fprintf(e.stdout, "  labels %s\n", show(labelFlag(d.Labels).String()))
		}
		if d.Revoked != nil {
			fmt.Fprintf(e.stdout, "  revoked %s: its credential no longer works\n", e.fmtTime(*d.Revoked))
		}
		if len(d.Advisories) == 0 {
			fmt.Fprintln(e.stdout, "  no advisory applies")
			return
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nADVISORY\tSEVERITY\tSTATUS\tSINCE")
		for _, a := range d.Advisories {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", show(a.Advisory), show(a.Severity), show(string(a.Status)), e.fmtTime(a.Since))
		}
		tw.Flush()
	})
	if code == ExitOK && pendingAdvisories(d) {
		return ExitExposed
	}
	return code
}

// pendingAdvisories says whether a device lacks the fix of an advisory
// that applies to it (affected, or its update failed).
func pendingAdvisories(d protocol.Device) bool {
	for _, a := range d.Advisories {
		if a.Status == protocol.StatusAffected || a.Status == protocol.StatusFailed {
			return true
		}
	}
	return false
}

func runCVE(ctx context.Context, e *env, args []string) int {
	var r protocol.CVEResponse
	code := getNamedSel(ctx, e, args, "cve", "cve CVE-ID [--label k=v ...] [--group NAME] [--json]", protocol.PathCVE, &r, func() {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s: %d exposed, %d patched\n", show(r.CVE), countDevices(r.Exposed), len(r.Patched))
		if len(r.Exposed) > 0 {
			fmt.Fprintln(tw, "\nEXPOSED\tADVISORY\tPACKAGE\tINSTALLED\tFIXED IN")
			for _, x := range r.Exposed {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", show(x.Device), show(x.Advisory), show(x.Package), show(x.Installed), show(x.Fixed))
			}
		}
		if len(r.Patched) > 0 {
			fmt.Fprintln(tw, "\nPATCHED\tADVISORY")
			for _, p := range r.Patched {
				fmt.Fprintf(tw, "%s\t%s\n", show(p.Device), show(p.Advisory))
			}
		}
		tw.Flush()
	})
	if code == ExitOK && len(r.Exposed) > 0 {
		return ExitExposed
	}
	return code
}

func countDevices(xs []protocol.CVEExposure) int {
	seen := map[string]bool{}
	for _, x := range xs {
		seen[x.Device] = true
	}
	return len(seen)
}

func runAdvisory(ctx context.Context, e *env, args []string) int {
	var a protocol.AdvisoryStatus
	return getNamed(ctx, e, args, "advisory", "advisory ID [--json]", protocol.PathAdvisory, &a, func() {
		fmt.Fprintf(e.stdout, "%s (%s, %s, issued %s): %s\n  CVEs: %s\n  affected %d, patched %d, pending reboot %d, failed %d\n",
			show(a.ID), show(a.Type), show(a.Severity), e.fmtTime(a.Issued), show(a.Title), show(dash(strings.Join(a.CVEs, " "))), a.Affected, a.Patched, a.PendingReboot, a.Failed)
		showReleases(e, a.Releases)
		if len(a.Devices) > 0 {
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\nDEVICE\tSTATUS")
			for _, d := range a.Devices {
				fmt.Fprintf(tw, "%s\t%s\n", show(d.Device), show(string(d.Status)))
			}
			tw.Flush()
		}
	})
}

func runAdvisories(ctx context.Context, e *env, args []string) int {
	var c conn
	fs := newFlagSet(e, "advisories", "advisories [--severity LEVEL] [--label k=v ...] [--group NAME] [--json]", &c)
	sel := addSelection(fs)
	sev := fs.String("severity", "", "only advisories at least this severe (Low, Moderate, Important, Critical)")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "advisories", err)
	}
	path := protocol.PathAdvisories
	if *sev != "" {
		path += "?severity=" + url.QueryEscape(*sev)
	}
	path = sel.apply(path)
	var as []protocol.AdvisorySummary
	if err := api.get(ctx, path, &as); err != nil {
		return fail(e, "advisories", err)
	}
	if *asJSON {
		writeJSON(e.stdout, as)
		return ExitOK
	}
	// The release column shows when an id names advisories of several
	// releases (ALSA-2024:4568 for AlmaLinux 8 and 9), so the rows say
	// which releases the counts cover.
	releases := slices.ContainsFunc(as, func(a protocol.AdvisorySummary) bool { return len(a.Ecosystems) > 1 })
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if releases {
		fmt.Fprintln(tw, "ADVISORY\tRELEASE\tSEVERITY\tISSUED\tAFFECTED\tPATCHED\tPENDING REBOOT\tFAILED\tTITLE")
	} else {
		fmt.Fprintln(tw, "ADVISORY\tSEVERITY\tISSUED\tAFFECTED\tPATCHED\tPENDING REBOOT\tFAILED\tTITLE")
	}
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t", show(a.ID))
		if releases {
			rel := make([]string, len(a.Ecosystems))
			for i, r := range a.Ecosystems {
				rel[i] = dash(r)
			}
			fmt.Fprintf(tw, "%s\t", show(dash(strings.Join(rel, ","))))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", show(a.Severity), e.fmtTime(a.Issued), a.Affected, a.Patched, a.PendingReboot, a.Failed, show(a.Title))
	}
	tw.Flush()
	return ExitOK
}

func runSummary(ctx context.Context, e *env, args []string) int {
	var c conn
	fs := newFlagSet(e, "summary", "summary [--label k=v ...] [--group NAME] [--json]", &c)
	sel := addSelection(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "summary", err)
	}
	var s protocol.Summary
	if err := api.get(ctx, sel.apply(protocol.PathSummary), &s); err != nil {
		return fail(e, "summary", err)
	}
	if *asJSON {
		writeJSON(e.stdout, s)
		return ExitOK
	}
	fmt.Fprintf(e.stdout, "devices: %d, fully patched: %d (%.0f%%)\n", s.Devices, s.FullyPatched, 100*s.FullyPatchedShare)
	for _, sev := range []string{"Critical", "Important", "Moderate", "Low", "None"} {
		if n := s.ExposedBySeverity[sev]; n > 0 {
			fmt.Fprintf(e.stdout, "  worst exposure %s: %d devices\n", show(sev), n)
		}
	}
	if o := s.OldestUnpatchedCritical; o != nil {
		fmt.Fprintf(e.stdout, "oldest unpatched critical: %s (issued %s, %d devices affected)\n", show(o.ID), e.fmtTime(o.Issued), o.Affected)
	}
	return ExitOK
}

func runToken(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, "Usage: rpmfleet token create --name NAME --role read-only|operator|admin | list | revoke ID")
		return ExitUsage
	}
	sub, args := args[0], args[1:]
	var c conn
	fs := newFlagSet(e, "token "+sub, "token create --name NAME --role ROLE | token list [--json] | token revoke ID", &c)
	name := fs.String("name", "", "who holds the token (create)")
	role := fs.String("role", string(protocol.RoleReadOnly), "read-only, operator or admin (create)")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	api, err := c.client(e)
	if err != nil {
		return fail(e, "token", err)
	}
	switch sub {
	case "create":
		if *name == "" || fs.NArg() != 0 {
			fs.Usage()
			return ExitUsage
		}
		var resp protocol.TokenCreateResponse
		if err := api.do(ctx, http.MethodPost, protocol.PathTokens, protocol.TokenCreateRequest{Name: *name, Role: protocol.Role(*role)}, "", &resp); err != nil {
			return fail(e, "token", err)
		}
		if *asJSON {
			writeJSON(e.stdout, resp)
			return ExitOK
		}
		fmt.Fprintln(e.stdout, resp.Token)
		fmt.Fprintf(e.stderr, "token %s (%s, %s) created\n", resp.ID, *name, *role)
	case "list":
		var ts []protocol.TokenInfo
		if err := api.get(ctx, protocol.PathTokens, &ts); err != nil {
			return fail(e, "token", err)
		}
		if *asJSON {
			writeJSON(e.stdout, ts)
			return ExitOK
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tREVOKED")
		for _, t := range ts {
			rv := "-"
			if t.Revoked != nil {
				rv = e.fmtTime(*t.Revoked)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", show(t.ID), show(t.Name), show(string(t.Role)), e.fmtTime(t.Created), rv)
		}
		tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			fs.Usage()
			return ExitUsage
		}
		if err := api.do(ctx, http.MethodDelete, protocol.PathTokens+"/"+esc(fs.Arg(0)), nil, "", nil); err != nil {
			return fail(e, "token", err)
		}
		fmt.Fprintf(e.stderr, "token %s revoked\n", fs.Arg(0))
	default:
		return fail(e, "token", errors.New("unknown subcommand "+sub+"; use create, list or revoke"))
	}
	return ExitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// showReleases prints each release's description, fixed packages and
// references, as "dnf updateinfo info" does; the release is named when
// there are several (the same id imported for AlmaLinux 8 and 9) or the
// source named one.
func showReleases(e *env, rs []protocol.AdvisoryRelease) {
	for _, r := range rs {
		if len(rs) > 1 || r.Release != "" {
			fmt.Fprintf(e.stdout, "\n  Release %s", show(dash(r.Release)))
			if r.RebootSuggested {
				fmt.Fprint(e.stdout, " (reboot suggested)")
			}
			fmt.Fprintln(e.stdout)
		}
		if r.Description != "" {
			fmt.Fprintln(e.stdout, "  Description:")
			for _, l := range describe(r.Description, descriptionWidth) {
				if l == "" {
					fmt.Fprintln(e.stdout)
					continue
				}
				fmt.Fprintf(e.stdout, "    %s\n", l)
			}
		}
		if len(r.Packages) > 0 {
			fmt.Fprintln(e.stdout, "  Packages:")
			for _, p := range r.Packages {
				name := p.Name
				if p.Arch != "" {
					name += "." + p.Arch
				}
				fmt.Fprintf(e.stdout, "    %s %s\n", show(name), show(p.Fixed))
			}
		}
		if len(r.References) > 0 {
			fmt.Fprintln(e.stdout, "  References:")
			for _, ref := range r.References {
				fmt.Fprintf(e.stdout, "    %s\n", show(ref.URL))
			}
		}
	}
}

// descriptionWidth is the width descriptions are wrapped to, after their
// four columns of indent: 80 columns in all.
const descriptionWidth = 76

// describe returns an advisory description's lines as they may be printed:
// its own line breaks kept, tabs made spaces, every line escaped as show
// escapes text from the server (an escape sequence in the imported data
// shows as \x1b, never acts), and lines longer than width characters
// wrapped at spaces, a bullet's continuation lines under its text. A word
// longer than width (a URL) keeps a line of its own, unbroken. Empty lines
// stay, as paragraph breaks.
func describe(s string, width int) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = show(strings.TrimRight(strings.ReplaceAll(line, "\t", "    "), " "))
		if line == "" {
			out = append(out, "")
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		// A wrapped line keeps the indent of the line it came from, and a
		// bullet's ("* ", "- ") continuation lines go under its text.
		hang := indent
		if rest := line[len(indent):]; strings.HasPrefix(rest, "* ") || strings.HasPrefix(rest, "- ") {
			hang += "  "
		}
		var cur strings.Builder
		n := 0
		for _, w := range strings.Fields(line) {
			wn := utf8.RuneCountInString(w)
			if n > 0 && n+1+wn > width {
				out = append(out, cur.String())
				cur.Reset()
				n = 0
				indent = hang
			}
			if n == 0 {
				cur.WriteString(indent)
				n = len(indent)
			} else {
				cur.WriteByte(' ')
				n++
			}
			cur.WriteString(w)
			n += wn
		}
		out = append(out, cur.String())
	}
	return out
}
