package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cavaliergopher/rpm"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
	"github.com/rpmfleet/rpmfleet/pkg/notice"
	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// bundleRPMs are demo-lib 1.0 (what a device runs) and 1.1 (the fix),
// built with rpmbuild and signed with rpmsign once per test binary; unsigned
// is a third build left unsigned.
var bundleRPMs = sync.OnceValues(func() (map[string]string, error) {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	dir, err := os.MkdirTemp("", "rpmfleet-bundle-rpms")
	if err != nil {
		return nil, err
	}
	pkgs := []rpmtest.Package{
		{Name: "demo-lib", Version: "1.0", Release: "1.el9", Arch: arch, Files: map[string]string{"/usr/lib/demo/lib.txt": "1.0\n"}},
		{Name: "demo-lib", Version: "1.1", Release: "1.el9", Arch: arch, Files: map[string]string{"/usr/lib/demo/lib.txt": "1.1\n"}},
		{Name: "demo-unsigned", Version: "1.1", Release: "1.el9", Arch: arch},
	}
	paths, err := rpmtest.Build(dir, pkgs...)
	if err != nil {
		return nil, err
	}
	key, cleanup, err := rpmtest.GenerateKey(rpmtest.KeyEd25519, "rpmfleet-bundle-test")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := rpmtest.Sign(key, paths[0], paths[1]); err != nil {
		return nil, err
	}
	return map[string]string{"old": paths[0], "fix": paths[1], "unsigned": paths[2], "arch": arch}, nil
})

// bundleInput is a folder of RPMs, an updateinfo naming the fix (and an
// advisory whose package is not there), and a server data folder with its
// notice key.
type bundleInput struct {
	req  bundleRequest
	pub  ed25519.PublicKey
	rpms map[string]string
}

func newBundleInput(t *testing.T, files ...string) *bundleInput {
	t.Helper()
	rpms, err := bundleRPMs()
	if err != nil {
		t.Fatalf("build rpms (run make deps): %v", err)
	}
	dir := t.TempDir()
	in := &bundleInput{rpms: rpms}
	src := filepath.Join(dir, "rpms")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if files == nil {
		files = []string{"old", "fix"}
	}
	for _, f := range files {
		b, err := os.ReadFile(rpms[f])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, filepath.Base(rpms[f])), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	arch := rpms["arch"]
	advs := []*advisory.Advisory{
		{ID: "ALSA-2026:0001", Type: advisory.Security, Severity: advisory.Important, Title: "demo-lib fix",
			Issued:   time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
			Packages: []advisory.Package{{Name: "demo-lib", EVR: rpmver.MustParseEVR("1.1-1.el9"), Arch: arch, Filename: "demo-lib-1.1-1.el9." + arch + ".rpm"}}},
		{ID: "ALSA-2026:0002", Type: advisory.Security, Severity: advisory.Low, Title: "not in the folder",
			Issued:   time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC),
			Packages: []advisory.Package{{Name: "openssl", EVR: rpmver.MustParseEVR("1:3.0.7-16.el9_2"), Arch: arch}}},
	}
	var ui bytes.Buffer
	w := updateinfo.NewWriter(&ui)
	for _, a := range advs {
		if err := w.Write(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	uiPath := filepath.Join(dir, "updateinfo.xml")
	if err := os.WriteFile(uiPath, ui.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	if err := os.WriteFile(filepath.Join(data, "notice.key"), seed, 0o600); err != nil {
		t.Fatal(err)
	}
	in.pub = ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	in.req = bundleRequest{keyFile: filepath.Join(data, "notice.key"), device: "dev-1", rpms: src, updateinfo: uiPath,
		out: out, name: "fix-1", valid: time.Hour, now: time.Now}
	return in
}

// TestBundle: the bundle holds the fix and the version to roll back to,
// a repository the agent's own reader reads (primary and an updateinfo of
// only the advisory whose package is there), and a plan signed for the
// device with the server's key that pins each fix's SHA-256; nothing half
// made is left beside it.
func TestBundle(t *testing.T) {
	t.Parallel()
	in := newBundleInput(t)
	res, err := makeBundle(context.Background(), in.req, defaultBundleLimits)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(in.req.out, "fix-1")
	if res.dir != dir || res.files != 2 {
		t.Errorf("result dir %s, %d files; want %s, 2", res.dir, res.files, dir)
	}
	if len(res.skipped) != 1 || !strings.HasPrefix(res.skipped[0], "ALSA-2026:0002: ") {
		t.Errorf("skipped = %q, want ALSA-2026:0002", res.skipped)
	}
	ents, _ := os.ReadDir(in.req.out)
	if len(ents) != 1 || ents[0].Name() != "fix-1" {
		t.Errorf("out folder holds %v, want only fix-1", ents)
	}

	msg, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := notice.NewVerifier(notice.VerifierOptions{Keys: []ed25519.PublicKey{in.pub}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(msg, notice.KindPlan, "dev-2"); !errors.Is(err, notice.ErrWrongDevice) {
		t.Errorf("plan verified for another device: %v, want ErrWrongDevice", err)
	}
	n, err := v.Verify(msg, notice.KindPlan, "dev-1")
	if err != nil {
		t.Fatalf("plan does not verify for its device: %v", err)
	}
	if d := n.Expires.Sub(n.Issued); d != time.Hour {
		t.Errorf("plan valid for %v, want 1h", d)
	}
	var plan protocol.Plan
	if err := json.Unmarshal(n.Body, &plan); err != nil {
		t.Fatal(err)
	}
	fix, err := os.ReadFile(in.rpms["fix"])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(fix)
	arch := in.rpms["arch"]
	want := protocol.PlanAdvisory{ID: "ALSA-2026:0001", Type: "security", Severity: "Important", Status: protocol.StatusAffected,
		Packages: []protocol.PlanPackage{{Name: "demo-lib", Arch: arch, Fixed: "0:1.1-1.el9",
			Location: "Packages/demo-lib-1.1-1.el9." + arch + ".rpm", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(fix))}}}
	if len(plan.Advisories) != 1 || !equalJSON(t, plan.Advisories[0], want) {
		t.Errorf("plan = %+v\nwant one advisory %+v", plan.Advisories, want)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "repo", want.Packages[0].Location)); err != nil || !bytes.Equal(got, fix) {
		t.Errorf("the pinned file in the bundle differs from the fix (%v)", err)
	}

	// The repository reads with the agent's reader.
	r, err := repo.New(filepath.Join(dir, "repo"), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := r.Primary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		p, err := pr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, p.NEVRA())
	}
	pr.Close()
	wantNames := []string{"demo-lib-0:1.0-1.el9." + arch, "demo-lib-0:1.1-1.el9." + arch}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Errorf("primary.xml lists %q, want %q", names, wantNames)
	}
	u, err := r.Updateinfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		a, err := u.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	u.Close()
	if len(ids) != 1 || ids[0] != "ALSA-2026:0001" {
		t.Errorf("the bundle's updateinfo holds %q, want only ALSA-2026:0001", ids)
	}

	// The same name again is refused, the bundle left as it was.
	if _, err := makeBundle(context.Background(), in.req, defaultBundleLimits); err == nil || !strings.Contains(err.Error(), "fix-1 exists") {
		t.Errorf("a second bundle of the same name: %v, want exists", err)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestBundleRefuses: every bad input is refused with the file named and
// what was wrong, and leaves nothing in the output folder.
func TestBundleRefuses(t *testing.T) {
	t.Parallel()
	// rewrite changes the copy of the fix in the input folder.
	rewrite := func(change func(t *testing.T, b []byte) []byte) func(t *testing.T, in *bundleInput) {
		return func(t *testing.T, in *bundleInput) {
			p := filepath.Join(in.req.rpms, filepath.Base(in.rpms["fix"]))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, change(t, b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// mainHeader is the offset of the main header's intro.
	mainHeader := func(b []byte) int {
		il := int(binary.BigEndian.Uint32(b[96+8:]))
		dl := int(binary.BigEndian.Uint32(b[96+12:]))
		n := 16 + il*16 + dl
		return 96 + n + (8-n%8)%8
	}
	tests := []struct {
		name   string
		files  []string
		lim    func(*bundleLimits)
		damage func(t *testing.T, in *bundleInput)
		// want is what the error must say; input says it is ErrBundleInput.
		want  []string
		input bool
	}{
		{name: "unsigned rpm", files: []string{"unsigned"}, want: []string{"demo-unsigned-1.1-1.el9.", "is not signed"}, input: true},
		{name: "huge signature header", damage: rewrite(func(t *testing.T, b []byte) []byte {
			binary.BigEndian.PutUint32(b[96+12:], 1<<30)
			return b
		}), want: []string{"demo-lib-1.1-1.el9.", "signature header declares 1073741824 bytes of data, more than the 16777216 allowed"}, input: true},
		{name: "huge header index", damage: rewrite(func(t *testing.T, b []byte) []byte {
			binary.BigEndian.PutUint32(b[mainHeader(b)+8:], 1_000_000)
			return b
		}), want: []string{"demo-lib-1.1-1.el9.", "header declares 1000000 entries, more than the 65535 allowed"}, input: true},
		{name: "overlapping header entries", damage: rewrite(func(t *testing.T, b []byte) []byte {
			h := mainHeader(b) + 16
			copy(b[h+2*16+8:h+2*16+12], b[h+16+8:h+16+12]) // entry 2 at entry 1's offset
			return b
		}), want: []string{"demo-lib-1.1-1.el9.", "header entry 2", "overlaps the entry before it"}, input: true},
		{name: "truncated rpm", damage: rewrite(func(t *testing.T, b []byte) []byte { return b[:200] }),
			want: []string{"demo-lib-1.1-1.el9.", "unexpected EOF"}, input: true},
		{name: "not an rpm", damage: rewrite(func(t *testing.T, b []byte) []byte {
			return []byte("<html>mirror error page</html>" + strings.Repeat(" ", 100))
		}),
			want: []string{"demo-lib-1.1-1.el9.", "not an RPM file"}, input: true},
		{name: "too many files", lim: func(l *bundleLimits) { l.files = 1 }, want: []string{"holds more than 1 RPM files"}, input: true},
		{name: "file too large", lim: func(l *bundleLimits) { l.fileBytes = 1000 }, want: []string{"demo-lib-1.0-1.el9.", "more than the 1000 an RPM may have here"}, input: true},
		{name: "too many bytes in all", lim: func(l *bundleLimits) { l.total = 1000 }, want: []string{"more than 1000 bytes in all"}, input: true},
		{name: "rpm is a symlink", damage: func(t *testing.T, in *bundleInput) {
			p := filepath.Join(in.req.rpms, filepath.Base(in.rpms["fix"]))
			os.Remove(p)
			if err := os.Symlink(in.rpms["fix"], p); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"demo-lib-1.1-1.el9.", "is a symbolic link, not a regular file"}, input: true},
		{name: "rpm is a FIFO", damage: func(t *testing.T, in *bundleInput) {
			p := filepath.Join(in.req.rpms, filepath.Base(in.rpms["fix"]))
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"demo-lib-1.1-1.el9.", "is a named pipe (FIFO), not a regular file"}, input: true},
		{name: "no advisory names a package of the folder", files: []string{"old"}, want: []string{"no advisory of", "names a package of"}, input: true},
		{name: "updateinfo broken", damage: func(t *testing.T, in *bundleInput) {
			if err := os.WriteFile(in.req.updateinfo, []byte("<updates><update><id>x</update>"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"updateinfo.xml", "line 1"}, input: true},
		{name: "valid longer than agents accept", damage: func(t *testing.T, in *bundleInput) { in.req.valid = 31 * 24 * time.Hour },
			want: []string{"--valid 744h0m0s: an agent takes a plan valid for at most 720h0m0s"}, input: true},
		{name: "bad bundle name", damage: func(t *testing.T, in *bundleInput) { in.req.name = "../escape" },
			want: []string{"--name"}, input: true},
		{name: "no notice key", damage: func(t *testing.T, in *bundleInput) { in.req.keyFile = filepath.Join(t.TempDir(), "notice.key") },
			want: []string{"notice key", "no such file", "--data"}},
		{name: "notice key of the wrong size", damage: func(t *testing.T, in *bundleInput) {
			if err := os.WriteFile(in.req.keyFile, []byte("short"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"notice key", "5 bytes, want 32"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := newBundleInput(t, tt.files...)
			if tt.damage != nil {
				tt.damage(t, in)
			}
			lim := defaultBundleLimits
			if tt.lim != nil {
				tt.lim(&lim)
			}
			_, err := makeBundle(context.Background(), in.req, lim)
			if err == nil {
				t.Fatal("bundle made, want a refusal")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to say %q", err, w)
				}
			}
			if tt.input != errors.Is(err, ErrBundleInput) {
				t.Errorf("errors.Is(err, ErrBundleInput) = %v, want %v", !tt.input, tt.input)
			}
			if ents, _ := os.ReadDir(in.req.out); len(ents) != 0 {
				t.Errorf("the output folder holds %v after a refusal", ents)
			}
		})
	}
}

// FuzzReadRPMHeaders: no input panics the bounded reader, and whatever it
// passes, github.com/cavaliergopher/rpm decodes without a panic, and the
// fields bundle reads come out.
func FuzzReadRPMHeaders(f *testing.F) {
	// Seeds: real RPMs of the fixtures (building some here would cost
	// every fuzz worker an rpmbuild and a gpg key).
	for _, p := range fixtureRPMs(f) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b[:min(len(b), 16<<10)])
		}
	}
	f.Add([]byte{0xed, 0xab, 0xee, 0xdb})
	lim := defaultBundleLimits
	lim.headerData = 1 << 20
	f.Fuzz(func(t *testing.T, b []byte) {
		head, err := readRPMHeaders(bytes.NewReader(b), lim)
		if err != nil {
			return
		}
		p, err := rpm.Read(bytes.NewReader(head))
		if err != nil {
			return
		}
		_ = p.Name() + p.Version() + p.Release() + p.Architecture() + p.SourceRPM()
		_ = p.Epoch()
		_ = signed(p)
	})
}

func fixtureRPMs(tb testing.TB) []string {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(fixtures.Path(tb, "rpm-packages"), "*", "*.rpm"))
	if err != nil || len(paths) < 10 {
		tb.Fatalf("fixture rpms: %d, %v", len(paths), err)
	}
	return paths
}

// TestBundleReadsRealRPMs: the bounded header reader passes every real
// RPM of the fixtures (CentOS 5 to 7, RHEL 8, rpm's own test packages, v3
// and v4 signatures), and what bundle reads from them is what rpm says:
// the NEVRA as %{NEVRA}, and whether it carries a signature.
func TestBundleReadsRealRPMs(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex // guards signatures
	signatures := map[string]int{}
	t.Cleanup(func() {
		if signatures["0"] == 0 || signatures["1"] == 0 {
			t.Errorf("fixture rpms signed/unsigned: %v; want both kinds read", signatures)
		}
	})
	for _, path := range fixtureRPMs(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			out, err := exec.Command("rpm", "-qp", "--nosignature", "--nodigest", "--qf",
				"%{NEVRA}\t%|SIGPGP?{1}:{%|RSAHEADER?{1}:{%|DSAHEADER?{1}:{%|SIGGPG?{1}:{0}|}|}|}|", path).Output()
			if err != nil {
				t.Fatalf("rpm -qp: %v", err)
			}
			want := string(out)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			head, err := readRPMHeaders(f, defaultBundleLimits)
			if err != nil {
				t.Fatalf("refused a real RPM: %v", err)
			}
			p, err := rpm.Read(bytes.NewReader(head))
			if err != nil {
				t.Fatal(err)
			}
			n := packageNEVRA(p)
			s := "0"
			if signed(p) {
				s = "1"
			}
			// rpm's %{NEVRA} writes the epoch when the header has one,
			// even 0: String's form then, Short's when it has none.
			got := n.Short()
			if n.Epoch != "" {
				got = n.String()
			}
			if got += "\t" + s; got != want {
				t.Errorf("read %q, rpm says %q", got, want)
			}
			mu.Lock()
			signatures[s]++
			mu.Unlock()
		})
	}
}
