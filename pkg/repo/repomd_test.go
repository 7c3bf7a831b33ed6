package repo

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rpmfleet/rpmfleet/internal/fixtures"
)

// sharedFixtures returns the fixture folder, testdata/ at the module root.
func sharedFixtures(t testing.TB) string {
	t.Helper()
	return fixtures.Path(t, ".")
}

func parseRepomdFile(t *testing.T, path string) *Repomd {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ParseRepomd(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func types(m *Repomd) []string {
	var out []string
	for _, d := range m.Data {
		out = append(out, d.Type)
	}
	return out
}

func TestParseRepomdFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		path     string
		revision string
		types    []string
		check    func(t *testing.T, m *Repomd)
	}{
		{
			name: "rocky 8.4 baseos", path: "testdata/rocky8-repomd.xml", revision: "8.4",
			types: []string{"primary", "filelists", "other", "primary_db", "filelists_db", "other_db", "group", "group_xz", "updateinfo"},
			check: func(t *testing.T, m *Repomd) {
				d, _ := m.Get("primary")
				want := Data{
					Type:         "primary",
					Location:     "repodata/9d25370cf8f2bdf046145fa51ef3d0229ecc6862cbe35281a70184cc39089f54-primary.xml.gz",
					Checksum:     Checksum{"sha256", "9d25370cf8f2bdf046145fa51ef3d0229ecc6862cbe35281a70184cc39089f54"},
					OpenChecksum: Checksum{"sha256", "554780b39c8a31f3b92eb2356f38099bd6135834c51542c8ffb889aa6d37c1a0"},
					Size:         4136440, OpenSize: 29944727,
					Timestamp: time.Unix(1632166291, 0).UTC(),
				}
				if !reflect.DeepEqual(d, want) {
					t.Errorf("primary:\n got %+v\nwant %+v", d, want)
				}
				u, ok := m.Get("updateinfo")
				if !ok || u.Location != "repodata/updateinfo.xml.gz" || u.Size != 24366 || u.OpenSize != 184021 {
					t.Errorf("updateinfo: %+v", u)
				}
			},
		},
		{
			name: "rocky 8.4 extras without updateinfo", path: "testdata/rocky8-extras-repomd.xml", revision: "8.4",
			types: []string{"primary", "filelists", "other", "primary_db", "filelists_db", "other_db", "group", "group_xz"},
			check: func(t *testing.T, m *Repomd) {
				if _, ok := m.Get("updateinfo"); ok {
					t.Error("found updateinfo")
				}
			},
		},
		{
			name: "amazon", path: "testdata/amazon-repomd.xml", revision: "1569972356",
			types: []string{"primary_db", "group_gz", "group", "updateinfo", "other_db", "filelists_db"},
			check: func(t *testing.T, m *Repomd) {
				d, _ := m.Get("primary_db")
				if d.DatabaseVersion != 10 || d.Location != "repodata/primary.sqlite.gz" || d.Size != 34874486 {
					t.Errorf("primary_db: %+v", d)
				}
				g, _ := m.Get("group")
				if g.OpenChecksum != (Checksum{}) || g.OpenSize != 0 {
					t.Errorf("group has no open-checksum, got %+v", g)
				}
			},
		},
		{
			name: "yummy rhel7 subset", path: "testdata/yummy/repodata/repomd.xml", revision: "1308257578",
			types: []string{"other", "filelists", "primary", "group", "updateinfo", "modules"},
			check: func(t *testing.T, m *Repomd) {
				d, _ := m.Get("modules")
				if d.Location != "repodata/module.yaml.zst" || d.Size != 0 || !d.Timestamp.Equal(time.Unix(1299190192, 0)) {
					t.Errorf("modules: %+v", d)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parseRepomdFile(t, tt.path)
			if m.Revision != tt.revision {
				t.Errorf("revision %q, want %q", m.Revision, tt.revision)
			}
			if got := types(m); !reflect.DeepEqual(got, tt.types) {
				t.Errorf("types %v, want %v", got, tt.types)
			}
			tt.check(t, m)
		})
	}
}

func TestParseRepomdErrors(t *testing.T) {
	t.Parallel()
	const sum = "0d601662ea6b0c7e71e02a1a71a85852b3ddba6ff900ad9406d38fb543393091"
	data := func(inner string) string {
		return "<?xml version=\"1.0\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\">\n<data type=\"primary\">" + inner + "</data>\n</repomd>"
	}
	loc := `<location href="repodata/p.xml.gz"/>`
	tests := []struct{ name, in, want string }{
		{"empty", "", "repo: not a repomd.xml: no root element"},
		{"not repomd", "<metadata/>", "repo: not a repomd.xml: line 1: root element is <metadata>, want <repomd>"},
		{"no checksum", data(loc), `line 3: data "primary": missing <checksum>`},
		{"no location", data(`<checksum type="sha256">` + sum + `</checksum>`), `line 3: data "primary": missing <location href>`},
		{"unknown checksum type", data(loc + `<checksum type="crc32">abcd</checksum>`), `data "primary": <checksum>: repo: unknown checksum type "crc32"`},
		{"short checksum", data(loc + `<checksum type="sha256">abcd</checksum>`), `data "primary": <checksum>: sha256 "abcd" is not 64 hex digits`},
		{"bad size", data(loc + `<checksum type="sha256">` + sum + `</checksum><size>big</size>`), `data "primary": <size> "big" is not a size`},
		{"bad timestamp", data(loc + `<checksum type="sha256">` + sum + `</checksum><timestamp>noon</timestamp>`), `<timestamp> "noon" is not a unix time`},
		{"syntax", "<repomd>\n<data type=\"primary\">\n</repomd>", "repo: repomd.xml: line 3: element <data> closed by </repomd>"},
		{"no type", "<repomd><data>" + loc + "</data></repomd>", "line 1: <data> without type"},
		{"twice", "<repomd>\n" + strings.Repeat("<data type=\"primary\">"+loc+"<checksum type=\"sha\">"+sum[:40]+"</checksum></data>\n", 2) + "</repomd>", `line 3: data "primary" listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRepomd(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := ParseRepomd(strings.NewReader("<x/>")); !errors.Is(err, ErrNotRepomd) {
		t.Errorf("got %v, want ErrNotRepomd", err)
	}
	huge := "<repomd><revision>" + strings.Repeat("x", maxRepomdSize) + "</revision></repomd>"
	if _, err := ParseRepomd(strings.NewReader(huge)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized repomd.xml: got %v", err)
	}
}

func TestChecksumTypeSha(t *testing.T) {
	t.Parallel()
	in := `<repomd><data type="primary"><location href="repodata/p.xml.gz"/><checksum type="sha">` + strings.Repeat("AB", 20) + `</checksum></data></repomd>`
	m, err := ParseRepomd(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Data[0].Checksum; got != (Checksum{"sha1", strings.Repeat("ab", 20)}) {
		t.Errorf("got %+v: old createrepo's \"sha\" is sha1, hex kept lower case", got)
	}
}

func FuzzRepomd(f *testing.F) {
	for _, p := range []string{"testdata/rocky8-repomd.xml", "testdata/rocky8-extras-repomd.xml", "testdata/amazon-repomd.xml", "testdata/yummy/repodata/repomd.xml"} {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseRepomd(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, d := range m.Data {
			if d.Type == "" || d.Location == "" || len(d.Checksum.Value) != algorithms[d.Checksum.Type].hexLen {
				t.Fatalf("accepted incomplete data %+v", d)
			}
		}
	})
}
