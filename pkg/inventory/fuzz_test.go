package inventory

import (
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// packagesOf reads a package list from fuzz text: one package a line,
// "name epoch version release arch label", missing fields empty.
func packagesOf(s string) []Package {
	var out []Package
	for _, l := range strings.Split(s, "\n") {
		f := strings.Split(l, " ")
		for len(f) < 6 {
			f = append(f, "")
		}
		out = append(out, Package{Name: f[0], EVR: rpmver.EVR{Epoch: f[1], Version: f[2], Release: f[3]}, Arch: f[4], ModularityLabel: f[5]})
	}
	return out
}

// FuzzDiff holds Diff and Digest to what a server relies on for the lists a
// device reports: the old list with removed taken out and added put in has
// the new list's digest; the digest ignores order; a list compared with
// itself has no difference.
func FuzzDiff(f *testing.F) {
	f.Add("bash 0 5.1.8 6.el9 x86_64 \nopenssl 1 3.0.7 16.el9_2 x86_64 ", "bash 0 5.1.8 9.el9 x86_64 \nnodejs 1 18.1 1 x86_64 nodejs:18:9020:abc")
	f.Add("a\na\nb", "a\nb\nb")
	f.Fuzz(func(t *testing.T, a, b string) {
		old, new := packagesOf(a), packagesOf(b)
		added, removed := Diff(old, new)
		got := slices.Clone(old)
		for _, r := range removed {
			i := slices.IndexFunc(got, func(p Package) bool { return p.canonical() == r.canonical() })
			if i < 0 {
				t.Fatalf("removed %v, which the old list does not hold", r)
			}
			got = slices.Delete(got, i, i+1)
		}
		got = append(got, added...)
		if Digest(got) != Digest(new) {
			t.Fatalf("old - removed + added has another digest than new\nold %v\nnew %v\nadded %v\nremoved %v", old, new, added, removed)
		}
		rev := slices.Clone(new)
		slices.Reverse(rev)
		if Digest(rev) != Digest(new) {
			t.Fatal("the digest depends on the order")
		}
		if a, r := Diff(new, rev); len(a) != 0 || len(r) != 0 {
			t.Fatalf("a list differs from itself reordered: added %v, removed %v", a, r)
		}
	})
}
