package config

import (
	"strconv"
	"strings"
)

// locate maps every key path of a TOML document to the line it is written
// on: "policy.mode", "repo[1].baseurl", "policy.window[0]" (the header line
// of that table). Array-of-tables elements are counted from 0.
//
// BurntSushi/toml keeps key positions to itself, so this is a small scanner
// of its own. It runs only on documents the toml parser accepted, and it
// only needs to find where each key starts a line: it follows headers, keys
// and the strings, arrays and inline tables that can span lines; it does not
// check syntax. Keys inside inline tables are not listed: a lookup falls back
// to the enclosing key's line.
func locate(src string) map[string]int {
	s := &scanner{src: src, line: 1, lines: map[string]int{}, arrays: map[string]int{}}
	s.run()
	return s.lines
}

type scanner struct {
	src   string
	i     int
	line  int
	lines map[string]int
	// arrays counts the elements seen of each array of tables, by resolved
	// path ("repo", "a[0].b").
	arrays map[string]int
	// table is the resolved path of the current table ("" at the top).
	table string
}

func (s *scanner) peek(off int) byte {
	if s.i+off < len(s.src) {
		return s.src[s.i+off]
	}
	return 0
}

func (s *scanner) advance() {
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

func (s *scanner) skipSpace() {
	for s.i < len(s.src) && (s.src[s.i] == ' ' || s.src[s.i] == '\t' || s.src[s.i] == '\r') {
		s.i++
	}
}

func (s *scanner) skipLine() {
	for s.i < len(s.src) && s.src[s.i] != '\n' {
		s.i++
	}
}

func (s *scanner) run() {
	for s.i < len(s.src) {
		s.skipSpace()
		if s.i >= len(s.src) {
			return
		}
		switch c := s.src[s.i]; {
		case c == '\n':
			s.advance()
		case c == '#':
			s.skipLine()
		case c == '[':
			s.header()
		default:
			s.keyValue()
		}
	}
}

// keyPart writes one key of a path: bare when it can be, else quoted, so a
// quoted key holding a dot stays one key.
func keyPart(k string) string {
	if k == "" {
		return `""`
	}
	for _, c := range k {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return strconv.Quote(k)
		}
	}
	return k
}

// resolve turns a dotted key path into its resolved form, adding the
// current element index of each array of tables on the way.
func (s *scanner) resolve(prefix string, parts []string) string {
	p := prefix
	for _, k := range parts {
		if p != "" {
			p += "."
		}
		p += keyPart(k)
		if n, ok := s.arrays[p]; ok {
			p += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return p
}

func (s *scanner) header() {
	line := s.line
	array := s.peek(1) == '['
	s.i++
	if array {
		s.i++
	}
	parts := s.keyParts()
	s.skipLine()
	if len(parts) == 0 {
		return
	}
	if !array {
		s.table = s.resolve("", parts)
		s.lines[s.table] = line
		return
	}
	parent := s.resolve("", parts[:len(parts)-1])
	key := keyPart(parts[len(parts)-1])
	if parent != "" {
		key = parent + "." + key
	}
	s.arrays[key]++
	s.table = key + "[" + strconv.Itoa(s.arrays[key]-1) + "]"
	s.lines[s.table] = line
	if _, ok := s.lines[key]; !ok {
		s.lines[key] = line
	}
}

// keyParts reads a dotted key up to "=" or "]", leaving the scanner after
// that character.
func (s *scanner) keyParts() []string {
	var parts []string
	var cur strings.Builder
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '"' || c == '\'':
			cur.WriteString(s.quoted(c))
			continue
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == '=' || c == ']':
			s.i++
			if c == ']' && s.peek(0) == ']' {
				s.i++
			}
			return append(parts, strings.TrimSpace(cur.String()))
		case c == '\n':
			return nil
		default:
			cur.WriteByte(c)
		}
		s.i++
	}
	return nil
}

// quoted reads a one-line quoted key and returns its text (escapes kept
// as written; keys in this schema need none).
func (s *scanner) quoted(q byte) string {
	s.i++
	start := s.i
	for s.i < len(s.src) && s.src[s.i] != q && s.src[s.i] != '\n' {
		if q == '"' && s.src[s.i] == '\\' {
			s.i++
		}
		s.i++
	}
	end := min(s.i, len(s.src))
	if s.i < len(s.src) && s.src[s.i] == q {
		s.i++
	}
	return s.src[start:end]
}

func (s *scanner) keyValue() {
	line := s.line
	parts := s.keyParts()
	if parts == nil {
		s.skipLine()
		return
	}
	s.lines[s.resolve(s.table, parts)] = line
	s.value()
}

// value skips a value, which may span lines inside brackets or multi-line
// strings, up to the end of its line.
func (s *scanner) value() {
	depth := 0
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\n':
			if depth == 0 {
				return
			}
			s.advance()
		case c == '#':
			s.skipLine()
		case c == '[' || c == '{':
			depth++
			s.i++
		case c == ']' || c == '}':
			depth--
			s.i++
		case c == '"' || c == '\'':
			s.str(c)
		default:
			s.i++
		}
	}
}

func (s *scanner) str(q byte) {
	if strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3)) {
		s.i += 3
		for s.i < len(s.src) {
			if q == '"' && s.src[s.i] == '\\' {
				s.advance()
				if s.i < len(s.src) {
					s.advance()
				}
				continue
			}
			if strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3)) {
				s.i += 3
				// Up to two more quotes belong to the content.
				for k := 0; k < 2 && s.peek(0) == q; k++ {
					s.i++
				}
				return
			}
			s.advance()
		}
		return
	}
	s.i++
	for s.i < len(s.src) && s.src[s.i] != '\n' {
		c := s.src[s.i]
		if q == '"' && c == '\\' {
			s.i += 2
			continue
		}
		s.i++
		if c == q {
			return
		}
	}
}

// lineOf returns the line of key path p, or of its nearest ancestor that
// has one, or 0.
func lineOf(lines map[string]int, p string) int {
	for p != "" {
		if l, ok := lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return 0
		}
		p = p[:i]
	}
	return 0
}
