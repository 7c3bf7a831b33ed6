package rpmtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrManifest is returned for a manifest line that cannot be read.
var ErrManifest = errors.New("rpmtest: bad manifest")

// manifestColumns are the columns of the image manifests under
// testdata/installed-inventory, extracted from the Red Hat container
// catalog's rpm-manifest.
var manifestColumns = []string{"name", "version", "release", "arch", "nvra", "srpm_nevra", "gpg_keyid"}

// ReadManifest reads a tab-separated image manifest (columns name, version,
// release, arch, nvra, srpm_nevra, gpg_keyid; '#' starts a comment line) into
// packages. The catalog gives no binary epoch; a binary rpm carries its
// spec's epoch, so the epoch is taken from srpm_nevra
// ("openssl-1:3.0.1-23.el9_0.src" gives "1"), kept as written ("0" stays
// "0"). Errors name the file, the line and the field.
func ReadManifest(path string) ([]Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer f.Close()
	pkgs, err := parseManifest(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pkgs, nil
}

func parseManifest(r io.Reader) ([]Package, error) {
	var pkgs []Package
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	header := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if !header {
			if strings.Join(cols, ",") != strings.Join(manifestColumns, ",") {
				return nil, fmt.Errorf("%w: line %d: header is %q, want the columns %s", ErrManifest, n, clip(line), strings.Join(manifestColumns, ", "))
			}
			header = true
			continue
		}
		if len(cols) != len(manifestColumns) {
			return nil, fmt.Errorf("%w: line %d: %d columns, want %d", ErrManifest, n, len(cols), len(manifestColumns))
		}
		p := Package{Name: cols[0], Version: cols[1], Release: cols[2], Arch: cols[3]}
		for i, v := range cols[:4] {
			if v == "" {
				return nil, fmt.Errorf("%w: line %d: empty %s", ErrManifest, n, manifestColumns[i])
			}
		}
		if nvra := p.Name + "-" + p.Version + "-" + p.Release + "." + p.Arch; cols[4] != nvra {
			return nil, fmt.Errorf("%w: line %d: nvra %q does not match name, version, release and arch (%s)", ErrManifest, n, clip(cols[4]), nvra)
		}
		epoch, err := sourceEpoch(cols[5])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: srpm_nevra %q: %v", ErrManifest, n, clip(cols[5]), err)
		}
		p.Epoch = epoch
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrManifest, n, err)
		}
		pkgs = append(pkgs, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if !header {
		return nil, fmt.Errorf("%w: no header line", ErrManifest)
	}
	return pkgs, nil
}

// sourceEpoch returns the epoch of a source NEVRA such as
// "openssl-1:3.0.1-23.el9_0.src", "" when it has none.
func sourceEpoch(nevra string) (string, error) {
	s, ok := strings.CutSuffix(nevra, ".src")
	if !ok {
		return "", errors.New("does not end in .src")
	}
	i := strings.LastIndexByte(s, '-') // before the release
	if i <= 0 {
		return "", errors.New("no release")
	}
	s = s[:i]
	j := strings.LastIndexByte(s, '-') // before the [epoch:]version
	if j <= 0 {
		return "", errors.New("no version")
	}
	epoch, _, ok := strings.Cut(s[j+1:], ":")
	if !ok {
		return "", nil
	}
	if epoch == "" || strings.Trim(epoch, "0123456789") != "" {
		return "", fmt.Errorf("epoch %q is not a number", epoch)
	}
	return epoch, nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
