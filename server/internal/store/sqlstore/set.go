package sqlstore

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// A package set is stored as one blob: a line per package,
// "name\tepoch\tversion\trelease\tarch\tmodularity_label\n", sorted. It is
// compact, quick to read back whole, and never queried by field: findings
// carry what queries need.

func sortPackages(ps []protocol.Package) {
	slices.SortFunc(ps, func(a, b protocol.Package) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Epoch, b.Epoch),
			cmp.Compare(a.Version, b.Version), cmp.Compare(a.Release, b.Release), cmp.Compare(a.ModularityLabel, b.ModularityLabel))
	})
}

func encodeSet(ps []protocol.Package) ([]byte, error) {
	var b bytes.Buffer
	for _, p := range ps {
		for i, f := range [...]string{p.Name, p.Epoch, p.Version, p.Release, p.Arch, p.ModularityLabel} {
			if bytes.ContainsAny([]byte(f), "\t\n") {
				return nil, fmt.Errorf("encode package set: package %s: tab or newline in a field", p.Key())
			}
			if i > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(f)
		}
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

func decodeSet(blob []byte) ([]protocol.Package, error) {
	ps := make([]protocol.Package, 0, bytes.Count(blob, []byte{'\n'}))
	for n := 1; len(blob) > 0; n++ {
		line, rest, ok := bytes.Cut(blob, []byte{'\n'})
		if !ok {
			return nil, fmt.Errorf("decode package set: line %d: no newline", n)
		}
		blob = rest
		f := bytes.Split(line, []byte{'\t'})
		if len(f) != 6 {
			return nil, fmt.Errorf("decode package set: line %d: %d fields, want 6", n, len(f))
		}
		ps = append(ps, protocol.Package{Name: string(f[0]), Epoch: string(f[1]), Version: string(f[2]),
			Release: string(f[3]), Arch: string(f[4]), ModularityLabel: string(f[5])})
	}
	return ps, nil
}
