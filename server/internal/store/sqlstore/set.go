package sqlstore

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"sync"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// A package set is stored as one blob: a line per package,
// "name\tepoch\tversion\trelease\tarch\tmodularity_label\n", sorted. It is
// compact, quick to read back whole, and never queried by field: findings
// carry what queries need.

func sortPackages(ps []protocol.Package) { slices.SortFunc(ps, comparePackages) }

// comparePackages is the order of a stored set.
func comparePackages(a, b protocol.Package) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Epoch, b.Epoch),
		cmp.Compare(a.Version, b.Version), cmp.Compare(a.Release, b.Release), cmp.Compare(a.ModularityLabel, b.ModularityLabel))
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

// setCacheSize is how many decoded package sets a Store keeps: the images
// a fleet runs, whose devices' delta reports each start from one.
const setCacheSize = 512

// setCache keeps decoded package sets by inventory digest. A digest names
// its packages (the digest is checked before a set is stored), so an entry
// never goes stale, whatever transaction rolls back; the cache saves a
// delta report the read and decoding of its device's previous set.
type setCache struct {
	mu    sync.Mutex // guards m, order and next
	m     map[string][]protocol.Package
	order []string // ring of the keys in m, oldest at next
	next  int
}

func newSetCache(n int) *setCache {
	return &setCache{m: make(map[string][]protocol.Package, n), order: make([]string, 0, n)}
}

// get returns the set with the digest; callers must not change it.
func (c *setCache) get(digest string) ([]protocol.Package, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[digest]
	return p, ok
}

func (c *setCache) put(digest string, pkgs []protocol.Package) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[digest]; ok {
		return
	}
	if len(c.order) < cap(c.order) {
		c.order = append(c.order, digest)
	} else {
		delete(c.m, c.order[c.next])
		c.order[c.next] = digest
		c.next = (c.next + 1) % len(c.order)
	}
	c.m[digest] = pkgs
}
