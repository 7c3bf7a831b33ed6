package osv

// ParseFile: a file or a folder of OSV files, an advisory found twice kept
// once.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// ParseFile reads every advisory in path: one OSV file (a single object or
// JSON lines, plain or compressed), or a folder, whose files named *.json or
// *.jsonl (optionally with a compression suffix such as .gz) are read in
// lexical order, subfolders included. An advisory found twice for the same
// ecosystem (the AlmaLinux database stores a two-ecosystem advisory in both
// folders) is kept once, the most recently modified.
func ParseFile(path string, opts Options) ([]advisory.Advisory, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("osv: %w", err)
	}
	if !fi.IsDir() {
		return keepLatest(parseOne(path, opts, nil))
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() && isOSVName(de.Name()) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("osv: read folder: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("osv: %s: no OSV files (*.json, *.jsonl) in folder", path)
	}
	var out []advisory.Advisory
	for _, f := range files {
		if out, err = parseOne(f, opts, out); err != nil {
			return nil, err
		}
	}
	return keepLatest(out, nil)
}

func isOSVName(name string) bool {
	for _, z := range []string{".gz", ".xz", ".zst", ".bz2"} {
		name = strings.TrimSuffix(name, z)
	}
	return strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".jsonl")
}

// parseOne appends the advisories of one file to out. A file holding no
// object at all is an error: an empty download is not an empty database.
func parseOne(path string, opts Options, out []advisory.Advisory) ([]advisory.Advisory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("osv: %w", err)
	}
	defer f.Close()
	d := NewDecoder(f, opts)
	defer d.Close()
	d.name = path
	for {
		a, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	if d.objects == 0 {
		return nil, &Error{File: path, Err: errors.New("no OSV object in file")}
	}
	return out, nil
}

// keepLatest keeps one advisory per (id, ecosystem), the most recently
// updated, in the order first seen; it passes an error through.
func keepLatest(list []advisory.Advisory, err error) ([]advisory.Advisory, error) {
	if err != nil {
		return nil, err
	}
	type key struct{ id, eco string }
	at := make(map[key]int, len(list))
	out := list[:0]
	for _, a := range list {
		k := key{a.ID, a.Ecosystem}
		if i, ok := at[k]; ok {
			if a.Updated.After(out[i].Updated) {
				out[i] = a
			}
			continue
		}
		at[k] = len(out)
		out = append(out, a)
	}
	return out, nil
}
