// Package rpmpkg builds rpmfleet's RPM packages with nfpm used as a library:
// the binary, its systemd unit, its configuration (marked
// %config(noreplace)), an example configuration, a man page made from the
// binary's own help, and scriptlets that act by $1 the way Fedora's
// %systemd_post, %systemd_preun and %systemd_postun_with_restart do.
//
// Threat model: a device installs these packages as root through dnf or rpm
// and trusts them for their signature alone. When a signing key is given,
// Build signs each package's header and payload with it (an OpenPGP
// signature rpm checks against the keys imported into its database, e.g. by
// dnf from the repository's gpgkey). The private key is read from a file
// path and never copied; unsigned packages are built only when no key is
// given, and say nothing about who made them.
package rpmpkg

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

//go:embed files
var packaging embed.FS

// ErrBadOptions is returned by Build for options it cannot package.
var ErrBadOptions = errors.New("rpmpkg: bad options")

// Options says what to package.
type Options struct {
	// Name is the package: "rpmfleet-agent" or "rpmfleet-server".
	Name string
	// Version and Release of the package. Version must not contain '-'.
	Version, Release string
	// Arch is the RPM architecture: aarch64, armv7hl, armv6hl or x86_64.
	Arch string
	// Binaries are the files installed into /usr/bin, the first being Name's
	// own. A suffix "_linux_ARCH" (as make cross names them) is dropped.
	Binaries []string
	// HelpFrom, if set, is a build of Name's binary that runs on this
	// machine; its "help" and "COMMAND -h" output make the man page.
	HelpFrom string
	// SigningKey, if set, is an armored OpenPGP private key file the package
	// is signed with; Passphrase unlocks it when it is encrypted.
	SigningKey, Passphrase string
	// OutDir receives NAME-VERSION-RELEASE.ARCH.rpm.
	OutDir string
	// MTime is the time stamped on every file; the zero time means
	// SOURCE_DATE_EPOCH, or now.
	MTime time.Time
}

// pkgSpec is what differs between rpmfleet's packages.
type pkgSpec struct {
	summary, description string
	config               []string // files/NAME installed to /etc/rpmfleet/ as %config(noreplace)
	docs                 []string // files/NAME installed to /usr/share/doc/PACKAGE/
}

var specs = map[string]pkgSpec{
	"rpmfleet-agent": {
		summary: "rpmfleet agent: keeps this device patched against RPM security advisories",
		description: "rpmfleet-agent reads the installed packages from the rpm database, learns\n" +
			"which security advisories apply, and applies them under the fleet's policy,\n" +
			"with signed plans from an rpmfleet server or on its own.",
		config: []string{"agent.toml"},
		docs:   []string{"agent.toml.example"},
	},
	"rpmfleet-server": {
		summary: "rpmfleet fleet server: advisories, device inventories and update plans",
		description: "rpmfleet-server imports security advisories, keeps every device's\n" +
			"inventory and exposure, and pushes signed update plans to rpmfleet agents.",
		docs: []string{"server.toml.example"},
	},
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`)

// Build writes the package o describes into o.OutDir and returns its path.
func Build(ctx context.Context, o Options) (string, error) {
	spec, ok := specs[o.Name]
	if !ok {
		return "", fmt.Errorf("%w: unknown package %q", ErrBadOptions, o.Name)
	}
	for field, v := range map[string]string{"version": o.Version, "release": o.Release} {
		if !versionRE.MatchString(v) {
			return "", fmt.Errorf("%w: %s %q: want letters, digits and . _ + ~ ^ only", ErrBadOptions, field, v)
		}
	}
	if o.Arch == "" || len(o.Binaries) == 0 || o.OutDir == "" {
		return "", fmt.Errorf("%w: arch, binaries and output directory are required", ErrBadOptions)
	}

	stage, err := os.MkdirTemp("", "rpmpkg-")
	if err != nil {
		return "", fmt.Errorf("make staging directory: %w", err)
	}
	defer os.RemoveAll(stage)

	unit := o.Name + ".service"
	var contents files.Contents
	add := func(src, dst, typ string, mode os.FileMode) {
		contents = append(contents, &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode}})
	}
	// stageFile copies an embedded file, with @NAME@ and @UNIT@ replaced,
	// into the staging directory.
	stageFile := func(name string) (string, error) {
		b, err := packaging.ReadFile("files/" + name)
		if err != nil {
			return "", fmt.Errorf("read packaging file %s: %w", name, err)
		}
		b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("@NAME@"), []byte(o.Name)), []byte("@UNIT@"), []byte(unit))
		p := filepath.Join(stage, name)
		return p, os.WriteFile(p, b, 0o644)
	}

	for _, b := range o.Binaries {
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("binary: %w", err)
		}
		name := filepath.Base(b)
		if i := strings.Index(name, "_linux_"); i > 0 {
			name = name[:i]
		}
		add(b, "/usr/bin/"+name, "", 0o755)
	}
	unitPath, err := stageFile(unit)
	if err != nil {
		return "", err
	}
	add(unitPath, "/usr/lib/systemd/system/"+unit, "", 0o644)
	if len(spec.config) > 0 {
		add("", "/etc/rpmfleet", files.TypeDir, 0o755)
		for _, c := range spec.config {
			p, err := stageFile(c)
			if err != nil {
				return "", err
			}
			add(p, "/etc/rpmfleet/"+c, files.TypeConfigNoReplace, 0o640)
		}
	}
	if len(spec.docs) > 0 {
		docDir := "/usr/share/doc/" + o.Name
		add("", docDir, files.TypeDir, 0o755)
		for _, d := range spec.docs {
			p, err := stageFile(d)
			if err != nil {
				return "", err
			}
			add(p, docDir+"/"+d, "", 0o644)
		}
	}
	if o.HelpFrom != "" {
		page, err := manPage(ctx, o.Name, o.HelpFrom, o.MTime)
		if err != nil {
			return "", err
		}
		p := filepath.Join(stage, o.Name+".8")
		if err := os.WriteFile(p, page, 0o644); err != nil {
			return "", fmt.Errorf("write man page: %w", err)
		}
		add(p, "/usr/share/man/man8/"+o.Name+".8", "", 0o644)
	}

	var scripts nfpm.Scripts
	for _, s := range []struct {
		file string
		dst  *string
	}{{"postinstall.sh", &scripts.PostInstall}, {"preremove.sh", &scripts.PreRemove}, {"postremove.sh", &scripts.PostRemove}} {
		p, err := stageFile(s.file)
		if err != nil {
			return "", err
		}
		*s.dst = p
	}

	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          o.Name,
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       o.Version,
		VersionSchema: "none",
		Release:       o.Release,
		Maintainer:    "rpmfleet",
		Vendor:        "rpmfleet",
		Homepage:      "https://github.com/rpmfleet/rpmfleet",
		Description:   spec.description,
		MTime:         o.MTime,
		Overridables: nfpm.Overridables{
			// The scriptlets run with /bin/sh.
			Depends:  []string{"/bin/sh"},
			Contents: contents,
			Scripts:  scripts,
			RPM: nfpm.RPM{
				Arch:        o.Arch,
				Summary:     spec.summary,
				Group:       "System Environment/Daemons",
				Compression: "zstd",
				BuildHost:   "rpmfleet",
			},
		},
	})
	if o.SigningKey != "" {
		info.RPM.Signature.KeyFile = o.SigningKey
		info.RPM.Signature.KeyPassphrase = o.Passphrase
	}

	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("make output directory: %w", err)
	}
	out := filepath.Join(o.OutDir, rpm.DefaultRPM.ConventionalFileName(info))
	tmp, err := os.CreateTemp(o.OutDir, ".rpmpkg-*")
	if err != nil {
		return "", fmt.Errorf("create package file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := rpm.DefaultRPM.Package(info, tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("package %s: %w", filepath.Base(out), err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("write %s: %w", out, err)
	}
	return out, nil
}

// manPage runs bin's "help" and each listed command's "-h" and lays the text
// out as a section 8 man page.
func manPage(ctx context.Context, name, bin string, mtime time.Time) ([]byte, error) {
	help, err := runHelp(ctx, bin, "help")
	if err != nil {
		return nil, err
	}
	cmds := Commands(help)
	flags := make([]string, len(cmds))
	for i, c := range cmds {
		if flags[i], err = runHelp(ctx, bin, c, "-h"); err != nil {
			return nil, err
		}
	}
	if mtime.IsZero() {
		mtime = time.Now()
	}
	return ManPage(name, mtime, help, cmds, flags), nil
}

func runHelp(ctx context.Context, bin string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return "", fmt.Errorf("run %s %s: %w", bin, strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// Commands returns the command names listed in an rpmfleet binary's help
// text: the first word of each indented line after "Commands:".
func Commands(help string) []string {
	var cmds []string
	in := false
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(line, "Commands:"):
			in = true
		case in && strings.HasPrefix(line, "  ") && strings.TrimSpace(line) != "":
			cmd := strings.Fields(line)[0]
			if cmd != "help" {
				cmds = append(cmds, cmd)
			}
		case in && strings.TrimSpace(line) == "" && len(cmds) > 0:
			in = false
		}
	}
	return cmds
}

// ManPage lays out a binary's help text and each command's flag text as a
// section 8 man page in roff.
func ManPage(name string, date time.Time, help string, cmds, cmdHelp []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, ".TH %s 8 %q rpmfleet \"System Administration\"\n", strings.ToUpper(name), date.UTC().Format("2006-01-02"))
	summary, _, _ := strings.Cut(help, "\n")
	if _, rest, ok := strings.Cut(summary, ": "); ok {
		summary = rest
	}
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s", name, roff(strings.TrimSuffix(summary, ".")))
	fmt.Fprintf(&b, ".SH SYNOPSIS\n.B %s\n.I COMMAND\n[\\fIflags\\fR]\n", name)
	fmt.Fprintf(&b, ".SH DESCRIPTION\n.nf\n%s.fi\n", roff(help))
	if len(cmds) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for i, c := range cmds {
			fmt.Fprintf(&b, ".SS %s\n.nf\n%s.fi\n", c, roff(cmdHelp[i]))
		}
	}
	if name == "rpmfleet-agent" {
		b.WriteString(".SH FILES\n" +
			".TP\n/etc/rpmfleet/agent.toml\nthe configuration; every key is explained in /usr/share/doc/rpmfleet-agent/agent.toml.example\n" +
			".TP\n/var/lib/rpmfleet\njournal, report queue and downloaded packages\n" +
			".SH SEE ALSO\n.BR rpm (8),\n.BR dnf (8),\n.BR systemctl (1)\n")
	}
	return b.Bytes()
}

// roff escapes text for roff: backslashes, and a leading dot or quote.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	s = strings.Join(lines, "\n")
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}
