package protocol

import (
	"errors"
	"strings"
	"testing"
)

// nasty are the inputs an attacker would enrol with: each must be refused
// as a name, and shown escaped.
var nasty = []struct {
	name, value, escaped string
}{
	{"ANSI clear screen", "pi\x1b[2J", `pi\x1b[2J`},
	{"newline forging a row", "pi\nevil  almalinux 9", `pi\x0aevil  almalinux 9`},
	{"right-to-left override", "pi\u202egnp.exe", `pi\u202egnp.exe`},
	{"NUL", "pi\x00", `pi\x00`},
	{"invalid UTF-8", "pi\xff\xfe", `pi\xff\xfe`},
	{"zero-width joiner", "p\u200di", `p\u200di`},
	{"C1 control (CSI)", "pi\u009b2J", `pi\u009b2J`},
	{"line separator", "pi\u2028x", `pi\u2028x`},
	{"tag character above the BMP", "pi\U000E0041", `pi\U000e0041`},
	{"tab", "pi\tx", `pi\x09x`},
}

func TestValidateNameRefusesNastyNames(t *testing.T) {
	for _, tt := range nasty {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.value)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "name" || !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateName(%q) = %v, want a FieldError on name", tt.value, err)
			}
			// The refusal quotes the value escaped, never raw.
			if strings.ContainsAny(err.Error(), "\x1b\n\x00\u202e\u200d\u009b\u2028\t") || !strings.Contains(err.Error(), tt.escaped) {
				t.Errorf("error %q does not show the name as %s", err, tt.escaped)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
		words       string
	}{
		{"host name", "pi-kitchen", true, ""},
		{"fully qualified", "pi.lab.example.org", true, ""},
		{"underscore and digits", "edge_01", true, ""},
		{"64 bytes", strings.Repeat("a", MaxNameLen), true, ""},
		{"65 bytes", strings.Repeat("a", MaxNameLen+1), false, "65 bytes, at most 64"},
		{"64 KiB", strings.Repeat("a", 64<<10), false, "65536 bytes"},
		{"empty", "", false, "empty"},
		{"space", "pi kitchen", false, "byte 2"},
		{"leading dash (an option to a shell)", "-rf", false, "byte 0"},
		{"leading dot", ".hidden", false, "byte 0"},
		{"slash (a path, an MQTT level)", "a/b", false, "byte 1"},
		{"Cyrillic look-alike", "pi-\u0430", false, "byte 3"},
		{"quote", `pi"`, false, "byte 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.value)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v, want nil", tt.value, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "name: ") || !strings.Contains(err.Error(), tt.words) {
				t.Fatalf("ValidateName(%.80q) = %v, want a refusal of name saying %q", tt.value, err, tt.words)
			}
			if len(err.Error()) > 400 {
				t.Errorf("the refusal is %d bytes long: it repeats the value", len(err.Error()))
			}
		})
	}
}

func TestDeviceInfoValidate(t *testing.T) {
	good := DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64", Kernel: "5.14.0-284.11.1.el9_2.aarch64",
		Hostname: "pi-kitchen", AgentVersion: "v0.3.0 (devel, 1a2b3c4)"}
	if err := good.Validate("device"); err != nil {
		t.Fatalf("a real device's info: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*DeviceInfo)
		field string
	}{
		{"ANSI in os id", func(d *DeviceInfo) { d.OSID = "almalinux\x1b[31m" }, "device.os_id"},
		{"newline in version", func(d *DeviceInfo) { d.OSVersionID = "9.2\nx" }, "device.os_version_id"},
		{"RLO in arch", func(d *DeviceInfo) { d.Arch = "\u202earch" }, "device.arch"},
		{"64 KiB kernel", func(d *DeviceInfo) { d.Kernel = strings.Repeat("k", 64<<10) }, "device.kernel"},
		{"NUL in host name", func(d *DeviceInfo) { d.Hostname = "pi\x00" }, "device.hostname"},
		{"invalid UTF-8 in agent version", func(d *DeviceInfo) { d.AgentVersion = "v1\xc3" }, "device.agent_version"},
		{"129 bytes", func(d *DeviceInfo) { d.Kernel = strings.Repeat("k", MaxInfoLen+1) }, "device.kernel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := good
			tt.edit(&d)
			err := d.Validate("device")
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate = %v, want a refusal of %s", err, tt.field)
			}
		})
	}
	// Text beyond ASCII that is printable is fine: it is shown as it is.
	d := good
	d.Hostname = "café"
	if err := d.Validate("device"); err != nil {
		t.Errorf("a host name with é: %v", err)
	}
}

func TestEnrollRequestValidate(t *testing.T) {
	if err := (EnrollRequest{Token: "t", Device: DeviceInfo{Hostname: "pi"}}).Validate(); err != nil {
		t.Errorf("no name: %v", err)
	}
	err := EnrollRequest{Token: "t", Name: "pi\x1b[2J"}.Validate()
	if fe := (*FieldError)(nil); !errors.As(err, &fe) || fe.Field != "name" {
		t.Errorf("bad name: %v, want a refusal of name", err)
	}
	err = EnrollRequest{Token: "t", Name: "pi", Device: DeviceInfo{Kernel: "\x1b"}}.Validate()
	if fe := (*FieldError)(nil); !errors.As(err, &fe) || fe.Field != "device.kernel" {
		t.Errorf("bad kernel: %v, want a refusal of device.kernel", err)
	}
}

func TestValidateLabels(t *testing.T) {
	many := map[string]string{}
	for i := range MaxLabels + 1 {
		many["k"+strings.Repeat("x", i)] = "v"
	}
	tests := []struct {
		name   string
		labels map[string]string
		field  string // "" for accepted
	}{
		{"none", nil, ""},
		{"ordinary", map[string]string{"site": "lab", "rack": "b-12", "owner": "Zoë"}, ""},
		{"too many", many, "labels"},
		{"key with a space", map[string]string{"my site": "x"}, "labels"},
		{"empty key", map[string]string{"": "x"}, "labels"},
		{"escape in a value", map[string]string{"site": "\x1b]0;owned\x07"}, "labels.site"},
		{"long value", map[string]string{"site": strings.Repeat("v", MaxLabelValueLen+1)}, "labels.site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateLabels(tt.labels)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("ValidateLabels = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("ValidateLabels = %v, want a refusal of %s", err, tt.field)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	for _, tt := range nasty {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.value); got != tt.escaped {
				t.Errorf("Escape(%q) = %s, want %s", tt.value, got, tt.escaped)
			}
		})
	}
	plain := []string{"", "pi-kitchen", "AlmaLinux 9.2 (Turquoise Kodkod)", "café", "日本"}
	for _, s := range plain {
		if got := Escape(s); got != s {
			t.Errorf("Escape(%q) = %q, want it unchanged", s, got)
		}
	}
	// A literal backslash is doubled, so text that spells an escape is
	// told apart from one Escape made.
	if got := Escape(`pi\x1b`); got != `pi\\x1b` {
		t.Errorf(`Escape("pi\\x1b") = %s, want pi\\x1b`, got)
	}
}

func FuzzEscape(f *testing.F) {
	for _, tt := range nasty {
		f.Add(tt.value)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		// Whatever comes in, what goes out is valid UTF-8 a terminal
		// shows as text, and passes the rule the server holds text to.
		if err := ValidateText("x", e, len(e)); err != nil {
			t.Fatalf("Escape(%q) = %q, which is refused: %v", s, e, err)
		}
		if ValidateText("x", s, len(s)) == nil && !strings.Contains(s, `\`) && e != s {
			t.Fatalf("Escape changed valid text %q to %q", s, e)
		}
	})
}

func TestReportValidate(t *testing.T) {
	ok := Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "aarch64"}
	tests := []struct {
		name  string
		r     Report
		field string // "" for accepted
	}{
		{"real packages", Report{Device: DeviceInfo{OSID: "almalinux"}, Inventory: Inventory{Packages: []Package{ok}}}, ""},
		{"escape in the kernel", Report{Device: DeviceInfo{Kernel: "\x1b[2J"}}, "device.kernel"},
		{"escape in a package's release", Report{Inventory: Inventory{Packages: []Package{ok, {Name: "bash", Version: "5", Release: "1\x1b]0;pwned\x07", Arch: "noarch"}}}}, "inventory.packages[1].release"},
		{"RLO in an added name", Report{Inventory: Inventory{Added: []Package{{Name: "ba\u202esh"}}}}, "inventory.added[0].name"},
		{"long removed version", Report{Inventory: Inventory{Removed: []Package{{Name: "x", Version: strings.Repeat("9", 300)}}}}, "inventory.removed[0].version"},
		{"NUL in a cycle's package", Report{Cycles: []CycleResult{{After: []Package{{Name: "x\x00"}}}}}, "cycles[0].after[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate = %v, want a refusal of %s", err, tt.field)
			}
		})
	}
}
