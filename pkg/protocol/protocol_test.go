package protocol

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestInventoryDigest(t *testing.T) {
	ssl := Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64"}
	bash := Package{Name: "bash", Version: "5.1.8", Release: "4.el9", Arch: "aarch64"}
	bash0 := bash
	bash0.Epoch = "0"
	ssl2 := ssl
	ssl2.Version = "3.0.7"
	modular := bash
	modular.ModularityLabel = "bash:5:1:x"
	base := InventoryDigest([]Package{ssl, bash})
	tests := []struct {
		name string
		pkgs []Package
		same bool
	}{
		{"order does not matter", []Package{bash, ssl}, true},
		{"a repeated entry counts", []Package{bash, ssl, bash}, false},
		{"empty epoch is epoch 0", []Package{ssl, bash0}, true},
		{"a version change shows", []Package{ssl2, bash}, false},
		{"a missing package shows", []Package{ssl}, false},
		{"the modularity label counts", []Package{ssl, modular}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := InventoryDigest(tt.pkgs)
			if (got == base) != tt.same {
				t.Errorf("InventoryDigest = %s, base %s, want same=%v", got, base, tt.same)
			}
		})
	}
	if len(base) != 64 || strings.ToLower(base) != base {
		t.Errorf("digest %q is not 64 lower-case hex digits", base)
	}
	// The empty set has the digest of no bytes, so both ends agree on it.
	if got, want := InventoryDigest(nil), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; got != want {
		t.Errorf("InventoryDigest(nil) = %s, want %s", got, want)
	}
}

func TestRoleAllows(t *testing.T) {
	tests := []struct {
		role, need Role
		want       bool
	}{
		{RoleReadOnly, RoleReadOnly, true},
		{RoleReadOnly, RoleOperator, false},
		{RoleOperator, RoleReadOnly, true},
		{RoleOperator, RoleAdmin, false},
		{RoleAdmin, RoleOperator, true},
		{Role("root"), RoleReadOnly, false},
		{Role(""), Role(""), false},
	}
	for _, tt := range tests {
		t.Run(string(tt.role)+"/"+string(tt.need), func(t *testing.T) {
			if got := tt.role.Allows(tt.need); got != tt.want {
				t.Errorf("%q.Allows(%q) = %v, want %v", tt.role, tt.need, got, tt.want)
			}
		})
	}
}

func TestTopics(t *testing.T) {
	for _, topic := range []string{TopicAdvisoryFeed, DeviceCommandTopic("d1"), DeviceStateTopic("d1"), DeviceOnlineTopic("d1")} {
		if !strings.HasPrefix(topic, "rpmfleet/v1/") {
			t.Errorf("topic %q is outside rpmfleet/v1/", topic)
		}
	}
	if got, want := DeviceCommandTopic("d1"), "rpmfleet/v1/device/d1/command"; got != want {
		t.Errorf("DeviceCommandTopic = %q, want %q", got, want)
	}
}

// TestWireGolden pins the JSON the API speaks: a change to a tag or an
// omitempty shows up as a diff against testdata/*.golden.json, which docs/api.md
// quotes. Run with -update after an intended change and bump Version.
func TestWireGolden(t *testing.T) {
	when := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ssl := Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.1", Release: "23.el9_0", Arch: "aarch64"}
	fixed := Package{Name: "openssl-libs", Epoch: "1", Version: "3.0.7", Release: "16.el9_2", Arch: "aarch64"}
	tests := []struct {
		name string
		v    any
	}{
		{"enroll-request", EnrollRequest{Token: "et_secret", Name: "pi-kitchen", Device: DeviceInfo{OSID: "almalinux", OSVersionID: "9.0", Arch: "aarch64", Kernel: "5.14.0-70.13.1.el9_0.aarch64", Hostname: "pi-kitchen", AgentVersion: "0.1.0"}}},
		{"report-full", Report{ID: "r-0001", Time: when, Device: DeviceInfo{OSID: "almalinux", OSVersionID: "9.0", Arch: "aarch64", Kernel: "5.14.0-70.13.1.el9_0.aarch64", Hostname: "pi-kitchen", AgentVersion: "0.1.0"},
			Inventory: Inventory{Kind: InventoryFull, Packages: []Package{ssl}, Digest: InventoryDigest([]Package{ssl})}}},
		{"report-delta", Report{ID: "r-0002", Time: when, Device: DeviceInfo{OSID: "almalinux", OSVersionID: "9.2", Arch: "aarch64"},
			Inventory: Inventory{Kind: InventoryDelta, Added: []Package{fixed}, Removed: []Package{ssl}, Digest: InventoryDigest([]Package{fixed})},
			Cycles:    []CycleResult{{Advisories: []string{"ALSA-2023:3722"}, Before: []Package{ssl}, After: []Package{fixed}, Outcome: OutcomeApplied, Started: when, Finished: when.Add(time.Minute)}}}},
		{"cve-response", CVEResponse{CVE: "CVE-2023-2650",
			Exposed: []CVEExposure{{Device: "pi-kitchen", Advisory: "ALSA-2023:3722", Package: "openssl-libs", Installed: "1:3.0.1-23.el9_0", Fixed: "1:3.0.7-16.el9_2"}},
			Patched: []CVEPatched{{Device: "pi-garage", Advisory: "ALSA-2023:3722"}}}},
		{"error", Error{Error: "inventory.packages[3]: empty name", Field: "inventory.packages[3].name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.MarshalIndent(tt.v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s changed:\n got: %s\nwant: %s", path, got, want)
			}
		})
	}
}

// FuzzInventoryDigest checks the digest does not depend on order, and is
// pkg/inventory's Digest for any package.
func FuzzInventoryDigest(f *testing.F) {
	f.Add("openssl-libs", "1", "3.0.1", "23.el9_0", "aarch64", "bash", "5.1.8")
	f.Fuzz(func(t *testing.T, n1, e1, v1, r1, a1, n2, v2 string) {
		p := Package{Name: n1, Epoch: e1, Version: v1, Release: r1, Arch: a1}
		q := Package{Name: n2, Version: v2, Release: r1, Arch: a1}
		if InventoryDigest([]Package{p, q}) != InventoryDigest([]Package{q, p}) {
			t.Errorf("digest depends on order")
		}
		if got, want := InventoryDigest([]Package{p, q}), inventory.Digest([]inventory.Package{toInventory(p), toInventory(q)}); got != want {
			t.Errorf("InventoryDigest = %s, inventory.Digest = %s", got, want)
		}
	})
}

func toInventory(p Package) inventory.Package {
	return inventory.Package{Name: p.Name, EVR: rpmver.EVR{Epoch: p.Epoch, Version: p.Version, Release: p.Release},
		Arch: p.Arch, ModularityLabel: p.ModularityLabel}
}

// TestDigestMatchesInventory holds the wire digest equal to the one the
// agent computes with pkg/inventory, on a real installed set (UBI 9 aarch64)
// with and without epochs and modularity labels.
func TestDigestMatchesInventory(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "ubi9_ubi-aarch64-rpm-manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []Package
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 7 || f[0] == "name" {
			continue
		}
		pkgs = append(pkgs, Package{Name: f[0], Version: f[1], Release: f[2], Arch: f[3]})
	}
	if len(pkgs) < 100 {
		t.Fatalf("read %d packages, want the whole image", len(pkgs))
	}
	pkgs[0].Epoch = "1"
	pkgs[1].Epoch = "0"
	pkgs[2].ModularityLabel = "perl:5.32:9000020220101:abcd"
	inv := make([]inventory.Package, len(pkgs))
	for i, p := range pkgs {
		inv[i] = toInventory(p)
	}
	if got, want := InventoryDigest(pkgs), inventory.Digest(inv); got != want {
		t.Errorf("InventoryDigest = %s, inventory.Digest = %s", got, want)
	}
}
