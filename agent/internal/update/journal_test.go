package update

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJournalRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	c := &Cycle{ID: 7, Phase: Applying, Started: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Root: "/", DBPath: "/var/lib/rpm",
		Advisories: []AdvisoryRef{{ID: "ALSA-2026:1"}}, Packages: []Package{{Name: "demo-lib", Arch: "x86_64", From: "1.0-1", To: "1.1-1"}}}
	if err := j.SaveCycle(c); err != nil {
		t.Fatal(err)
	}
	if err := j.SaveState(&State{Active: 7, LastID: 7}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCycle(dir, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != Applying || got.Packages[0].To != "1.1-1" || got.Version != JournalVersion {
		t.Errorf("read back %+v", got)
	}
	b, _ := os.ReadFile(cyclePath(dir, 7))
	if !strings.Contains(string(b), `"phase": "applying"`) {
		t.Errorf("phase not written by name:\n%s", b)
	}
	// No temp file is left behind by the atomic writes.
	if left, _ := filepath.Glob(filepath.Join(dir, "cycles", ".*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
	h, err := History(dir)
	if err != nil || len(h) != 1 || h[0].ID != 7 {
		t.Errorf("History = %v, %v", h, err)
	}
}

func TestJournalLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file, so a second open in this process
	// conflicts as another process would.
	if _, err := OpenJournal(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenJournal: %v, want ErrLocked", err)
	}
	j.Close()
	j2, err := OpenJournal(dir)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	j2.Close()
}

func TestJournalBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, content, want string
	}{
		{"corrupt state", "state.json", `{"version": 1, "active": `, "state.json"},
		{"newer state", "state.json", `{"version": 99}`, "version 99 is newer"},
		{"unknown phase", "cycles/000001.json", `{"version": 1, "id": 1, "phase": "installing"}`, `unknown phase "installing"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "cycles"), 0o700)
			if err := os.WriteFile(filepath.Join(dir, tt.file), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var err error
			if strings.HasPrefix(tt.file, "cycles") {
				_, err = ReadCycle(dir, 1)
			} else {
				_, err = ReadState(dir)
			}
			if !errors.Is(err, ErrJournal) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrJournal mentioning %q", err, tt.want)
			}
		})
	}
}

func TestAttemptsSetAside(t *testing.T) {
	t.Parallel()
	s := &State{}
	c := &Cycle{ID: 1, Phase: Failed, Error: "rpm --test refused", Advisories: []AdvisoryRef{{ID: "A"}, {ID: "B"}}}
	for i := 1; i < MaxAttempts; i++ {
		if aside := s.recordFailure(c); len(aside) != 0 {
			t.Fatalf("set aside after %d failures: %v", i, aside)
		}
	}
	s.recordSuccess(&Cycle{Advisories: []AdvisoryRef{{ID: "B"}}})
	aside := s.recordFailure(c)
	if len(aside) != 1 || aside[0] != "A" {
		t.Fatalf("set aside = %v, want [A] (B succeeded once in between)", aside)
	}
	if !strings.Contains(s.SetAside["A"], "failed 3 times") || !strings.Contains(s.SetAside["A"], "rpm --test refused") {
		t.Errorf("reason = %q", s.SetAside["A"])
	}
}

func TestReboot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pkgs []string
		advs []AdvisoryRef
		want bool
	}{
		{"library", []string{"demo-lib"}, nil, false},
		{"kernel-core", []string{"kernel-core"}, nil, true},
		{"glibc", []string{"glibc"}, nil, true},
		{"glibc-common is not glibc", []string{"glibc-common"}, nil, false},
		{"dbus-broker", []string{"dbus-broker"}, nil, true},
		{"advisory says so", []string{"demo-lib"}, []AdvisoryRef{{ID: "X", RebootSuggested: true}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []Package
			for _, n := range tt.pkgs {
				ps = append(ps, Package{Name: n})
			}
			if r := needsReboot(ps, tt.advs); r.Needed != tt.want || r.Needed != (len(r.Reasons) > 0) {
				t.Errorf("needsReboot = %+v, want %v", r, tt.want)
			}
		})
	}
}

func TestInstallOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want bool
	}{
		{"kernel", true}, {"kernel-core", true}, {"kernel-modules-extra", true}, {"kernel-64k-core", true}, {"kernel-rt-debug", true},
		{"kernel-headers", false}, {"kernel-tools", false}, {"kernel-tools-libs", false}, {"kernelshark", false}, {"glibc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := installOnly(tt.name); got != tt.want {
				t.Errorf("installOnly(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}
