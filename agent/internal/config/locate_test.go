package config

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestLocate(t *testing.T) {
	src := `# a comment with [brackets] and key = "value"
server = "https://x.example" # trailing comment
'root' = '/r'
a.b.c = 1

[[repo]]
id = "one"
gpgkey = [
  "/k1", # a comment inside an array
  "/k2",
]
[[repo]]
id = """
id = "not a key"
""" 
baseurl = 'C:\path' 
[ policy ]
health_checks = ['''
  [policy.window] not a header
''', "x"]
mode = "apply"
inline = { a = 1, b = [1, 2] }
[[policy.window]]
days = ["sat"]
[[policy.window]]
days = ["sun"]
[[a2]]
[[a2.sub]]
k = 1
[[a2]]
[[a2.sub]]
[[a2.sub]]
k = 2
[a2.other]
q = "\"quoted\\"
z = 1
`
	want := map[string]int{
		"server": 2, "root": 3, "a.b.c": 4,
		"repo": 6, "repo[0]": 6, "repo[0].id": 7, "repo[0].gpgkey": 8,
		"repo[1]": 12, "repo[1].id": 13, "repo[1].baseurl": 16,
		"policy": 17, "policy.health_checks": 18, "policy.mode": 21, "policy.inline": 22,
		"policy.window[0]": 23, "policy.window[0].days": 24, "policy.window[1]": 25, "policy.window[1].days": 26,
		"a2[0]": 27, "a2[0].sub[0]": 28, "a2[0].sub[0].k": 29, "a2[1]": 30, "a2[1].sub[0]": 31, "a2[1].sub[1]": 32, "a2[1].sub[1].k": 33,
		"a2[1].other": 34, "a2[1].other.q": 35, "a2[1].other.z": 36,
	}
	if _, err := toml.Decode(src, new(map[string]any)); err != nil {
		t.Fatalf("the test document is not TOML: %v", err)
	}
	got := locate(src)
	for k, line := range want {
		if got[k] != line {
			t.Errorf("line of %s = %d, want %d", k, got[k], line)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && k != "a2" && k != "policy.window" && k != "a2[0].sub" && k != "a2[1].sub" {
			t.Errorf("unexpected key %s at line %d", k, got[k])
		}
	}
	if l := lineOf(got, "policy.inline.b"); l != 22 {
		t.Errorf("a key inside an inline table falls back to its table's line: got %d, want 22", l)
	}
	if l := lineOf(got, "nowhere.at.all"); l != 0 {
		t.Errorf("unknown key line = %d, want 0", l)
	}
}

var indexRe = regexp.MustCompile(`\[\d+\]`)

// checkLocate holds the locator to the toml parser on one document: every
// key the parser saw must be found on a line that exists, and on a line
// that names it (or its inline table).
func checkLocate(t *testing.T, src string) {
	var doc map[string]any
	md, err := toml.Decode(src, &doc)
	if err != nil {
		return
	}
	lines := map[string]int{}
	for k, l := range locate(src) {
		lines[indexRe.ReplaceAllString(k, "")] = l
	}
	n := strings.Count(src, "\n") + 1
	srcLines := strings.Split(src, "\n")
	for _, k := range md.Keys() {
		parts := make([]string, len(k))
		for i, p := range k {
			parts[i] = keyPart(p)
		}
		l := lineOf(lines, strings.Join(parts, "."))
		if l < 1 || l > n {
			t.Fatalf("key %s: line %d, not in 1..%d\n%s", k, l, n, src)
		}
		last := k[len(k)-1]
		if simpleKey.MatchString(last) && !strings.Contains(srcLines[l-1], last) && !strings.ContainsAny(srcLines[l-1], "{") {
			// The line may hold the key in an inline table or as part of a
			// dotted key; either way the name is on it.
			t.Fatalf("key %s located on line %d, which does not name it: %q\n%s", k, l, srcLines[l-1], src)
		}
	}
}

var simpleKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// FuzzParse feeds Parse arbitrary documents: it must never panic, an error
// must name lines inside the document, and the key locator must agree with
// the toml parser about where keys are.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/many-problems.toml", "../../../cross/rpmpkg/files/agent.toml.example", "../../../cross/rpmpkg/files/agent.toml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("[[a]]\n[[a.b]]\nx = '''\nq = 1\n'''\n[a.c]\n\"k.e\" = {y = [1,\n2]}\n")
	f.Add("[policy]\nexclude = [\"kernel*\", \"\\\"[\"]\n")
	f.Fuzz(func(t *testing.T, src string) {
		_, err := Parse(strings.NewReader(src), "f.toml")
		n := strings.Count(src, "\n") + 1
		if errs, ok := err.(Errors); ok {
			for _, e := range errs {
				if e.Line < 0 || e.Line > n {
					t.Fatalf("error on line %d of a %d-line document: %v", e.Line, n, e)
				}
			}
		}
		checkLocate(t, src)
	})
}
