package verify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// Verdict classes of rpmkeys -K, and the class of our error that must equal it.
const (
	rpmOK      = "OK"         // "digests signatures OK"
	rpmDigests = "DIGESTS OK" // "digests OK": no signature at all
	rpmNoKey   = "NOKEY"      // signed by a key not in the rpmdb
	rpmNotOK   = "NOT OK"     // a digest or signature is BAD
)

// classOf maps our verdict onto rpmkeys' classes.
func classOf(err error) string {
	switch {
	case err == nil:
		return rpmOK
	case errors.Is(err, ErrUnsigned):
		return rpmDigests
	case errors.Is(err, ErrUnknownKey):
		return rpmNoKey
	}
	return rpmNotOK
}

// parseRPMKeys reads the per-item lines of rpmkeys -Kv for one package.
func parseRPMKeys(out string) string {
	signed, bad, nokey := false, false, false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.Contains(line, "Signature, key ID") {
			signed = true
		}
		switch {
		// NOTFOUND: rpm wants a digest or signature over the payload and
		// finds none; -K then says NOT OK.
		case strings.Contains(line, ": BAD"), strings.HasSuffix(line, ": NOTTRUSTED"), strings.HasSuffix(line, ": NOTFOUND"):
			bad = true
		case strings.HasSuffix(line, ": NOKEY"):
			nokey = true
		}
	}
	switch {
	case bad:
		return rpmNotOK
	case nokey:
		return rpmNoKey
	case signed:
		return rpmOK
	}
	return rpmDigests
}

func TestParseRPMKeys(t *testing.T) {
	// Captured from rpm 4.18.0 (rpmkeys -Kv) on the fixtures below.
	for _, tc := range []struct{ name, out, want string }{
		{"signed", "hello.rpm:\n    Header V4 RSA/SHA256 Signature, key ID 1964c5fc: OK\n    Header SHA256 digest: OK\n    Payload SHA256 digest: OK\n", rpmOK},
		{"unsigned", "hello.rpm:\n    Header SHA256 digest: OK\n    Header SHA1 digest: OK\n    Payload SHA256 digest: OK\n    MD5 digest: OK\n", rpmDigests},
		{"nokey", "c5.rpm:\n    Header V3 DSA/SHA1 Signature, key ID e8562897: NOKEY\n    Header SHA1 digest: OK\n", rpmNoKey},
		{"payload not covered", "c7.rpm:\n    Header V3 RSA/SHA256 Signature, key ID f4a80eb5: OK\n    Header SHA1 digest: OK\n    Payload SHA256 digest: NOTFOUND\n    Payload SHA256 ALT digest: NOTFOUND\n    RSA signature: NOTFOUND\n    DSA signature: NOTFOUND\n    MD5 digest: OK\n", rpmNotOK},
		{"corrupted", "c.rpm:\n    Header V4 RSA/SHA256 Signature, key ID 1964c5fc: OK\n    Payload SHA256 digest: BAD (Expected 84a7 != e3b0)\n    RSA signature: NOTFOUND\n", rpmNotOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseRPMKeys(tc.out); got != tc.want {
				t.Errorf("parseRPMKeys = %q, want %q", got, tc.want)
			}
		})
	}
}

// rpmKeys runs the real rpmkeys -Kv on file with keys imported into a fresh
// rpmdb and returns its verdict class and output. A key rpm refuses to import
// (CentOS 5's DSA key) is logged and left out, as it would be on a device.
func rpmKeys(t *testing.T, keys []string, file string) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("rpmkeys"); err != nil {
		t.Fatal("rpmkeys not installed: run make deps")
	}
	db := t.TempDir()
	for _, k := range keys {
		if out, err := exec.Command("rpmkeys", "--dbpath", db, "--import", k).CombinedOutput(); err != nil {
			t.Logf("rpmkeys --import %s refused: %v: %s", filepath.Base(k), err, out)
		}
	}
	out, err := exec.Command("rpmkeys", "--dbpath", db, "-Kv", file).CombinedOutput()
	v := parseRPMKeys(string(out))
	if (err == nil) != (v == rpmOK || v == rpmDigests) {
		t.Fatalf("rpmkeys -Kv %s: exit %v disagrees with its verdict %s:\n%s", file, err, v, out)
	}
	return v, string(out)
}

// rpmQuery asks the real rpm for header values, as a reference for ours.
func rpmQuery(t *testing.T, file, format string) string {
	t.Helper()
	out, err := exec.Command("rpm", "-qp", "--nosignature", "--nodigest", "--qf", format, file).Output()
	if err != nil {
		t.Fatalf("rpm -qp %s: %v", file, err)
	}
	return string(out)
}

func td(name string) string { return filepath.Join("testdata", name) }

func loadKeys(t *testing.T, paths ...string) *Keyring {
	t.Helper()
	kr, err := LoadKeyring(paths...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestFixtures checks real distribution and rpm test-suite packages against
// the real rpmkeys -K: the verdict class must be the same, the kind of
// refusal the one expected, and for accepted packages what we read from the
// header must equal what rpm reads.
func TestFixtures(t *testing.T) {
	rsaTest := td("rpm.org-rsa-2048-test.pub")
	c7 := "centos-release-7-2.1511.el7.centos.2.10.x86_64.rpm"
	c7key := []string{td("RPM-GPG-KEY-CentOS-7")}
	for _, tc := range []struct {
		name   string
		file   string
		tamper func(t *testing.T, path string) // applied to a copy
		keys   []string
		kind   Kind // 0: accepted
		rpm    string
		says   string
		// differs explains why our verdict class may differ from rpm's.
		differs string
	}{
		{name: "v4 RSA header+payload signed", file: "hello-2.0-1.x86_64-signed.rpm", keys: []string{rsaTest}, rpm: rpmOK},
		{name: "v3 RSA signed", file: "hello-2.0-1.x86_64-v3-signed.rpm", keys: []string{rsaTest}, rpm: rpmOK},
		{name: "unsigned", file: "hello-2.0-1.x86_64.rpm", keys: []string{rsaTest}, kind: Unsigned, rpm: rpmDigests, says: "no OpenPGP signature"},
		{name: "corrupted payload", file: "hello-2.0-1.x86_64-corrupted.rpm", keys: []string{rsaTest}, kind: BadDigest, rpm: rpmNotOK, says: "payload SHA256 digest (header tag 5092) mismatch"},
		{name: "key not pinned", file: "hello-2.0-1.x86_64-signed.rpm", keys: []string{td("RPM-GPG-KEY-AlmaLinux-8")}, kind: UnknownKey, rpm: rpmNoKey, says: "key 4344591E1964C5FC is not pinned"},
		{name: "CentOS 6", file: "centos-release-6-0.el6.centos.5.x86_64.rpm", keys: []string{td("RPM-GPG-KEY-CentOS-6")}, rpm: rpmOK},
		{name: "CentOS 7", file: c7, keys: c7key, rpm: rpmOK},
		{name: "EPEL 7 by the CentOS 7 key", file: "epel-release-7-5.noarch.rpm", keys: c7key, rpm: rpmOK},
		{name: "CentOS 7 with only the CentOS 6 key", file: c7, keys: []string{td("RPM-GPG-KEY-CentOS-6")}, kind: UnknownKey, rpm: rpmNoKey},
		// Without a payload digest, the MD5 and the header+payload signature
		// are what catch a changed payload.
		{name: "CentOS 7 payload tampered", file: c7, keys: c7key, kind: BadDigest, rpm: rpmNotOK, says: "MD5 digest (signature header tag 1004) mismatch",
			tamper: func(t *testing.T, p string) { fi, _ := os.Stat(p); flip(t, p, int(fi.Size())-20) }},
		{name: "CentOS 7 header tampered", file: c7, keys: c7key, kind: BadDigest, rpm: rpmNotOK, says: "header SHA1 digest (signature header tag 269) mismatch",
			tamper: func(t *testing.T, p string) { flipText(t, p, "CentOS Linux release file") }},
		{name: "CentOS 7 header+payload signature hidden", file: c7, keys: c7key, kind: Unsigned, rpm: rpmNotOK,
			says:    "the payload is covered by no signature",
			differs: "both refuse; rpm reports the missing payload digest as NOTFOUND, we call the payload unsigned",
			tamper:  func(t *testing.T, p string) { renameSigTag(t, p, sigTagPGP, 1999) }},
		{name: "CentOS 5 DSA/SHA1", file: "centos-release-5-0.0.el5.centos.2.x86_64.rpm", keys: []string{td("RPM-GPG-KEY-CentOS-5")}, kind: BadSignature, rpm: rpmNoKey,
			says:    "hash algorithm refused",
			differs: "both refuse; rpm 4.18 cannot import the DSA key so it says NOKEY, we load it and refuse its DSA/SHA-1 signature"},
		{name: "RHEL 8 v3 RSA by Red Hat release key 2", file: "crypto-policies-20210617-1.gitc776d3e.el8.noarch.rpm", keys: []string{td("RPM-GPG-KEY-redhat9-release")}, rpm: rpmOK},
		{name: "zstd payload unsigned", file: "payload-test-0.1-w3.zstdio.x86_64.rpm", keys: []string{rsaTest}, kind: Unsigned, rpm: rpmDigests},
		{name: "xz payload unsigned", file: "payload-test-0.1-w6.xzdio.x86_64.rpm", keys: []string{rsaTest}, kind: Unsigned, rpm: rpmDigests},
		{name: "gzip payload unsigned", file: "payload-test-0.1-w9.gzdio.x86_64.rpm", keys: []string{rsaTest}, kind: Unsigned, rpm: rpmDigests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := td(tc.file)
			if tc.tamper != nil {
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				file = filepath.Join(t.TempDir(), tc.file)
				if err := os.WriteFile(file, b, 0o644); err != nil {
					t.Fatal(err)
				}
				tc.tamper(t, file)
			}
			rv, out := rpmKeys(t, tc.keys, file)
			if rv != tc.rpm {
				t.Fatalf("rpmkeys verdict %s, want %s:\n%s", rv, tc.rpm, out)
			}
			res, err := File(file, loadKeys(t, tc.keys...), nil)
			checkVerdict(t, err, tc.kind, file)
			if tc.differs == "" && classOf(err) != rv {
				t.Errorf("our verdict %s (%v) differs from rpmkeys' %s:\n%s", classOf(err), err, rv, out)
			}
			if tc.differs != "" {
				t.Logf("verdict classes: ours %s, rpm's %s: %s", classOf(err), rv, tc.differs)
			}
			if err != nil && !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if err == nil {
				checkAgainstRPM(t, res, file)
			}
		})
	}
}

// flipText inverts a byte inside the first occurrence of text in the file.
func flipText(t *testing.T, path, text string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(text))
	if i < 0 {
		t.Fatalf("%q not found in %s", text, path)
	}
	flip(t, path, i+len(text)/2)
}

// renameSigTag renumbers a signature header tag, hiding it from rpm and us.
func renameSigTag(t *testing.T, path string, from, to int32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.BigEndian.Uint32(b[leadSize+8:]))
	for i := range n {
		e := b[leadSize+headerPreamble+i*indexEntrySize:]
		if int32(binary.BigEndian.Uint32(e)) == from {
			binary.BigEndian.PutUint32(e, uint32(to))
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s has no signature tag %d", path, from)
}

// checkVerdict asserts err is of kind want (0: no error), names the file and
// matches its sentinel.
func checkVerdict(t *testing.T, err error, want Kind, file string) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("File(%s) = %v, want accepted", file, err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("File(%s) = %v, want *Error of kind %v", file, err, want)
	}
	if e.Kind != want {
		t.Fatalf("File(%s) kind %v (%v), want %v", file, e.Kind, err, want)
	}
	if !errors.Is(err, sentinels[want]) {
		t.Errorf("errors.Is(err, %v) = false", sentinels[want])
	}
	if e.Path != file || !strings.Contains(err.Error(), file) {
		t.Errorf("error %q does not name the file %s", err, file)
	}
	t.Logf("refused as expected: %v", err)
}

// checkAgainstRPM compares what File read with what rpm reads.
func checkAgainstRPM(t *testing.T, res *Result, file string) {
	t.Helper()
	got := res.Name + " " + res.EVR.String() + " " + res.Arch + " " + res.PayloadDigest
	want := rpmQuery(t, file, "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{ARCH} %|PAYLOADDIGEST?{%{PAYLOADDIGEST}}:{}|")
	if got != want {
		t.Errorf("read %q, rpm reads %q", got, want)
	}
	// Old packages (CentOS 6, 7) carry no header SHA-256; rpm prints (none).
	if want := rpmQuery(t, file, "%{SHA256HEADER}"); want != "(none)" && res.HeaderSHA256 != want {
		t.Errorf("HeaderSHA256 %s, rpm reads %s", res.HeaderSHA256, want)
	}
	if fi, err := os.Stat(file); err != nil || res.Size != fi.Size() {
		t.Errorf("Size %d, file has %v", res.Size, fi)
	}
	if len(res.Signatures) == 0 {
		t.Error("accepted with no signature listed")
	}
	for _, s := range res.Signatures {
		t.Logf("signature: %+v", s)
	}
}

// TestPlan checks the comparison with the planned NEVRA on a genuine package.
func TestPlan(t *testing.T) {
	kr := loadKeys(t, td("rpm.org-rsa-2048-test.pub"))
	file := td("hello-2.0-1.x86_64-signed.rpm")
	for _, tc := range []struct {
		name string
		want rpmver.NEVRA
		kind Kind
		says string
	}{
		{"as planned", rpmver.NEVRA{Name: "hello", EVR: rpmver.EVR{Version: "2.0", Release: "1"}, Arch: "x86_64"}, 0, ""},
		{"epoch 0 written out", rpmver.NEVRA{Name: "hello", EVR: rpmver.EVR{Epoch: "0", Version: "2.0", Release: "1"}, Arch: "x86_64"}, 0, ""},
		{"other release", rpmver.NEVRA{Name: "hello", EVR: rpmver.EVR{Version: "2.0", Release: "2"}, Arch: "x86_64"}, Mismatch, `release is "1", the plan says "2"`},
		{"other epoch", rpmver.NEVRA{Name: "hello", EVR: rpmver.EVR{Epoch: "1", Version: "2.0", Release: "1"}, Arch: "x86_64"}, Mismatch, `epoch is "0", the plan says "1"`},
		{"other arch", rpmver.NEVRA{Name: "hello", EVR: rpmver.EVR{Version: "2.0", Release: "1"}, Arch: "aarch64"}, Mismatch, `arch is "x86_64", the plan says "aarch64"`},
		{"other name", rpmver.NEVRA{Name: "hello-libs", EVR: rpmver.EVR{Version: "2.0", Release: "1"}, Arch: "x86_64"}, Mismatch, `name is "hello"`},
		{"release compared as a string", rpmver.NEVRA{Name: "hello", EVR: rpmver.EVR{Version: "2.0", Release: "01"}, Arch: "x86_64"}, Mismatch, `release is "1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			_, err := File(file, kr, &want)
			checkVerdict(t, err, tc.kind, file)
			if err != nil && !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func TestLoadKeyring(t *testing.T) {
	t.Run("two armored blocks in one file", func(t *testing.T) {
		kr := loadKeys(t, td("RPM-GPG-KEY-AlmaLinux-8"))
		got := strings.Join(kr.Fingerprints(), " ")
		want := "5E9B8F5617B5066CE92057C3488FCF7C3ABB34F8 BC5EDDCADF502C077F1582882AE81E8ACED7258B"
		if got != want {
			t.Errorf("fingerprints %s, want %s", got, want)
		}
	})
	t.Run("two keys from two files", func(t *testing.T) {
		kr := loadKeys(t, td("RPM-GPG-KEY-CentOS-6"), td("RPM-GPG-KEY-redhat9-release"))
		if n := len(kr.Fingerprints()); n != 3 {
			t.Errorf("%d keys, want 3: %v", n, kr.Fingerprints())
		}
	})
	if _, err := LoadKeyring(); !errors.Is(err, ErrNoKeys) {
		t.Errorf("LoadKeyring() = %v, want ErrNoKeys", err)
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ name, path, says string }{
		{"missing file", filepath.Join(dir, "nope"), "no such file"},
		{"no key block", write("empty", "not a key\n"), "no \"-----BEGIN PGP PUBLIC KEY BLOCK-----\" block"},
		{"broken armor", write("broken", "\n\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"), "armored block 1 at line 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKeyring(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("LoadKeyring(%s) = %v, want an error naming the file and saying %q", tc.path, err, tc.says)
			}
		})
	}
}

// TestMalformed cuts and breaks a real package at each structure and checks
// that the error says where.
func TestMalformed(t *testing.T) {
	orig, err := os.ReadFile(td("hello-2.0-1.x86_64-signed.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	kr := loadKeys(t, td("rpm.org-rsa-2048-test.pub"))
	poke := func(off int, b ...byte) []byte {
		c := append([]byte(nil), orig...)
		copy(c[off:], b)
		return c
	}
	for _, tc := range []struct {
		name string
		data []byte
		kind Kind
		says string
	}{
		{"empty", nil, Malformed, "lead: file shorter"},
		{"not an rpm", []byte(strings.Repeat("x", 200)), Malformed, "not an RPM package"},
		{"cut in the lead", orig[:50], Malformed, "lead"},
		{"cut in the signature header", orig[:150], Malformed, "signature header at offset 96: claims"},
		{"signature header magic", poke(96, 0, 0, 0), Malformed, "signature header at offset 96: magic"},
		{"huge index count", poke(104, 0xff, 0xff, 0xff, 0xff), Malformed, "index count 4294967295 out of range"},
		{"huge data size", poke(108, 0x7f, 0xff, 0xff, 0xff), Malformed, "data size 2147483647 exceeds"},
		{"cut in the payload", orig[:len(orig)-100], BadDigest, "payload SHA256 digest"},
		{"entry offset out of range", poke(112+8, 0x7f, 0, 0, 0), Malformed, "index entry 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.rpm")
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := File(p, kr, nil)
			checkVerdict(t, err, tc.kind, p)
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
	if _, err := File(filepath.Join(t.TempDir(), "missing.rpm"), kr, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
}
