package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/rpmfleet/rpmfleet/agent/internal/update"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// DefaultStateDir is where the agent keeps its journal and downloads.
const DefaultStateDir = "/var/lib/rpmfleet"

// ExitRolledBack is apply's exit code when the update was applied, found
// unhealthy and rolled back.
const ExitRolledBack = 3

func init() {
	register("apply", "install the fixes of advisories (or allow-listed packages), verified, with rollback", runApply)
}

func runApply(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "apply", "apply [--root DIR] [--dbpath PATH] [--repo URL|DIR ...] [--gpgkey FILE ...] (--advisory ID ... | --security [--severity LEVEL] | --all | --update NAME ...) [--installonly-limit N] [--health-check CMD ...] [--state-dir DIR] [--no-rollback] [--min-free BYTES] [--dry-run] [--json]")
	root := fs.String("root", "/", "filesystem root of the device to update")
	dbPath := fs.String("dbpath", "", "rpm database folder inside --root, as with rpm --dbpath (default: found under --root)")
	var repos, keys, ids, checks multiFlag
	fs.Var(&repos, "repo", "repository base, URL or folder (repeatable; default: the enabled repositories of ROOT/etc/yum.repos.d, found through their baseurl, mirrorlist or metalink as dnf does, with the variables of ROOT/etc/dnf/vars; their metadata is cached in --state-dir)")
	fs.Var(&keys, "gpgkey", "pinned OpenPGP public key file, RPM-GPG-KEY-* (repeatable; default: the .repo files' gpgkey)")
	fs.Var(&ids, "advisory", "advisory to apply (repeatable)")
	security := fs.Bool("security", false, "apply every security advisory")
	severity := fs.String("severity", "", "with --security or --all: only advisories of at least this severity")
	all := fs.Bool("all", false, "apply every advisory")
	var plain multiFlag
	fs.Var(&plain, "update", "package updated to the newest build the repositories hold, in no advisory needed, as a policy's allow_updates (repeatable; exact name)")
	limit := fs.Int("installonly-limit", update.DefaultInstallonlyLimit, "kernels (install-only packages) kept installed side by side after the update; 0 keeps all")
	fs.Var(&checks, "health-check", "command run with sh -c after the update; failing rolls it back (repeatable)")
	stateDir := fs.String("state-dir", DefaultStateDir, "journal, lock and downloads")
	noRollback := fs.Bool("no-rollback", false, "apply even when the installed versions are in no repository (no way back)")
	dryRun := fs.Bool("dry-run", false, "print the plan and change nothing")
	minFree := fs.Int64("min-free", 16<<20, "bytes to keep free on the root beyond what the update installs")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 || (len(ids) == 0 && !*security && !*all && len(plain) == 0) {
		fs.Usage()
		return ExitUsage
	}
	for _, n := range plain {
		if !protocol.ValidPackageName(n) {
			return fail(e, "apply", fmt.Errorf("--update %s: not a package name (letters, digits and ._+- only; no globs)", protocol.Escape(n)))
		}
	}
	if *limit == 1 || *limit < 0 {
		return fail(e, "apply", fmt.Errorf("--installonly-limit %d: want 0 (keep all) or at least 2", *limit))
	}
	if *limit == 0 {
		*limit = -1 // update.Options: keep every instance
	}
	minSev, err := advisory.ParseSeverity(*severity)
	if err != nil {
		return fail(e, "apply", fmt.Errorf("--severity: %w", err))
	}
	res, err := update.Run(ctx, update.Options{
		StateDir: *stateDir, Root: *root, DBPath: *dbPath, Repos: repos, Keys: keys,
		Select:       update.Selection{IDs: ids, Security: *security, MinSeverity: minSev, All: *all, Packages: plain},
		HealthChecks: checks, NoRollback: *noRollback, DryRun: *dryRun, Log: e.log, MinFreeBytes: *minFree, InstallonlyLimit: *limit,
	})
	if *asJSON && res != nil {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(applyJSON{Recovered: res.Recovered, Pending: res.Pending, Plan: res.Plan, Cycle: res.Cycle, SetAside: res.SetAside, Error: errString(err)}); jerr != nil {
			return fail(e, "apply", jerr)
		}
	} else if res != nil {
		writeApplyText(e.stdout, res, *dryRun)
	}
	if err != nil {
		if res != nil && res.Cycle != nil && res.Cycle.Phase == update.RolledBack {
			fmt.Fprintf(e.stderr, "rpmfleet-agent apply: %v\n", err)
			return ExitRolledBack
		}
		return fail(e, "apply", err)
	}
	return ExitOK
}

type applyJSON struct {
	Recovered *update.Cycle `json:"recovered,omitempty"`
	Pending   *update.Cycle `json:"pending,omitempty"`
	Plan      *update.Plan  `json:"plan,omitempty"`
	Cycle     *update.Cycle `json:"cycle,omitempty"`
	SetAside  []string      `json:"set_aside,omitempty"`
	Error     string        `json:"error,omitempty"`
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func writeApplyText(w io.Writer, res *update.Result, dryRun bool) {
	if c := res.Recovered; c != nil {
		fmt.Fprintf(w, "Recovered cycle %d, interrupted earlier: now %s.\n", c.ID, c.Phase)
		for _, r := range c.Recovery {
			fmt.Fprintf(w, "  %s\n", r)
		}
	}
	if c := res.Pending; c != nil {
		fmt.Fprintf(w, "Cycle %d was interrupted in phase %s; the next apply (without --dry-run) settles it first.\n", c.ID, c.Phase)
	}
	if res.Plan != nil {
		if len(res.Plan.Packages) == 0 {
			fmt.Fprintln(w, "Nothing to apply.")
		} else if dryRun {
			fmt.Fprintln(w, "Plan (dry run, nothing changed):")
		}
		fmt.Fprint(w, res.Plan.String())
	}
	if c := res.Cycle; c != nil {
		writeCycle(w, c, true)
	}
	for _, id := range res.SetAside {
		fmt.Fprintf(w, "Advisory %s is set aside after %d failed attempts; it will not be tried again.\n", id, update.MaxAttempts)
	}
}

// writeCycle prints one cycle for people.
func writeCycle(w io.Writer, c *update.Cycle, detail bool) {
	var ids []string
	for _, a := range c.Advisories {
		ids = append(ids, a.ID)
	}
	fin := "running"
	if !c.Finished.IsZero() {
		fin = c.Finished.Sub(c.Started).Round(1e6).String()
	}
	fmt.Fprintf(w, "cycle %d  %s  %s  %s  advisories: %s\n", c.ID, c.Started.Format("2006-01-02 15:04:05Z"), c.Phase, fin, strings.Join(ids, " "))
	for _, p := range c.Packages {
		how := ""
		if p.InstallOnly {
			how += "  (installed beside)"
		}
		if len(p.Advisories) == 0 {
			how += "  (no advisory: allow-listed)"
		}
		fmt.Fprintf(w, "  %s.%s  %s -> %s%s\n", p.Name, p.Arch, p.From, p.To, how)
	}
	if len(c.Removed) > 0 {
		fmt.Fprintf(w, "  erased for the install-only limit: %s\n", strings.Join(c.Removed, " "))
	}
	if c.Error != "" {
		fmt.Fprintf(w, "  error (%s): %s\n", c.ErrorClass, c.Error)
		if c.Phase == update.Failed {
			if c.DatabaseUnchanged {
				fmt.Fprintln(w, "  the rpm database is as it was before the cycle")
			} else {
				fmt.Fprintln(w, "  WARNING: the rpm database differs from before the cycle")
			}
		}
	}
	if c.Reboot.Needed {
		fmt.Fprintf(w, "  reboot needed: %s\n", strings.Join(c.Reboot.Reasons, "; "))
	}
	if !detail {
		return
	}
	for _, v := range c.Verdicts {
		verdict := "ok"
		if !v.OK {
			verdict = v.Kind + ": " + v.Detail
		}
		fmt.Fprintf(w, "  verify %s: %s\n", v.NEVRA, verdict)
	}
	for _, h := range c.Health {
		fmt.Fprintf(w, "  health %q: %s\n", h.Check, okWord(h.OK, h.ExitCode))
	}
	for _, h := range c.HealthAfterRollback {
		fmt.Fprintf(w, "  health after rollback %q: %s\n", h.Check, okWord(h.OK, h.ExitCode))
	}
	for _, s := range c.Steps {
		if s.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Phase, s.Note)
		}
	}
	for _, r := range c.Recovery {
		fmt.Fprintf(w, "  recovery: %s\n", r)
	}
	if out := strings.TrimSpace(c.RPMOutput); out != "" && c.Phase != update.Committed {
		fmt.Fprintf(w, "  rpm said:\n    %s\n", strings.ReplaceAll(out, "\n", "\n    "))
	}
}

func okWord(ok bool, code int) string {
	if ok {
		return "ok"
	}
	return fmt.Sprintf("failed (exit %d)", code)
}
