package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlagsAfterArguments(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantPos  []string
		wantJSON bool
	}{
		{"flag first", []string{"--json", "CVE-1"}, []string{"CVE-1"}, true},
		{"flag last", []string{"CVE-1", "--json"}, []string{"CVE-1"}, true},
		{"no flag", []string{"CVE-1"}, []string{"CVE-1"}, false},
		{"two arguments around a flag", []string{"a", "--json", "b"}, []string{"a", "b"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c conn
			e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(string) string { return "" }}
			fs := newFlagSet(e, "x", "x", &c)
			asJSON := fs.Bool("json", false, "")
			if _, ok := parseFlags(fs, tt.args); !ok {
				t.Fatal("parse failed")
			}
			if strings.Join(fs.Args(), ",") != strings.Join(tt.wantPos, ",") || *asJSON != tt.wantJSON {
				t.Errorf("args %v json %v, want %v %v", fs.Args(), *asJSON, tt.wantPos, tt.wantJSON)
			}
		})
	}
}

func TestConnectionOrder(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, ".config", "rpmfleet")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "login.json"), []byte(`{"server":"http://saved","token":"saved-token"}`), 0o600)
	vars := map[string]string{"HOME": home}
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(k string) string { return vars[k] }}

	a, err := conn{}.client(e)
	if err != nil || a.base != "http://saved" || a.token != "saved-token" {
		t.Fatalf("saved login: %+v, %v", a, err)
	}
	vars["RPMFLEET_TOKEN"] = "env-token"
	if a, _ := (conn{}).client(e); a.token != "env-token" || a.base != "http://saved" {
		t.Errorf("environment token over the saved one: %+v", a)
	}
	if a, _ := (conn{token: "flag-token", server: "http://flag"}).client(e); a.token != "flag-token" || a.base != "http://flag" {
		t.Errorf("flags over the environment: %+v", a)
	}
	if _, err := (conn{ca: filepath.Join(home, "missing.pem")}).client(e); err == nil {
		t.Errorf("a missing --ca file was accepted")
	}
	os.WriteFile(filepath.Join(dir, "login.json"), []byte(`{not json`), 0o600)
	delete(vars, "RPMFLEET_TOKEN")
	if _, err := (conn{}).client(e); err == nil || !strings.Contains(err.Error(), "login.json") {
		t.Errorf("a corrupt login file: %v, want an error naming it", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"frobnicate"}, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "frobnicate") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errb.String())
	}
}

func TestDeviceAction(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		sub, what string
		ok        bool
	}{
		{"show", []string{"pi"}, "", "", false},
		{"show with --json", []string{"pi", "--json"}, "", "", false},
		{"revoke", []string{"revoke", "pi"}, "revoke", "pi", true},
		{"delete with flags around", []string{"--server", "http://x", "delete", "pi", "--json"}, "delete", "pi", true},
		{"a device named revoke is shown", []string{"revoke"}, "", "", false},
		{"unknown action", []string{"rename", "pi"}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, what, ok := deviceAction(tt.args)
			if sub != tt.sub || what != tt.what || ok != tt.ok {
				t.Errorf("deviceAction(%q) = %q %q %v, want %q %q %v", tt.args, sub, what, ok, tt.sub, tt.what, tt.ok)
			}
		})
	}
}

func TestEnrollTokenFlagsChecked(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		words string
	}{
		{"too many uses", []string{"create", "--uses", "20000"}, "--uses 20000"},
		{"two years", []string{"create", "--expires", "17520h"}, "--expires"},
		{"label with an escape", []string{"create", "--label", "site=\x1b[2J"}, "labels.site"},
		{"revoke with no id", []string{"revoke"}, "Usage"},
		{"unknown subcommand", []string{"rotate"}, "Usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), append([]string{"enroll-token"}, tt.args...), &out, &errb)
			if code != ExitUsage || !strings.Contains(errb.String(), tt.words) {
				t.Errorf("exit %d, stderr %q; want a usage error saying %q", code, errb.String(), tt.words)
			}
		})
	}
}
