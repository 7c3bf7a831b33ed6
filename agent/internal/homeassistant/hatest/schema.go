// Package hatest holds Home Assistant's documented schema for MQTT update
// entities, kept as data (agent/internal/homeassistant/testdata, with its
// source), and checks discovery configs and states against it. Tests only.
package hatest

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"unicode/utf8"
)

// Schema is Home Assistant's documented schema for MQTT update entities,
// read from a file like ../testdata/update.mqtt.schema.json.
type Schema struct {
	Config map[string]field `json:"config"`
	State  map[string]field `json:"state"`
}

type field struct {
	Type      any              `json:"type"`
	Keys      map[string]field `json:"keys"`
	MaxLength int              `json:"max_length"`
	Nullable  bool             `json:"nullable"`
}

// LoadSchema reads a schema file, failing the test when it is unreadable
// or is not the whole page.
func LoadSchema(t testing.TB, path string) *Schema {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s Schema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(s.Config) < 20 || len(s.State) < 8 {
		t.Fatalf("%s: %d config keys, %d state keys: not the whole page", path, len(s.Config), len(s.State))
	}
	return &s
}

// CheckConfig lists what in a discovery config breaks the schema: a key
// it does not list, a value of another type.
func (s *Schema) CheckConfig(m map[string]any) []string { return check("", s.Config, m) }

// CheckState is CheckConfig for the JSON state payload.
func (s *Schema) CheckState(m map[string]any) []string { return check("", s.State, m) }

func check(path string, fields map[string]field, m map[string]any) []string {
	var errs []string
	for k, v := range m {
		f, ok := fields[k]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s%s: not in the documented schema", path, k))
			continue
		}
		if v == nil && f.Nullable {
			continue
		}
		if !typeOK(f.Type, v) {
			errs = append(errs, fmt.Sprintf("%s%s: %T, want %v", path, k, v, f.Type))
			continue
		}
		if s, ok := v.(string); ok && f.MaxLength > 0 && utf8.RuneCountInString(s) > f.MaxLength {
			errs = append(errs, fmt.Sprintf("%s%s: %d characters, at most %d", path, k, utf8.RuneCountInString(s), f.MaxLength))
		}
		if f.Keys == nil {
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			errs = append(errs, check(path+k+".", f.Keys, x)...)
		case []any:
			for i, item := range x {
				if im, ok := item.(map[string]any); ok {
					errs = append(errs, check(fmt.Sprintf("%s%s[%d].", path, k, i), f.Keys, im)...)
				}
			}
		}
	}
	return errs
}

func typeOK(t any, v any) bool {
	switch x := t.(type) {
	case []any:
		for _, one := range x {
			if typeOK(one, v) {
				return true
			}
		}
		return false
	case string:
		switch x {
		case "string", "template", "icon", "device_class":
			_, ok := v.(string)
			return ok
		case "list":
			_, ok := v.([]any)
			return ok
		case "map":
			_, ok := v.(map[string]any)
			return ok
		case "boolean":
			_, ok := v.(bool)
			return ok
		case "integer":
			f, ok := v.(float64)
			return ok && f == float64(int64(f))
		case "float":
			_, ok := v.(float64)
			return ok
		}
	}
	return false
}
