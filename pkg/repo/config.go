package repo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
// variables.
func ReadVars(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	vars := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || !isVarName(e.Name()) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("repo: %w", err)
		}
		line, _, _ := strings.Cut(string(raw), "\n")
		vars[e.Name()] = strings.TrimSpace(line)
	}
	return vars, nil
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
