// Package rpmcmd is the agent's seam around the real rpm binary: the few
// transactions the update cycle runs (rpm --test -U, rpm -U, rpm -U
// --oldpackage, and for install-only kernels rpm --test -i, rpm -i and
// rpm -e; rpmkeys --import) against a device root and its database, and
// pure parsers for what rpm prints, tested on captured real output.
//
// Threat model. rpm itself is trusted; its inputs are not. Every package is
// checked by agent/internal/verify before it reaches this package, and every
// real transaction still runs with _pkgverify_level signature, so rpm refuses
// a package whose signature the keys imported from the agent's pinned
// RPM-GPG-KEY files do not vouch for, even if a file changed between the
// check and the install. Keys are imported into the target database only
// from the pinned files, never from a repository or a package.
package rpmcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrFailed is matched (errors.Is) by every *Error: rpm ran and exited
// non-zero.
var ErrFailed = errors.New("rpmcmd: rpm failed")

// Error is rpm exiting non-zero: its words, parsed into problems where rpm
// states them in its usual forms.
type Error struct {
	// Op is what was asked: "test", "upgrade", "install", "erase",
	// "rollback", "import".
	Op string
	// ExitCode is rpm's exit status.
	ExitCode int
	// Problems are the transaction problems rpm listed.
	Problems []Problem
	// Output is everything rpm printed, without Debian's Alien notice.
	Output string
}

func (e *Error) Error() string {
	var msgs []string
	for _, p := range e.Problems {
		msgs = append(msgs, p.Text)
	}
	if len(msgs) == 0 {
		for _, l := range strings.Split(strings.TrimSpace(e.Output), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				msgs = append(msgs, l)
			}
		}
	}
	if len(msgs) == 0 {
		msgs = []string{"no output"}
	}
	return fmt.Sprintf("rpm %s: exit status %d: %s", e.Op, e.ExitCode, strings.Join(msgs, "; "))
}

// Is makes errors.Is(err, ErrFailed) true.
func (e *Error) Is(target error) bool { return target == ErrFailed }

// Runner runs rpm against one root and database. The zero Bin and KeysBin
// mean "rpm" and "rpmkeys" from PATH.
type Runner struct {
	// Root is the device root (rpm --root); "/" on a real device.
	Root string
	// DBPath is the database folder inside Root (rpm --dbpath), such as
	// "/var/lib/rpm".
	DBPath string
	// Bin and KeysBin are the rpm and rpmkeys executables.
	Bin, KeysBin string
}

func (r *Runner) base() []string {
	args := []string{"--root", r.Root}
	if r.DBPath != "" {
		args = append(args, "--dbpath", r.DBPath)
	}
	return args
}

func (r *Runner) bin() string {
	if r.Bin != "" {
		return r.Bin
	}
	return "rpm"
}

func (r *Runner) keysBin() string {
	if r.KeysBin != "" {
		return r.KeysBin
	}
	return "rpmkeys"
}

// Test runs rpm --test -U on the whole set: rpm resolves dependencies and
// conflicts against the database without changing it. Signatures are not
// checked here (--nosignature; digests still are), since the pinned keys are
// imported into the target database only when the cycle really applies
// (importing changes the database) and verify has already judged them.
func (r *Runner) Test(ctx context.Context, files ...string) (string, error) {
	args := append(r.base(), "--test", "-U", "--nosignature")
	return r.run(ctx, "test", r.bin(), append(args, files...))
}

// Upgrade installs the set as one transaction, refusing any package whose
// signature the imported keys do not vouch for.
func (r *Runner) Upgrade(ctx context.Context, files ...string) (string, error) {
	args := append(r.base(), "-U", "-v", "--define", "_pkgverify_level signature")
	return r.run(ctx, "upgrade", r.bin(), append(args, files...))
}

// TestInstall runs rpm --test -i on install-only packages (kernels), which
// go in beside the installed versions, not over them.
func (r *Runner) TestInstall(ctx context.Context, files ...string) (string, error) {
	args := append(r.base(), "--test", "-i", "--nosignature")
	return r.run(ctx, "test", r.bin(), append(args, files...))
}

// Install installs install-only packages beside their installed versions
// (rpm -i) as one transaction, refusing any package whose signature the
// imported keys do not vouch for.
func (r *Runner) Install(ctx context.Context, files ...string) (string, error) {
	args := append(r.base(), "-i", "-v", "--define", "_pkgverify_level signature")
	return r.run(ctx, "install", r.bin(), append(args, files...))
}

// Erase removes installed packages, each named exactly
// (name-version-release.arch), as one transaction: an install-only
// package the cycle added and rolls back, or old kernels beyond the
// install-only limit. A name must not start with "-": it would be an
// option.
func (r *Runner) Erase(ctx context.Context, nevras ...string) (string, error) {
	for _, n := range nevras {
		if n == "" || strings.HasPrefix(n, "-") {
			return "", fmt.Errorf("rpmcmd: erase %q: not a package name", n)
		}
	}
	args := append(r.base(), "-e", "-v")
	return r.run(ctx, "erase", r.bin(), append(append(args, "--"), nevras...))
}

// Rollback installs the previous versions as one transaction: rpm -U
// --oldpackage, the only downgrade the agent ever makes.
func (r *Runner) Rollback(ctx context.Context, files ...string) (string, error) {
	args := append(r.base(), "-U", "-v", "--oldpackage", "--define", "_pkgverify_level signature")
	return r.run(ctx, "rollback", r.bin(), append(args, files...))
}

// ImportKeys imports armored public key files into the target database
// (rpmkeys --import), so that rpm's own signature check trusts exactly the
// pinned keys. Importing a key already there is not an error.
func (r *Runner) ImportKeys(ctx context.Context, keyFiles ...string) (string, error) {
	args := append(r.base(), "--import")
	return r.run(ctx, "import", r.keysBin(), append(args, keyFiles...))
}

// QueryAll lists the installed packages as rpm -qa --qf '%{NEVRA}\n' does,
// gpg-pubkey entries included, in rpm's order.
func (r *Runner) QueryAll(ctx context.Context) ([]string, error) {
	args := append(r.base(), "-qa", "--qf", "%{NEVRA}\n")
	out, err := r.run(ctx, "query", r.bin(), args)
	if err != nil {
		return nil, err
	}
	var list []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			list = append(list, l)
		}
	}
	return list, nil
}

func (r *Runner) run(ctx context.Context, op, bin string, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	text := CleanOutput(out.String())
	if err == nil {
		return text, nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return text, fmt.Errorf("run %s %s: %w", bin, op, err)
	}
	return text, &Error{Op: op, ExitCode: ee.ExitCode(), Problems: ParseProblems(text), Output: text}
}
