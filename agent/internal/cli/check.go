package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/rpmfleet/rpmfleet/agent/internal/rpmdb"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/source"
	"github.com/rpmfleet/rpmfleet/pkg/applicability"
	"github.com/rpmfleet/rpmfleet/pkg/inventory"
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
	fs := newFlagSet(e, "check", "check [--root DIR] [--dbpath PATH] --advisories SRC [--advisories SRC ...] [--security] [--severity LEVEL] [--cve ID] [--release ECOSYSTEM] [--json]")
	root := fs.String("root", "/", "filesystem root of the device to check")
	dbPath := fs.String("dbpath", "", "rpm database to read, a file or folder inside --root as with rpm --dbpath (default: found under --root)")
	var srcs multiFlag
	fs.Var(&srcs, "advisories", "advisory source: updateinfo.xml, OSV file, folder or JSON lines, or a repository folder or URL (repeatable)")
	security := fs.Bool("security", false, "only security advisories")
	severity := fs.String("severity", "", "only advisories of at least this severity (Low, Moderate, Important, Critical)")
	cve := fs.String("cve", "", "only advisories that fix this CVE (\"CVE-2023-2650\")")
	release := fs.String("release", "", "match advisories of this ecosystem (\"AlmaLinux:9\") instead of the one os-release gives")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if len(srcs) == 0 || fs.NArg() != 0 {
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
	m := &checker{dev: applicability.NewDevice(eco, dev.pkgs), eco: eco, ecosystems: map[string]int{}}
	for _, src := range srcs {
		if err := m.read(ctx, src, keep); err != nil {
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
}

func (c *checker) read(ctx context.Context, src string, keep func(*advisory.Advisory) bool) error {
	s, err := source.Open(ctx, src, source.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		a, err := s.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		c.ecosystems[a.Ecosystem]++
		if !keep(a) {
			continue
		}
		c.kept++
		if f, ok := c.dev.Match(a); ok {
			c.findings = append(c.findings, f)
		}
	}
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

func writeCheckText(out io.Writer, findings []applicability.Finding, eco string, npkgs, nadvs int) error {
	// tabwriter writes cell by cell: buffer, or a long answer costs a
	// system call per cell.
	w := bufio.NewWriter(out)
	defer w.Flush()
	if len(findings) == 0 {
		_, err := fmt.Fprintf(w, "No advisory applies: %d installed packages checked against %s for %s.\n", npkgs, plural(nadvs, "advisory", "advisories"), eco)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	bySev := map[advisory.Severity]int{}
	security := 0
	for _, f := range findings {
		a := f.Advisory
		if a.IsSecurity() {
			security++
			bySev[a.Severity]++
		}
		sev := a.Severity.String()
		if a.Severity == advisory.SeverityNone {
			sev = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.ID, a.Type, sev, a.Title)
		if len(a.CVEs) > 0 {
			fmt.Fprintf(tw, "\tCVEs:\t%s\n", wrapList(a.CVEs, 6))
		}
		for _, p := range f.Packages {
			fmt.Fprintf(tw, "\t%s.%s\t%s -> %s\n", p.Installed.Name, p.Installed.Arch, p.Installed.EVR, p.Fixed.EVR)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
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

// wrapList joins items, n to a line, continuing lines under the tabwriter's
// second column.
func wrapList(items []string, n int) string {
	var b strings.Builder
	for i, s := range items {
		if i > 0 {
			if i%n == 0 {
				b.WriteString("\n\t\t")
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(s)
	}
	return b.String()
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
	for _, p := range dev.pkgs {
		if p.ModularityLabel != "" {
			fmt.Fprintf(e.stdout, "%s\t[%s]\n", p, p.ModularityLabel)
			continue
		}
		fmt.Fprintln(e.stdout, p)
	}
	return ExitOK
}
