package cli

// rpmfleet bundle: the air-gap bundle an agent's spool applies, made from a
// folder of RPM files and an updateinfo.xml.
//
// Threat model. The RPM files and the updateinfo.xml come from outside
// (a mirror, a vendor's download, a USB stick), and the command runs where
// the server's notice key is, so what it reads must not be able to exhaust
// that host or make it sign what it did not check:
//   - the folder's entries must be regular files (a link, a FIFO or a device
//     is refused, naming it; every file is opened O_NOFOLLOW|O_NONBLOCK and
//     fstat'ed); at most bundleMaxFiles of them, each at most
//     bundleMaxFileBytes, bundleMaxTotalBytes in all (the spool's own cap);
//   - an RPM's two headers are read by this file, bounded (at most
//     rpmMaxHeaderTags entries and rpmMaxHeaderData bytes each, every entry
//     inside its header, in order and not overlapping, every string
//     terminated), before github.com/cavaliergopher/rpm decodes them: that
//     library allocates what a header declares and can be driven out of
//     memory or into a panic by a crafted one;
//   - the SHA-256 each plan entry pins is of the bytes copied into the
//     bundle, so a file changed under the command cannot be pinned by one
//     digest and shipped as another;
//   - an RPM without a signature is refused: no agent would install it;
//   - the updateinfo is read by pkg/advisory/updateinfo (bounded, line
//     numbers in its errors), and only the advisories whose packages are
//     in the folder are written back into the bundle.
//
// Signing. The plan is signed with the server's own notice key, read from
// the server's data folder (--data, DATA/notice.key): the command runs on
// the server's host as the server's user, where that key already is, and
// the key never travels. The plan is for one device (--device, its id as
// `rpmfleet devices --json` lists it, or a standalone agent's
// [homeassistant] node_id), valid for --valid (7 days by default, for the
// trip), with a sequence number from the clock as the server's own plans.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/filekind"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// What bundle reads is bounded by these.
const (
	// bundleMaxFiles bounds the RPM files of the folder.
	bundleMaxFiles = 10_000
	// bundleMaxFileBytes bounds one RPM file, bundleMaxTotalBytes all of
	// them: the agent's spool copies at most 4 GiB of a bundle's repo/.
	bundleMaxFileBytes  int64 = 2 << 30
	bundleMaxTotalBytes int64 = 4 << 30
	// bundleMaxUpdateinfo bounds the updateinfo file and what it
	// decompresses to, bundleMaxAdvisories the advisories it holds (an
	// AlmaLinux release's holds a few thousand).
	bundleMaxUpdateinfo int64 = 512 << 20
	bundleMaxAdvisories       = 100_000
	// rpmMaxHeaderTags and rpmMaxHeaderData bound each of an RPM's two
	// headers: rpm's own HEADER_TAGS_MAX is 65,535, and the largest
	// real headers (kernel-devel, texlive) hold a few MiB.
	rpmMaxHeaderTags = 65_535
	rpmMaxHeaderData = 16 << 20
)

// bundleLimits are the bounds above, a variable only so tests can try them
// without writing gigabytes.
type bundleLimits struct {
	files            int
	fileBytes, total int64
	headerTags       int
	headerData       int
}

var defaultBundleLimits = bundleLimits{
	files: bundleMaxFiles, fileBytes: bundleMaxFileBytes, total: bundleMaxTotalBytes,
	headerTags: rpmMaxHeaderTags, headerData: rpmMaxHeaderData,
}

// ErrBundleInput marks a bundle input refused for what it is; the message
// names the file and what was wrong.
var ErrBundleInput = errors.New("bundle: refused input")

func runBundle(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("bundle", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	data := fs.String("data", "", "the server's data folder, whose notice.key signs the plan (run on the server's host, as its user)")
	device := fs.String("device", "", "the device id the plan is for (rpmfleet devices --json), or a standalone agent's node_id")
	rpms := fs.String("rpms", "", "folder of the RPM files: the fixes, and the versions devices run now so they can roll back")
	ui := fs.String("updateinfo", "", "updateinfo.xml (or .xml.gz, .xz, .zst, .bz2) naming the advisories the RPMs fix")
	name := fs.String("name", "", "the bundle's folder name (default bundle-DEVICE-TIME)")
	valid := fs.Duration("valid", 7*24*time.Hour, "how long the signed plan stays valid (at most 720h, what agents accept)")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: rpmfleet bundle --data DATA --device ID --rpms DIR --updateinfo FILE [--name NAME] [--valid 168h] OUTDIR\n\n"+
			"Writes OUTDIR/NAME (plan.json and repo/), the air-gap bundle an agent's spool\n"+
			"(STATE_DIR/spool) applies. OUTDIR may be the spool itself: the bundle appears\n"+
			"there whole, by one rename.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *data == "" || *device == "" || *rpms == "" || *ui == "" || fs.NArg() != 1 {
		fs.Usage()
		return ExitUsage
	}
	if *name == "" {
		*name = fmt.Sprintf("bundle-%s-%s", *device, time.Now().UTC().Format("20060102T150405Z"))
	}
	res, err := makeBundle(ctx, bundleRequest{
		keyFile: filepath.Join(*data, "notice.key"), device: *device, rpms: *rpms, updateinfo: *ui,
		out: fs.Arg(0), name: *name, valid: *valid, now: time.Now,
	}, defaultBundleLimits)
	if err != nil {
		return fail(e, "bundle", err)
	}
	for _, a := range res.plan.Advisories {
		var pkgs []string
		for _, p := range a.Packages {
			evr, _ := rpmver.ParseEVR(p.Fixed) // written by makeBundle
			pkgs = append(pkgs, rpmver.NEVRA{Name: p.Name, EVR: evr, Arch: p.Arch}.String())
		}
		fmt.Fprintf(e.stdout, "%s\t%s\n", esc(a.ID), protocol.Escape(strings.Join(pkgs, " ")))
	}
	for _, s := range res.skipped {
		fmt.Fprintf(e.stderr, "not in the bundle: %s\n", protocol.Escape(s))
	}
	fmt.Fprintf(e.stderr, "bundle %s: %d advisories, %d packages, for device %s until %s\n",
		res.dir, len(res.plan.Advisories), res.files, protocol.Escape(*device), e.fmtTime(res.expires))
	return ExitOK
}

type bundleRequest struct {
	keyFile, device, rpms, updateinfo, out, name string
	valid                                        time.Duration
	now                                          func() time.Time
}

type bundleResult struct {
	dir     string
	plan    protocol.Plan
	files   int
	expires time.Time
	// skipped says which advisories of the updateinfo have none of their
	// packages in the folder.
	skipped []string
}

func makeBundle(ctx context.Context, req bundleRequest, lim bundleLimits) (bundleResult, error) {
	var res bundleResult
	if err := protocol.ValidateName(req.name); err != nil {
		return res, fmt.Errorf("%w: --name: %w", ErrBundleInput, err)
	}
	if req.valid <= 0 || req.valid > notice.DefaultMaxTTL {
		return res, fmt.Errorf("%w: --valid %v: an agent takes a plan valid for at most %v", ErrBundleInput, req.valid, notice.DefaultMaxTTL)
	}
	key, err := readNoticeKey(req.keyFile)
	if err != nil {
		return res, err
	}
	for _, bin := range []string{"createrepo_c", "modifyrepo_c"} {
		if _, err := exec.LookPath(bin); err != nil {
			return res, fmt.Errorf("bundle: %s not found: install createrepo_c (dnf install createrepo_c, apt install createrepo-c)", bin)
		}
	}
	files, err := listRPMs(req.rpms, lim)
	if err != nil {
		return res, err
	}
	advs, err := readUpdateinfo(req.updateinfo)
	if err != nil {
		return res, err
	}

	dest := filepath.Join(req.out, req.name)
	if _, err := os.Lstat(dest); err == nil {
		return res, fmt.Errorf("bundle: %s exists; give another --name", dest)
	}
	tmp, err := os.MkdirTemp(req.out, "."+req.name+".partial-")
	if err != nil {
		return res, fmt.Errorf("bundle: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after the rename; else what was half made
	repo := filepath.Join(tmp, "repo")
	pkgDir := filepath.Join(repo, "Packages")
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		return res, fmt.Errorf("bundle: %w", err)
	}
	// Copy each file, reading its headers and hashing the bytes written.
	sums := map[rpmver.Key]rpmFile{}
	digests := map[rpmver.Key]string{}
	var total int64
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		rf, sum, err := copyRPM(f, pkgDir, lim)
		if err != nil {
			return res, err
		}
		if total += rf.size; total > lim.total {
			return res, fmt.Errorf("%w: %s: the RPM files hold more than %d bytes in all, more than an agent's spool takes", ErrBundleInput, req.rpms, lim.total)
		}
		k := rf.nevra.Key()
		if prev, dup := sums[k]; dup {
			return res, fmt.Errorf("%w: %s and %s are both %s", ErrBundleInput, filepath.Base(prev.path), filepath.Base(rf.path), k)
		}
		sums[k], digests[k] = rf, sum
	}

	// The plan: every advisory with a package in the folder, pinned to it.
	var keep []*advisory.Advisory
	for _, a := range advs {
		pa := protocol.PlanAdvisory{ID: a.ID, Type: string(a.Type), Severity: a.Severity.String(),
			RebootSuggested: a.RebootSuggested, Status: protocol.StatusAffected}
		for _, p := range a.Packages {
			k := rpmver.NEVRA{Name: p.Name, EVR: p.EVR, Arch: p.Arch}.Key()
			rf, ok := sums[k]
			if !ok {
				continue
			}
			pa.Packages = append(pa.Packages, protocol.PlanPackage{Name: p.Name, Arch: p.Arch, Fixed: p.EVR.String(),
				Location: "Packages/" + filepath.Base(rf.path), SHA256: digests[k], Size: rf.size})
		}
		if len(pa.Packages) == 0 {
			res.skipped = append(res.skipped, a.ID+": none of its packages is in "+req.rpms)
			continue
		}
		res.plan.Advisories = append(res.plan.Advisories, pa)
		keep = append(keep, a)
	}
	if len(keep) == 0 {
		return res, fmt.Errorf("%w: no advisory of %s names a package of %s (name, epoch, version, release and arch must match)", ErrBundleInput, req.updateinfo, req.rpms)
	}

	if err := writeRepodata(ctx, tmp, repo, keep); err != nil {
		return res, err
	}
	signer, err := notice.NewSigner(key, notice.SignerOptions{Now: req.now})
	if err != nil {
		return res, fmt.Errorf("bundle: %w", err)
	}
	msg, err := signer.Sign(notice.KindPlan, req.device, res.plan, req.valid)
	if err != nil {
		return res, fmt.Errorf("bundle: %w", err)
	}
	if len(msg) > notice.MaxMessageSize {
		return res, fmt.Errorf("%w: the signed plan is %d bytes, more than the %d an agent reads; bundle fewer advisories", ErrBundleInput, len(msg), notice.MaxMessageSize)
	}
	// plan.json last: the spool takes a bundle only once it holds one.
	if err := os.WriteFile(filepath.Join(tmp, "plan.json"), msg, 0o644); err != nil {
		return res, fmt.Errorf("bundle: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return res, fmt.Errorf("bundle: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return res, fmt.Errorf("bundle: %w", err)
	}
	res.dir, res.files = dest, len(files)
	res.expires = req.now().UTC().Truncate(time.Second).Add(req.valid)
	return res, nil
}

// readNoticeKey reads the server's notice key: the 32-byte seed the server
// wrote on its first start.
func readNoticeKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("bundle: notice key: %w (give the server's data folder with --data, and run as the server's user)", err)
	}
	defer f.Close()
	seed, err := io.ReadAll(io.LimitReader(f, ed25519.SeedSize+1))
	if err != nil {
		return nil, fmt.Errorf("bundle: notice key %s: %w", path, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("bundle: notice key %s: %d bytes, want %d", path, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// readUpdateinfo reads every advisory of an updateinfo file.
func readUpdateinfo(path string) ([]*advisory.Advisory, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundleInput, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("bundle: %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is %s, not a regular file", ErrBundleInput, path, filekind.Name(fi.Mode()))
	}
	if fi.Size() > bundleMaxUpdateinfo {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d an updateinfo may have here", ErrBundleInput, path, fi.Size(), bundleMaxUpdateinfo)
	}
	zr, _, err := compressed.NewReaderMax(f, bundleMaxUpdateinfo)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBundleInput, path, err)
	}
	defer zr.Close()
	d := updateinfo.NewDecoder(zr)
	defer d.Close()
	var advs []*advisory.Advisory
	for {
		a, err := d.Next()
		if errors.Is(err, io.EOF) {
			return advs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBundleInput, path, err)
		}
		if advs = append(advs, a); len(advs) > bundleMaxAdvisories {
			return nil, fmt.Errorf("%w: %s holds more than %d advisories", ErrBundleInput, path, bundleMaxAdvisories)
		}
	}
}

// writeRepodata makes repo/'s repodata with createrepo_c and adds the kept
// advisories as its updateinfo with modifyrepo_c.
func writeRepodata(ctx context.Context, tmp, repo string, advs []*advisory.Advisory) error {
	ui := filepath.Join(tmp, "updateinfo.xml")
	f, err := os.Create(ui)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	w := updateinfo.NewWriter(f)
	for _, a := range advs {
		if err = w.Write(a); err != nil {
			break
		}
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bundle: write updateinfo: %w", err)
	}
	defer os.Remove(ui)
	for _, args := range [][]string{
		{"createrepo_c", "--quiet", "--no-database", "--checksum", "sha256", repo},
		{"modifyrepo_c", "--mdtype=updateinfo", "--compress-type=gz", ui, filepath.Join(repo, "repodata")},
	} {
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("bundle: %s: %w: %s", args[0], err, bytes.TrimSpace(out))
		}
	}
	return nil
}
