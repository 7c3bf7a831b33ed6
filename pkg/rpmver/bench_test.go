package rpmver

import "testing"

// realPairs parses the 1306 real AlmaLinux OSV EVR pairs.
func realPairs(b *testing.B) [][2]EVR {
	b.Helper()
	var pairs [][2]EVR
	for _, r := range readTSV(b, "almalinux-osv-evr-pairs.tsv", 5) {
		pairs = append(pairs, [2]EVR{MustParseEVR(r.fields[2]), MustParseEVR(r.fields[3])})
	}
	return pairs
}

// BenchmarkCompare compares real EVR pairs (same package, consecutive
// advisories), so most comparisons run deep into the version or release.
// One op is one Compare.
func BenchmarkCompare(b *testing.B) {
	pairs := realPairs(b)
	sum, i := 0, 0
	for b.Loop() {
		p := pairs[i]
		sum += Compare(p[0], p[1])
		if i++; i == len(pairs) {
			i = 0
		}
	}
	_ = sum
}

// BenchmarkParseEVR parses the same real EVR strings. One op is one parse.
func BenchmarkParseEVR(b *testing.B) {
	var evrs []string
	for _, r := range readTSV(b, "almalinux-osv-evr-pairs.tsv", 5) {
		evrs = append(evrs, r.fields[2], r.fields[3])
	}
	i := 0
	for b.Loop() {
		if _, err := ParseEVR(evrs[i]); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(evrs) {
			i = 0
		}
	}
}
