package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/applicability"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
)

func init() {
	register("check", "list the advisories that apply to this device", runCheck)
	register("inventory", "list the packages installed on this device", runInventory)
}

// device is what check and inventory learn about the device they look at.
type device struct {
	root    string
	release inventory.Release
	// ecosystem is the release's OSV ecosystem ("AlmaLinux:9"), when asked for.
	ecosystem string
	dbPath    string
	pkgs      []inventory.Package
}

// readDevice reads the os-release and the rpm database under root, or the
// database at dbPath when it is given. needRelease makes a missing
// os-release an error. The release is read first: a device of an unknown
// distribution is refused before its database is opened.
func readDevice(root, dbPath string, needRelease bool) (*device, error) {
	d := &device{root: root}
	rel, err := readOSRelease(root)
	if err != nil && needRelease {
		return nil, err
	}
	d.release = rel
	if needRelease {
		if d.ecosystem, err = rel.Ecosystem(); err != nil {
			return nil, fmt.Errorf("%s: %w (pass --release to choose the advisories' ecosystem)", filepath.Join(root, "etc/os-release"), err)
		}
	}
	if dbPath == "" {
		if dbPath, err = rpmdb.Find(root); err != nil {
			return nil, err
		}
	} else {
		// As with rpm --root R --dbpath P, the path is inside the root.
		dbPath = filepath.Join(root, dbPath)
	}
	d.dbPath = dbPath
	if d.pkgs, err = rpmdb.Read(dbPath); err != nil {
		return nil, err
	}
	return d, nil
}

// readOSRelease reads ROOT/etc/os-release, or ROOT/usr/lib/os-release as
// os-release(5) says to when the first is missing.
func readOSRelease(root string) (inventory.Release, error) {
	var firstErr error
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		path := filepath.Join(root, p)
		f, err := os.Open(path)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		rel, err := inventory.ParseOSRelease(f)
		f.Close()
		if err != nil {
			return inventory.Release{}, fmt.Errorf("%s: %w", path, err)
		}
		return rel, nil
	}
	return inventory.Release{}, fmt.Errorf("read os-release: %w", firstErr)
}

func runCheck(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "check", "check [--root DIR] [--dbpath PATH] [--advisories SRC ...] [--cache-dir DIR] [--security] [--severity LEVEL] [--cve ID] [--release ECOSYSTEM] [--json]")
	root := fs.String("root", "/", "filesystem root of the device to check")
	dbPath := fs.String("dbpath", "", "rpm database to read, a file or folder inside --root as with rpm --dbpath (default: found under --root)")
	var srcs multiFlag
	fs.Var(&srcs, "advisories", "advisory source: updateinfo.xml, OSV file, folder or JSON lines, or a repository folder or URL (repeatable; default: the updateinfo of the enabled repositories of ROOT/etc/yum.repos.d, found through their baseurl, mirrorlist or metalink as dnf does, with the variables of ROOT/etc/dnf/vars)")
	cacheDir := fs.String("cache-dir", defaultCacheDir(), "without --advisories: where the repositories' metadata is kept between runs, named by checksum (one folder per repository; outside --root; \"\" keeps nothing)")
	security := fs.Bool("security", false, "only security advisories")
	severity := fs.String("severity", "", "only advisories of at least this severity (Low, Moderate, Important, Critical)")
	cve := fs.String("cve", "", "only advisories that fix this CVE (\"CVE-2023-2650\")")
	release := fs.String("release", "", "match advisories of this ecosystem (\"AlmaLinux:9\") instead of the one os-release gives")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	minSev, err := advisory.ParseSeverity(*severity)
	if err != nil {
		return fail(e, "check", fmt.Errorf("--severity: %w", err))
	}

	dev, err := readDevice(*root, *dbPath, *release == "")
	if err != nil {
		return fail(e, "check", err)
	}
	eco := *release
	if eco == "" {
		eco = dev.ecosystem
	}

	// Advisories stream through the matcher one at a time; only those
	// that apply are kept, so memory does not grow with the sources.
	keep := func(a *advisory.Advisory) bool {
		return (!*security || a.IsSecurity()) && a.Severity >= minSev && (*cve == "" || a.HasCVE(*cve))
	}
	m := &checker{dev: applicability.NewDevice(eco, dev.pkgs), eco: eco, ecosystems: map[string]int{}, seen: map[string]seenAdvisory{}}
	for _, src := range srcs {
		if err := m.read(ctx, src, keep); err != nil {
			return fail(e, "check", err)
		}
	}
	if len(srcs) == 0 {
		// As dnf updateinfo list: the enabled repositories' updateinfo.
		if err := m.readRepos(ctx, e, *root, *cacheDir, keep); err != nil {
			return fail(e, "check", err)
		}
	}
	if err := m.ecosystemError(); err != nil {
		return fail(e, "check", err)
	}
	findings := m.findings
	applicability.SortFindings(findings)
	nadvs := m.kept
	if *asJSON {
		err = writeCheckJSON(e.stdout, findings)
	} else {
		err = writeCheckText(e.stdout, findings, eco, len(dev.pkgs), nadvs)
	}
	if err != nil {
		return fail(e, "check", err)
	}
	if len(findings) > 0 {
		return ExitUpdates
	}
	return ExitOK
}

// checker matches advisories against one device as they stream in.
type checker struct {
	dev      *applicability.Device
	eco      string
	findings []applicability.Finding
	// kept counts the advisories that passed the filters and were matched.
	kept int
	// ecosystems counts the advisories seen per ecosystem ("" when the
	// source does not say), to tell "nothing applies" from "nothing was
	// for this device's release".
	ecosystems map[string]int
	// seen holds, per advisory id for this device's release, the Updated
	// of the copy read and where its finding is (-1: none). Sources may
	// hold the same advisory twice (AppStream and BaseOS; the AlmaLinux 8
	// and 9 OSV files both carry the 34 advisories that span the two
	// releases), and each is listed once, from its latest copy, as dnf
	// updateinfo list does and as the server keeps it.
	seen map[string]seenAdvisory
}

type seenAdvisory struct {
	updated time.Time
	kept    bool // it passed the filters
	finding int
}

func (c *checker) read(ctx context.Context, src string, keep func(*advisory.Advisory) bool) error {
	s, err := source.Open(ctx, src, source.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	return c.consume(s, keep)
}

// readRepos matches the updateinfo of the enabled repositories of
// ROOT/etc/yum.repos.d. Each repository's metadata is cached under
// cacheDir by checksum, so an unchanged updateinfo is not downloaded
// again. A repository that publishes no updateinfo is passed over, as dnf
// does; one that cannot be read is an error.
func (c *checker) readRepos(ctx context.Context, e *env, root, cacheDir string, keep func(*advisory.Advisory) bool) error {
	cfgs, vars, err := repo.LoadSystem(root)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 30 * time.Second,
		TLSHandshakeTimeout:   30 * time.Second,
	}}
	n := 0
	for _, cfg := range cfgs {
		if !cfg.Enabled {
			continue
		}
		n++
		o := repo.Options{HTTPClient: client, Vars: vars, Log: e.log}
		if cacheDir != "" {
			o.CacheDir = filepath.Join(cacheDir, cfg.CacheName())
		}
		if cfg.RepoGPGCheck {
			// repo_gpgcheck: repomd.xml must be signed by a key the
			// .repo file names.
			files, err := cfg.KeyFiles(root)
			if err != nil {
				return err
			}
			if o.Keyring, err = repo.LoadKeyring(files); err != nil {
				return err
			}
			o.RequireSignature = o.Keyring != nil
		}
		r, err := repo.NewFromConfig(cfg, o)
		if err != nil {
			return err
		}
		ui, err := r.Updateinfo(ctx)
		if errors.Is(err, repo.ErrNoUpdateinfo) {
			e.log.Info("repository has no updateinfo", "repo", cfg.ID)
			continue
		}
		if err != nil {
			return fmt.Errorf("read updateinfo of %s: %w", r, err)
		}
		err = c.consume(ui, keep)
		if cerr := ui.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("read updateinfo of %s: %w", r, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("no --advisories given and no enabled repository in %s", filepath.Join(root, "etc/yum.repos.d"))
	}
	return nil
}

// defaultCacheDir is check's metadata cache: under /var/cache for root,
// the user's cache folder otherwise.
func defaultCacheDir() string {
	if os.Geteuid() == 0 {
		return "/var/cache/rpmfleet/metadata"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "rpmfleet", "metadata")
	}
	return ""
}

// consume matches a stream of advisories.
func (c *checker) consume(s interface {
	Next() (*advisory.Advisory, error)
}, keep func(*advisory.Advisory) bool) error {
	for {
		a, err := s.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		c.ecosystems[a.Ecosystem]++
		if a.Ecosystem != "" && a.Ecosystem != c.eco {
			continue // another release's copy: it neither matches nor hides one
		}
		prev, again := c.seen[a.ID]
		if again {
			if !a.Updated.After(prev.updated) {
				continue
			}
			if prev.finding >= 0 {
				c.drop(prev.finding)
			}
			if prev.kept {
				c.kept--
			}
		}
		cur := seenAdvisory{updated: a.Updated, kept: keep(a), finding: -1}
		if cur.kept {
			c.kept++
			if f, ok := c.dev.Match(a); ok {
				cur.finding = len(c.findings)
				c.findings = append(c.findings, f)
			}
		}
		c.seen[a.ID] = cur
	}
}

// drop removes the finding at i, a copy a later one of the same advisory
// replaces; the last finding takes its place.
func (c *checker) drop(i int) {
	last := len(c.findings) - 1
	if i != last {
		c.findings[i] = c.findings[last]
		moved := c.seen[c.findings[i].Advisory.ID]
		moved.finding = i
		c.seen[c.findings[i].Advisory.ID] = moved
	}
	c.findings = c.findings[:last]
}

// ecosystemError refuses to answer "nothing applies" when the sources hold
// advisories, all of them for other releases than the device's: that answer
// would be empty for the wrong reason.
func (c *checker) ecosystemError() error {
	if c.ecosystems[""] > 0 || c.ecosystems[c.eco] > 0 || len(c.ecosystems) == 0 {
		return nil
	}
	others := make([]string, 0, len(c.ecosystems))
	for s := range c.ecosystems {
		others = append(others, s)
	}
	sort.Strings(others)
	return fmt.Errorf("the advisories are for %s, none for this device's %s (pass --release to check against one of them)", strings.Join(others, ", "), c.eco)
}

// checkJSON is check's --json output: {"advisories": [...]}, EVRs written
// epoch:version-release.
type checkJSON struct {
	Advisories []checkAdvisoryJSON `json:"advisories"`
}

type checkAdvisoryJSON struct {
	ID       string             `json:"id"`
	Type     advisory.Type      `json:"type"`
	Severity advisory.Severity  `json:"severity"`
	Title    string             `json:"title"`
	CVEs     []string           `json:"cves"`
	Packages []checkPackageJSON `json:"packages"`
}

type checkPackageJSON struct {
	Name      string `json:"name"`
	Arch      string `json:"arch"`
	Installed string `json:"installed"`
	Fixed     string `json:"fixed"`
}

func writeCheckJSON(w io.Writer, findings []applicability.Finding) error {
	out := checkJSON{Advisories: make([]checkAdvisoryJSON, 0, len(findings))}
	for _, f := range findings {
		a := checkAdvisoryJSON{
			ID:       f.Advisory.ID,
			Type:     f.Advisory.Type,
			Severity: f.Advisory.Severity,
			Title:    f.Advisory.Title,
			CVEs:     f.Advisory.CVEs,
			Packages: make([]checkPackageJSON, 0, len(f.Packages)),
		}
		if a.CVEs == nil {
			a.CVEs = []string{}
		}
		for _, p := range f.Packages {
			a.Packages = append(a.Packages, checkPackageJSON{
				Name:      p.Installed.Name,
				Arch:      p.Installed.Arch,
				Installed: p.Installed.EVR.String(),
				Fixed:     p.Fixed.EVR.String(),
			})
		}
		out.Advisories = append(out.Advisories, a)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// show is s as a terminal may print it.
func show(s string) string { return protocol.Escape(s) }

func writeCheckText(out io.Writer, findings []applicability.Finding, eco string, npkgs, nadvs int) error {
	// tabwriter writes cell by cell: buffer, or a long answer costs a
	// system call per cell.
	w := bufio.NewWriter(out)
	defer w.Flush()
	if len(findings) == 0 {
		_, err := fmt.Fprintf(w, "No advisory applies: %d installed packages checked against %s for %s.\n", npkgs, plural(nadvs, "advisory", "advisories"), eco)
		return err
	}
	t := newCheckTable(findings)
	bySev := map[advisory.Severity]int{}
	security := 0
	for _, f := range findings {
		a := f.Advisory
		if a.IsSecurity() {
			security++
			bySev[a.Severity]++
		}
		t.write(w, f)
	}
	fmt.Fprintf(w, "\n%s to this %s device (%d installed packages checked against %s)", plural(len(findings), "advisory applies", "advisories apply"), eco, npkgs, plural(nadvs, "advisory", "advisories"))
	if security > 0 {
		var parts []string
		for s := advisory.Critical; s >= advisory.SeverityNone; s-- {
			if n := bySev[s]; n > 0 {
				name := s.String()
				if s == advisory.SeverityNone {
					name = "unrated"
				}
				parts = append(parts, fmt.Sprintf("%d %s", n, name))
			}
		}
		fmt.Fprintf(w, "; %s: %s", plural(security, "is a security advisory", "are security advisories"), strings.Join(parts, ", "))
	}
	fmt.Fprintln(w, ".")
	if security > 0 {
		fmt.Fprintln(w, "Apply the security fixes with: rpmfleet-agent apply --security   (or: dnf upgrade --security)")
	}
	return w.Flush()
}

// plural writes n with the singular or plural form.
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// checkTable lays out check's text answer in aligned columns: each
// advisory's id, type, severity and title on one line, its CVEs and
// packages indented under the type, package names padded to the longest
// of the answer, so installed versions line up down the whole list.
// Widths count runes of the escaped text (what the terminal shows), so a
// column holds whatever a source put in a title. What the sources and the
// rpm database say is shown escaped (protocol.Escape): a title holding
// ESC[2J or U+202E comes from a repository, not from us, and must not
// drive the terminal.
type checkTable struct {
	id, typ, sev, pkg int // column widths
}

func newCheckTable(findings []applicability.Finding) checkTable {
	var t checkTable
	for _, f := range findings {
		a := f.Advisory
		t.id = max(t.id, width(show(a.ID)))
		t.typ = max(t.typ, width(show(string(a.Type))))
		t.sev = max(t.sev, width(severityCell(a.Severity)))
		for _, p := range f.Packages {
			t.pkg = max(t.pkg, width(packageCell(p)))
		}
	}
	return t
}

func (t checkTable) write(w io.Writer, f applicability.Finding) {
	const gap = "  "
	a := f.Advisory
	fmt.Fprintf(w, "%s%s%s%s%s%s%s\n", pad(show(a.ID), t.id), gap, pad(show(string(a.Type)), t.typ), gap,
		pad(severityCell(a.Severity), t.sev), gap, show(a.Title))
	indent := strings.Repeat(" ", t.id+len(gap))
	for i := 0; i < len(a.CVEs); i += 6 {
		label := "CVEs: "
		if i > 0 {
			label = "      "
		}
		cves := make([]string, 0, 6)
		for _, c := range a.CVEs[i:min(i+6, len(a.CVEs))] {
			cves = append(cves, show(c))
		}
		fmt.Fprintf(w, "%s%s%s\n", indent, label, strings.Join(cves, " "))
	}
	for _, p := range f.Packages {
		fmt.Fprintf(w, "%s%s%s%s -> %s\n", indent, pad(packageCell(p), t.pkg), gap, show(p.Installed.EVR.Short()), show(p.Fixed.EVR.Short()))
	}
}

func severityCell(s advisory.Severity) string {
	if s == advisory.SeverityNone {
		return "-"
	}
	return s.String()
}

func packageCell(p applicability.Fix) string {
	return show(p.Installed.Name) + "." + show(p.Installed.Arch)
}

// width is how many columns s takes: one a rune, as tabwriter counts.
func width(s string) int { return utf8.RuneCountInString(s) }

func pad(s string, n int) string {
	return s + strings.Repeat(" ", max(n-width(s), 0))
}

func runInventory(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "inventory", "inventory [--root DIR] [--dbpath PATH] [--json]")
	root := fs.String("root", "/", "filesystem root of the device")
	dbPath := fs.String("dbpath", "", "rpm database to read, a file or folder inside --root as with rpm --dbpath (default: found under --root)")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	dev, err := readDevice(*root, *dbPath, false)
	if err != nil {
		return fail(e, "inventory", err)
	}
	inventory.Sort(dev.pkgs)
	if *asJSON {
		type pkgJSON struct {
			Name            string `json:"name"`
			EVR             string `json:"evr"`
			Arch            string `json:"arch"`
			ModularityLabel string `json:"modularity_label,omitempty"`
		}
		out := struct {
			Release  *inventory.Release `json:"release,omitempty"`
			Digest   string             `json:"digest"`
			Packages []pkgJSON          `json:"packages"`
		}{Digest: inventory.Digest(dev.pkgs), Packages: make([]pkgJSON, 0, len(dev.pkgs))}
		if dev.release.ID != "" {
			out.Release = &dev.release
		}
		for _, p := range dev.pkgs {
			out.Packages = append(out.Packages, pkgJSON{p.Name, p.EVR.String(), p.Arch, p.ModularityLabel})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fail(e, "inventory", err)
		}
		return ExitOK
	}
	// As rpm -qa prints (name-version-release.arch, no epoch), a line a
	// package; --json has epochs and modularity labels.
	w := bufio.NewWriter(e.stdout)
	for _, p := range dev.pkgs {
		fmt.Fprintln(w, show(p.NEVRA().NVRA()))
	}
	if err := w.Flush(); err != nil {
		return fail(e, "inventory", err)
	}
	return ExitOK
}
