package inventory

import (
	"reflect"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

func pkg(name, evr, arch, label string) Package {
	return Package{Name: name, EVR: rpmver.MustParseEVR(evr), Arch: arch, ModularityLabel: label}
}

func TestModule(t *testing.T) {
	tests := []struct {
		label, name, stream string
		ok                  bool
	}{
		{"nodejs:18:8090020240226101806:a7c0f3f3", "nodejs", "18", true},
		{"postgresql:15:9040020240503135522:rhel9", "postgresql", "15", true},
		{"perl:5.32", "perl", "5.32", true},
		{"", "", "", false},
		{"nodejs", "", "", false},
		{"nodejs::1:a", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			name, stream, ok := Package{ModularityLabel: tc.label}.Module()
			if name != tc.name || stream != tc.stream || ok != tc.ok {
				t.Errorf("Module() = %q, %q, %v; want %q, %q, %v", name, stream, ok, tc.name, tc.stream, tc.ok)
			}
		})
	}
}

func TestDigest(t *testing.T) {
	a := []Package{
		pkg("openssl-libs", "1:3.0.1-23.el9_0", "aarch64", ""),
		pkg("bash", "5.1.8-4.el9", "aarch64", ""),
		pkg("nodejs", "1:18.19.1-1.module_el9", "aarch64", "nodejs:18:1:a"),
	}
	reordered := []Package{a[2], a[0], a[1]}
	zeroEpoch := []Package{a[0], pkg("bash", "0:5.1.8-4.el9", "aarch64", ""), a[2]}
	tests := []struct {
		name  string
		other []Package
		same  bool
	}{
		{"same set, other order", reordered, true},
		{"epoch 0 written out", zeroEpoch, true},
		{"one package fewer", a[:2], false},
		{"newer release", []Package{a[0], pkg("bash", "5.1.8-5.el9", "aarch64", ""), a[2]}, false},
		{"other arch", []Package{a[0], pkg("bash", "5.1.8-4.el9", "x86_64", ""), a[2]}, false},
		{"other stream", []Package{a[0], a[1], pkg("nodejs", "1:18.19.1-1.module_el9", "aarch64", "nodejs:20:1:a")}, false},
		{"duplicate", append([]Package{a[1]}, a...), false},
	}
	want := Digest(a)
	if len(want) != 64 {
		t.Fatalf("Digest = %q, want 64 hex digits", want)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Digest(tc.other); (got == want) != tc.same {
				t.Errorf("Digest equal = %v, want %v", got == want, tc.same)
			}
		})
	}
	if Digest(nil) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("Digest(nil) = %s, want the SHA-256 of nothing", Digest(nil))
	}
}

func TestDiff(t *testing.T) {
	bashOld := pkg("bash", "5.1.8-4.el9", "aarch64", "")
	bashNew := pkg("bash", "5.1.8-6.el9_1", "aarch64", "")
	ssl := pkg("openssl-libs", "1:3.0.1-23.el9_0", "aarch64", "")
	k1 := pkg("kernel-core", "5.14.0-70.el9", "aarch64", "")
	k2 := pkg("kernel-core", "5.14.0-162.el9", "aarch64", "")
	tests := []struct {
		name           string
		old, new       []Package
		added, removed []Package
	}{
		{"nothing changed", []Package{bashOld, ssl}, []Package{ssl, bashOld}, nil, nil},
		{"upgrade", []Package{bashOld, ssl}, []Package{ssl, bashNew}, []Package{bashNew}, []Package{bashOld}},
		{"install", []Package{ssl}, []Package{ssl, bashOld}, []Package{bashOld}, nil},
		{"erase", []Package{ssl, bashOld}, []Package{bashOld}, nil, []Package{ssl}},
		{"second kernel installed", []Package{k1}, []Package{k2, k1}, []Package{k2}, nil},
		{"from nothing", nil, []Package{ssl, k2, k1}, []Package{k1, k2, ssl}, nil},
		{"epoch 0 equals none", []Package{bashOld}, []Package{pkg("bash", "0:5.1.8-4.el9", "aarch64", "")}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			added, removed := Diff(tc.old, tc.new)
			if !reflect.DeepEqual(added, tc.added) || !reflect.DeepEqual(removed, tc.removed) {
				t.Errorf("Diff = +%v -%v; want +%v -%v", added, removed, tc.added, tc.removed)
			}
		})
	}
}

func TestNEVRA(t *testing.T) {
	p := pkg("openssl-libs", "1:3.0.1-23.el9_0", "aarch64", "")
	n := p.NEVRA()
	back, err := rpmver.ParseNEVRA("openssl-libs-1:3.0.1-23.el9_0.aarch64")
	if err != nil || n != back {
		t.Errorf("NEVRA() = %+v, want %+v (%v)", n, back, err)
	}
	if p.String() != "openssl-libs-1:3.0.1-23.el9_0.aarch64" {
		t.Errorf("String() = %s", p)
	}
}
