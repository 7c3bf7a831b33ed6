package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrDropIn is returned for a drop-in that is not a regular file (a FIFO
// would hang the server's start, a folder means nothing).
var ErrDropIn = errors.New("config: drop-in is not a regular file")

// DropInDir is the folder of drop-ins beside a configuration file: the
// file's name without ".toml" and with ".d" (/etc/rpmfleet/server.d for
// /etc/rpmfleet/server.toml).
func DropInDir(path string) string {
	return strings.TrimSuffix(path, ".toml") + ".d"
}

// DropIns lists the *.toml files of path's drop-in folder in name order;
// none when the folder does not exist.
func DropIns(path string) ([]string, error) {
	dir := DropInDir(path)
	names, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return nil, fmt.Errorf("read config drop-ins %s: %w", dir, err)
	}
	slices.Sort(names)
	for _, n := range names {
		info, err := os.Stat(n)
		if err != nil {
			return nil, fmt.Errorf("read config drop-in: %w", err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s is a %v", ErrDropIn, n, info.Mode().Type())
		}
	}
	return names, nil
}

// decodeFile decodes one file over c; an unknown key is an error naming
// the file and, when found, the line.
func decodeFile(c *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read config: %w", err)
		}
		return fmt.Errorf("read config %s: %w", path, err)
	}
	md, err := toml.Decode(string(b), c)
	if err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		msgs := make([]string, len(und))
		for i, k := range und {
			msgs[i] = k.String()
			if l := keyLine(b, k); l > 0 {
				msgs[i] = fmt.Sprintf("%s (line %d)", k, l)
			}
		}
		return fmt.Errorf("read config %s: unknown key %s", path, strings.Join(msgs, ", "))
	}
	return nil
}

// keyLine finds the line an unknown key is set on: the first line after
// its table's header (if any) that assigns its last part; 0 when not found.
func keyLine(b []byte, k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	last := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(k[len(k)-1]) + `"?\s*=`)
	header := ""
	if len(k) > 1 {
		header = strings.Join(k[:len(k)-1], ".")
	}
	inTable := header == ""
	for i, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			name := strings.Trim(t, "[] ")
			if name == header || name == strings.Join(k, ".") {
				if name == strings.Join(k, ".") {
					return i + 1 // an unknown table
				}
				inTable = true
				continue
			}
			inTable = false
		}
		if inTable && last.MatchString(line) {
			return i + 1
		}
	}
	return 0
}
