package config

import (
	"fmt"
	"sort"
	"time"
)

// decoder walks the document as the toml parser returns it (maps, slices,
// strings, ...) and collects every problem instead of stopping at the
// first, which decoding into a struct would do.
type decoder struct {
	file  string
	lines map[string]int
	files map[string]string // drop-in of a key, when one set it
	errs  Errors
}

func (d *decoder) errorf(key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: fileOf(d.files, key, d.file), Line: lineOf(d.lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// table is one TOML table being read; it remembers which keys were asked
// for, so done can report the others as unknown.
type table struct {
	d    *decoder
	path string
	m    map[string]any
	used map[string]bool
}

func (d *decoder) table(path string, m map[string]any) *table {
	return &table{d: d, path: path, m: m, used: map[string]bool{}}
}

func (t *table) key(k string) string {
	if t.path == "" {
		return keyPart(k)
	}
	return t.path + "." + keyPart(k)
}

func (t *table) get(k string) (any, bool) {
	t.used[k] = true
	v, ok := t.m[k]
	return v, ok
}

// typeName names a decoded TOML value's type for an error message.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return "a date or time"
}

func (t *table) str(k string) (string, bool) {
	v, ok := t.get(k)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		t.d.errorf(t.key(k), "want a string, not %s", typeName(v))
	}
	return s, ok
}

func (t *table) boolean(k string) (bool, bool) {
	v, ok := t.get(k)
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		t.d.errorf(t.key(k), "want true or false, not %s", typeName(v))
	}
	return b, ok
}

func (t *table) strs(k string) ([]string, bool) {
	v, ok := t.get(k)
	if !ok {
		return nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		t.d.errorf(t.key(k), "want an array of strings, not %s", typeName(v))
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.d.errorf(t.key(k), "element %d: want a string, not %s", i, typeName(e))
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// duration reads a Go duration string ("1h30m").
func (t *table) duration(k string) (time.Duration, bool) {
	s, ok := t.str(k)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		t.d.errorf(t.key(k), "bad value %q: want a duration such as \"1h\" or \"30m\"", s)
		return 0, false
	}
	return v, true
}

// sub returns the table under k, or nil when k is absent or not a table.
func (t *table) sub(k string) *table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.d.errorf(t.key(k), "want a table ([%s]), not %s", t.key(k), typeName(v))
		return nil
	}
	return t.d.table(t.key(k), m)
}

// tables returns the array of tables under k ([[k]]).
func (t *table) tables(k string) []*table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	arr, ok := v.([]map[string]any)
	if !ok {
		t.d.errorf(t.key(k), "want an array of tables ([[%s]]), not %s", t.key(k), typeName(v))
		return nil
	}
	out := make([]*table, len(arr))
	for i, m := range arr {
		out[i] = t.d.table(fmt.Sprintf("%s[%d]", t.key(k), i), m)
	}
	return out
}

// hints point a user from a key that is not in the schema to the one that
// is, where the mistake is likely.
var hints = map[string]string{
	"server_ca":     `; the server's CA is "ca"`,
	"health":        `; health checks are policy.health_checks, a list of commands`,
	"password":      `; a password is not kept in the configuration: put it in a file only root can read and name that file with password_file`,
	"window":        `; maintenance windows are [[policy.window]] tables`,
	"maintenance":   `; maintenance windows are [[policy.window]] tables`,
	"gpgkeys":       `; the keys are "gpgkey", a list of files`,
	"interval":      `; the poll interval is "interval" in [poll]`,
	"poll_interval": `; the poll interval is "interval" in [poll]`,
}

// done reports the keys of the table nobody asked for.
func (t *table) done() {
	var unknown []string
	for k := range t.m {
		if !t.used[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		t.d.errorf(t.key(k), "unknown key%s", hints[k])
	}
}
