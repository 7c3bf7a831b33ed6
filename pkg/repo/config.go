package repo

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/rpmfleet/rpmfleet/pkg/inventory"
)

// Config is one repository as a yum/dnf .repo file (ROOT/etc/yum.repos.d)
// defines it, after variable substitution.
type Config struct {
	ID   string
	Name string
	// BaseURLs are tried in order. Empty when the repository is found
	// through a mirror list or metalink only.
	BaseURLs   []string
	MirrorList string
	Metalink   string
	// GPGKeys are the URLs of the keys (usually file:///etc/pki/rpm-gpg/...).
	GPGKeys []string
	// GPGCheck: packages must be signed; RepoGPGCheck: repomd.xml must be.
	GPGCheck     bool
	RepoGPGCheck bool
	Enabled      bool
	// File and Line say where the section starts.
	File string
	Line int
}

// CacheName names the repository's metadata cache folder (Options.CacheDir
// under a common parent): its id when that is a plain dnf repository id,
// and a digest of where its metadata comes from, so two roots whose
// "baseos" differ (AlmaLinux 8 and 9) do not share, and prune, one cache.
func (c Config) CacheName() string {
	h := sha256.New()
	for _, s := range append(append([]string{}, c.BaseURLs...), "mirrorlist="+c.MirrorList, "metalink="+c.Metalink) {
		h.Write([]byte(s + "\n"))
	}
	id := c.ID
	if !repoIDRe.MatchString(id) || strings.Trim(id, ".") == "" {
		id = "repo"
	}
	return id + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// repoIDRe is what dnf accepts as a repository id.
var repoIDRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// KeyFiles returns the files of the repository's gpgkey= URLs, inside
// root. Only file:// URLs name keys that can be pinned; any other is an
// error naming the line.
func (c Config) KeyFiles(root string) ([]string, error) {
	var out []string
	for _, k := range c.GPGKeys {
		p, ok := strings.CutPrefix(k, "file://")
		if !ok {
			return nil, fmt.Errorf("%w: %s: line %d: repository %q: gpgkey %q is not a file:// URL; only local keys can be pinned", ErrRepoConfig, c.File, c.Line, c.ID, k)
		}
		out = append(out, filepath.Join(root, filepath.Clean("/"+p)))
	}
	return out, nil
}

// ErrRepoConfig is returned (wrapped) for a .repo file dnf would not read.
var ErrRepoConfig = errors.New("repo: bad .repo file")

// ParseConfig reads the repositories of one .repo file, as dnf does:
// "key=value" lines in [id] sections, values continued on lines that start
// with white space, comments starting with # or ;, lists (baseurl, gpgkey)
// split on white space and commas, booleans 1/0, yes/no, true/false,
// on/off. $var and ${var} are replaced from vars (releasever, basearch,
// and those of /etc/dnf/vars); unknown variables stay as written, as dnf
// leaves them. enabled defaults to true, gpgcheck and repo_gpgcheck to
// false, name to the id. name is the file name used in errors.
func ParseConfig(r io.Reader, name string, vars map[string]string) ([]Config, error) {
	type entry struct {
		value string
		line  int
	}
	type section struct {
		id   string
		line int
		keys map[string]*entry
	}
	var sections []*section
	var cur *section
	var last *entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	errorf := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: %s: line %d: %s", ErrRepoConfig, name, line, fmt.Sprintf(format, args...))
	}
	for n := 1; sc.Scan(); n++ {
		raw := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimLeft(raw, " \t")
		switch {
		case trimmed == "":
			last = nil
			continue
		case trimmed[0] == '#' || trimmed[0] == ';':
			continue
		case raw[0] == ' ' || raw[0] == '\t':
			if last == nil {
				return nil, errorf(n, "continuation line %q without a key before it", trimmed)
			}
			last.value += "\n" + trimmed
			continue
		}
		last = nil
		if trimmed[0] == '[' {
			if !strings.HasSuffix(trimmed, "]") {
				return nil, errorf(n, "section header %q without ]", trimmed)
			}
			id := strings.TrimSpace(trimmed[1 : len(trimmed)-1])
			if id == "" {
				return nil, errorf(n, "empty section name")
			}
			for _, s := range sections {
				if s.id == id {
					return nil, errorf(n, "repository %q defined twice (first at line %d)", id, s.line)
				}
			}
			cur = &section{id: id, line: n, keys: map[string]*entry{}}
			sections = append(sections, cur)
			continue
		}
		key, value, ok := strings.Cut(trimmed, "=")
		if !ok {
			return nil, errorf(n, "%q is not key=value", trimmed)
		}
		if cur == nil {
			return nil, errorf(n, "key %q outside a [section]", strings.TrimSpace(key))
		}
		e := &entry{value: strings.TrimSpace(value), line: n}
		cur.keys[strings.TrimSpace(key)] = e
		last = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("repo: %s: %w", name, err)
	}

	var out []Config
	for _, s := range sections {
		if s.id == "main" {
			continue // dnf.conf's [main], when a .repo file carries one
		}
		c := Config{ID: s.id, Name: s.id, Enabled: true, File: name, Line: s.line}
		get := func(k string) (string, int, bool) {
			e, ok := s.keys[k]
			if !ok {
				return "", 0, false
			}
			return expand(e.value, vars), e.line, true
		}
		if v, _, ok := get("name"); ok && v != "" {
			c.Name = v
		}
		if v, _, ok := get("baseurl"); ok {
			c.BaseURLs = splitList(v)
		}
		c.MirrorList, _, _ = get("mirrorlist")
		c.Metalink, _, _ = get("metalink")
		if v, _, ok := get("gpgkey"); ok {
			c.GPGKeys = splitList(v)
		}
		for _, b := range []struct {
			key string
			to  *bool
		}{{"enabled", &c.Enabled}, {"gpgcheck", &c.GPGCheck}, {"repo_gpgcheck", &c.RepoGPGCheck}} {
			v, line, ok := get(b.key)
			if !ok {
				continue
			}
			val, err := parseBool(v)
			if err != nil {
				return nil, errorf(line, "repository %q: %s=%q: %v", s.id, b.key, v, err)
			}
			*b.to = val
		}
		out = append(out, c)
	}
	return out, nil
}

// LoadConfigDir reads every *.repo file in dir (ROOT/etc/yum.repos.d), in
// name order, as dnf does. A repository id defined in two files is an
// error.
func LoadConfigDir(dir string, vars map[string]string) ([]Config, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.repo"))
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	sort.Strings(paths)
	var out []Config
	seen := map[string]string{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("repo: %w", err)
		}
		cs, err := ParseConfig(f, p, vars)
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if first, dup := seen[c.ID]; dup {
				return nil, fmt.Errorf("%w: %s: line %d: repository %q already defined in %s", ErrRepoConfig, p, c.Line, c.ID, first)
			}
			seen[c.ID] = p
		}
		out = append(out, cs...)
	}
	return out, nil
}

// ReadVars reads dnf's variable files (ROOT/etc/dnf/vars): each file's
// name is a variable, its first line the value. A missing directory is no
// variables. Only regular files are read, and only their first 4 KiB.
func ReadVars(dir string) (map[string]string, error) {
	vars := map[string]string{}
	if err := readVarsInto(vars, dir); err != nil {
		return nil, err
	}
	return vars, nil
}

func readVarsInto(vars map[string]string, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !isVarName(e.Name()) {
			continue
		}
		// As dnf, a link to a file counts; unlike a plain open, a FIFO
		// planted here cannot block: opened non-blocking, then only a
		// regular file is read.
		f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // a dangling link, which dnf skips too
			}
			return fmt.Errorf("repo: %w", err)
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(f, 4096))
		f.Close()
		if err != nil {
			return fmt.Errorf("repo: %w", err)
		}
		line, _, _ := strings.Cut(string(raw), "\n")
		vars[e.Name()] = strings.TrimSpace(line)
	}
	return nil
}

// SystemVars returns the variables dnf substitutes in the .repo files of
// the device at root: those of ROOT/etc/yum/vars and ROOT/etc/dnf/vars
// (the latter winning, as in dnf's varsdir order), which is where
// $infra and $contentdir come from on AlmaLinux; then, unless a file set
// them, $releasever from os-release's VERSION_ID major ("9" for 9.4, the
// system-release(releasever) AlmaLinux's release package provides), and
// $arch and $basearch of this machine (x86_64, aarch64; armv7hl and
// armhfp on 32-bit ARM).
func SystemVars(root string) (map[string]string, error) {
	vars := map[string]string{}
	for _, d := range []string{"etc/yum/vars", "etc/dnf/vars"} {
		if err := readVarsInto(vars, filepath.Join(root, d)); err != nil {
			return nil, err
		}
	}
	if _, ok := vars["releasever"]; !ok {
		if rel, err := releaseVer(root); err == nil && rel != "" {
			vars["releasever"] = rel
		}
	}
	arch, basearch := machineArch()
	if _, ok := vars["arch"]; !ok {
		vars["arch"] = arch
	}
	if _, ok := vars["basearch"]; !ok {
		vars["basearch"] = basearch
	}
	return vars, nil
}

// LoadSystem reads the repositories of the device at root:
// ROOT/etc/yum.repos.d with SystemVars(root). It returns every
// repository, enabled or not, and the variables, which NewFromConfig
// needs (Options.Vars) for the URLs of mirror lists.
func LoadSystem(root string) ([]Config, map[string]string, error) {
	vars, err := SystemVars(root)
	if err != nil {
		return nil, nil, err
	}
	cfgs, err := LoadConfigDir(filepath.Join(root, "etc/yum.repos.d"), vars)
	if err != nil {
		return nil, nil, err
	}
	return cfgs, vars, nil
}

func releaseVer(root string) (string, error) {
	var rel inventory.Release
	var err error
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		var f *os.File
		if f, err = os.Open(filepath.Join(root, p)); err != nil {
			continue
		}
		rel, err = inventory.ParseOSRelease(io.LimitReader(f, 64<<10))
		f.Close()
		if err == nil {
			v, _, _ := strings.Cut(rel.VersionID, ".")
			return v, nil
		}
	}
	return "", err
}

// machineArch returns dnf's $arch and $basearch for this machine.
func machineArch() (arch, basearch string) {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64", "x86_64"
	case "arm64":
		return "aarch64", "aarch64"
	case "arm":
		return "armv7hl", "armhfp"
	case "386":
		return "i686", "i386"
	}
	return runtime.GOARCH, runtime.GOARCH
}

func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// expand replaces $name and ${name} with vars[name]; unknown names stay.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		braced := i+1 < len(s) && s[i+1] == '{'
		start := i + 1
		if braced {
			start++
		}
		j := start
		for j < len(s) && isVarName(s[j:j+1]) {
			j++
		}
		end := j
		if braced {
			if j >= len(s) || s[j] != '}' {
				b.WriteByte('$')
				i++
				continue
			}
			end = j + 1
		}
		v, ok := vars[s[start:j]]
		if j == start || !ok {
			b.WriteString(s[i:end])
		} else {
			b.WriteString(v)
		}
		i = end
	}
	return b.String()
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, errors.New("not a boolean (1/0, yes/no, true/false, on/off)")
}
