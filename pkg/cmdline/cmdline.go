// Package cmdline holds what rpmfleet's two command lines (rpmfleet-agent
// and rpmfleet) share about command names: a suggestion for a mistyped one
// and the shell completion scripts.
package cmdline

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Suggest returns the known names close to name: those within two edits
// (one for names of up to four letters), or that name starts. Nearest
// first, at most three.
func Suggest(name string, known []string) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	limit := 2
	if len(name) <= 4 {
		limit = 1
	}
	for _, k := range known {
		d := distance(strings.ToLower(name), k)
		switch {
		case d <= limit:
			cs = append(cs, cand{k, d})
		case len(name) >= 2 && strings.HasPrefix(k, strings.ToLower(name)):
			cs = append(cs, cand{k, limit + 1})
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		if a.d != b.d {
			return a.d - b.d
		}
		return strings.Compare(a.name, b.name)
	})
	var out []string
	for _, c := range cs[:min(len(cs), 3)] {
		out = append(out, c.name)
	}
	return out
}

// Unknown writes the message for an unknown command: what was typed,
// quoted and escaped by %q, the suggestions if any, and where the list is.
func Unknown(w io.Writer, prog, name string, known []string) {
	fmt.Fprintf(w, "%s: unknown command %q", prog, name)
	if s := Suggest(name, known); len(s) > 0 {
		fmt.Fprintf(w, "; did you mean %s?", strings.Join(s, " or "))
	}
	fmt.Fprintf(w, "\nRun '%s help' for the list.\n", prog)
}

// distance is the Levenshtein distance between a and b, by bytes (command
// names are ASCII).
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
