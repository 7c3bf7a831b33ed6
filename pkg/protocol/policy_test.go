package protocol

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestPlanPolicyIgnoredByOldAgents: a plan carrying a policy decodes, as
// an agent of protocol version 3 decodes it (json.Unmarshal into the Plan
// it knows, which has no policy field), into the same advisories: the new
// field is ignored, not refused.
func TestPlanPolicyIgnoredByOldAgents(t *testing.T) {
	type oldPlan struct {
		Advisories []PlanAdvisory `json:"advisories"`
	}
	p := Plan{Advisories: []PlanAdvisory{{ID: "ALSA-2023:3722", Type: "security", Severity: "Moderate", Status: StatusAffected,
		Packages: []PlanPackage{{Name: "openssl-libs", Arch: "aarch64", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"}}}},
		Policy: &Policy{Version: PolicyVersion, Mode: PolicyApply, Reboot: RebootNever, Group: "field",
			Windows: []PolicyWindow{{Days: []string{"sat"}, Start: "02:30", Length: "3h", Timezone: "America/New_York"}}}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var old oldPlan
	if err := json.Unmarshal(b, &old); err != nil {
		t.Fatalf("an old agent's decoding of %s: %v", b, err)
	}
	if len(old.Advisories) != 1 || old.Advisories[0].ID != "ALSA-2023:3722" || old.Advisories[0].Packages[0].Fixed != "1:3.0.7-16.el9_2" {
		t.Errorf("old agent read %+v", old)
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil || back.Policy == nil || back.Policy.Windows[0].Timezone != "America/New_York" {
		t.Errorf("a new agent read %+v, %v", back.Policy, err)
	}
}

// TestPolicyValidateNormalizes: severity names in any case come out as
// the server spells them, reboot defaults to never, the version is set.
func TestPolicyValidateNormalizes(t *testing.T) {
	p := Policy{Mode: "apply", MinSeverity: "important", ApproveAfterDays: map[string]int{"critical": 0, "MODERATE": 7}, Group: "forged"}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Version != PolicyVersion || p.MinSeverity != "Important" || p.Reboot != RebootNever || p.Group != "" ||
		len(p.ApproveAfterDays) != 2 || p.ApproveAfterDays["Critical"] != 0 || p.ApproveAfterDays["Moderate"] != 7 {
		t.Errorf("validated policy = %+v", p)
	}
	bad := Policy{Mode: "apply", Windows: []PolicyWindow{{Days: []string{"mon"}, Start: "02:00", Length: "1h", Timezone: "Local"}}}
	var fe *FieldError
	if err := bad.Validate(); !errors.As(err, &fe) || fe.Field != "policy.windows[0].timezone" {
		t.Errorf("timezone Local (the server's own zone, not the device's): %v, want a refusal of policy.windows[0].timezone", err)
	}
}

// TestPolicyAllowUpdates: allow_updates takes package names only; a glob,
// a name with a space or an escape code, a duplicate or too many names
// are refused, naming the entry.
func TestPolicyAllowUpdates(t *testing.T) {
	ok := Policy{Mode: "apply", AllowUpdates: []string{"raspberrypi2-kernel4", "raspberrypi2-firmware", "kernel-core", "libstdc++"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("real package names refused: %v", err)
	}
	tooMany := make([]string, MaxPolicyAllowUpdates+1)
	for i := range tooMany {
		tooMany[i] = "pkg" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	for _, c := range []struct {
		name  string
		names []string
		field string
	}{
		{"glob", []string{"raspberrypi2-*"}, "policy.allow_updates[0]"},
		{"space", []string{"ok", "two words"}, "policy.allow_updates[1]"},
		{"escape", []string{"kernel\x1b[31m"}, "policy.allow_updates[0]"},
		{"empty", []string{""}, "policy.allow_updates[0]"},
		{"option-like", []string{"-e"}, "policy.allow_updates[0]"},
		{"twice", []string{"kernel", "kernel"}, "policy.allow_updates[1]"},
		{"too many", tooMany, "policy.allow_updates"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := Policy{Mode: "apply", AllowUpdates: c.names}
			var fe *FieldError
			if err := p.Validate(); !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("Validate(%q) = %v, want a refusal of %s", c.names, err, c.field)
			}
		})
	}
}
