package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
)

// DropInDir is the folder of drop-ins beside a configuration file: its
// name without ".toml" and with ".d" (/etc/rpmfleet/agent.d for
// /etc/rpmfleet/agent.toml). Its *.toml files are applied over the main
// file in name order: a table merges key by key, any other value a
// drop-in sets replaces the one before.
func DropInDir(path string) string {
	return strings.TrimSuffix(path, ".toml") + ".d"
}

// source is one parsed file: its document and where each key is.
type source struct {
	name  string
	doc   map[string]any
	lines map[string]int
}

// parseSource reads and parses one file's TOML.
func parseSource(r io.Reader, name string) (source, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return source{}, fmt.Errorf("read config %s: %w", name, err)
	}
	if len(b) > MaxSize {
		return source{}, Errors{{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxSize)}}
	}
	src := string(b)
	var doc map[string]any
	if _, err := toml.Decode(src, &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.LastKey != "" {
				msg += fmt.Sprintf(" (after key %q)", pe.LastKey)
			}
			return source{}, Errors{{File: name, Line: pe.Position.Line, Msg: "syntax error: " + msg}}
		}
		return source{}, Errors{{File: name, Msg: "syntax error: " + err.Error()}}
	}
	return source{name: name, doc: doc, lines: locate(src)}, nil
}

// readDropIns parses the drop-ins of path in name order. Each must be a
// regular file (a FIFO would hang the agent's start; it is opened without
// blocking and refused) that group and others cannot write, as the main
// file.
func readDropIns(path string) ([]source, Errors) {
	names, err := filepath.Glob(filepath.Join(DropInDir(path), "*.toml"))
	if err != nil {
		return nil, Errors{{File: DropInDir(path), Msg: err.Error()}}
	}
	slices.Sort(names)
	var srcs []source
	var errs Errors
	for _, n := range names {
		f, err := os.OpenFile(n, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			errs = append(errs, &Error{File: n, Msg: err.Error()})
			continue
		}
		info, err := f.Stat()
		switch {
		case err != nil:
			errs = append(errs, &Error{File: n, Msg: err.Error()})
		case !info.Mode().IsRegular():
			errs = append(errs, &Error{File: n, Msg: fmt.Sprintf("not a regular file (%v)", info.Mode().Type())})
		case info.Mode().Perm()&0o022 != 0:
			errs = append(errs, &Error{File: n, Msg: fmt.Sprintf("mode %#o lets group or others write a file of the agent's configuration; chmod go-w", info.Mode().Perm())})
		default:
			s, err := parseSource(f, n)
			var perr Errors
			switch {
			case errors.As(err, &perr):
				errs = append(errs, perr...)
			case err != nil:
				errs = append(errs, &Error{File: n, Msg: err.Error()})
			default:
				srcs = append(srcs, s)
			}
		}
		f.Close()
	}
	return srcs, errs
}

// merge applies src over dst: tables merge key by key, other values
// replace. The keys src sets take its lines and its file name.
func merge(dst *source, files map[string]string, src source) {
	mergeTable(dst.doc, src.doc, "", dst.lines, files, src)
}

func mergeTable(dst, src map[string]any, prefix string, lines map[string]int, files map[string]string, s source) {
	for k, v := range src {
		p := keyPart(k)
		if prefix != "" {
			p = prefix + "." + p
		}
		if sub, ok := v.(map[string]any); ok {
			if have, ok := dst[k].(map[string]any); ok {
				mergeTable(have, sub, p, lines, files, s)
				continue
			}
		}
		dst[k] = v
		// The key and everything below it now come from s.
		for lk := range lines {
			if lk == p || strings.HasPrefix(lk, p+".") || strings.HasPrefix(lk, p+"[") {
				delete(lines, lk)
			}
		}
		for lk, l := range s.lines {
			if lk == p || strings.HasPrefix(lk, p+".") || strings.HasPrefix(lk, p+"[") {
				lines[lk] = l
				files[lk] = s.name
			}
		}
		files[p] = s.name
	}
}

// fileOf returns the file key path p was set in: that of p or its nearest
// ancestor a drop-in set, else def.
func fileOf(files map[string]string, p, def string) string {
	for p != "" {
		if f, ok := files[p]; ok {
			return f
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return def
}
