package source

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

// TestLoadEveryKind reads the same real advisories from every kind of source
// a user may name and requires the same ids from each: the kind is told by
// content, and a repository leads through repomd.xml to its updateinfo.
func TestLoadEveryKind(t *testing.T) {
	fixtures, err := rpmtest.FixturesDir()
	if err != nil {
		t.Fatal(err)
	}
	samples := filepath.Join(fixtures, "almalinux-osv", "samples")
	entries, err := os.ReadDir(samples)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// JSON lines, plain and gzip, under names that say nothing.
	var jsonl bytes.Buffer
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(samples, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		jsonl.Write(bytes.Join(bytes.Fields(b), []byte(" ")))
		jsonl.WriteByte('\n')
	}
	plain := write(t, dir, "advisories.data", jsonl.Bytes())
	gz := filepath.Join(dir, "advisories.bin")
	gzipFile(t, plain, gz)
	gzipFile(t, plain, filepath.Join(dir, "feed.jsonl.gz"))

	want := ids(t, mustLoad(t, samples))
	if len(want) < 10 {
		t.Fatalf("only %d advisories in the samples folder", len(want))
	}

	// The same advisories as updateinfo.xml in a repository, on disk and
	// over HTTP, with their descriptions.
	advs, err := Load(context.Background(), samples, Options{Descriptions: true})
	if err != nil {
		t.Fatal(err)
	}
	descs := map[string]string{}
	for _, a := range advs {
		descs[a.ID] = a.Description
	}
	xml, err := rpmtest.UpdateinfoXML(advs, []string{"x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	uiFile := write(t, dir, "updateinfo", xml)
	repoDir := filepath.Join(dir, "repo")
	if err := rpmtest.NewRepo(repoDir, nil, xml); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()

	for _, tc := range []struct{ name, src string }{
		{"OSV folder", samples},
		{"OSV single file", filepath.Join(samples, "almalinux9_ALSA-2023_3722.json")},
		{"JSON lines", plain},
		{"JSON lines, gzip", gz},
		{"updateinfo.xml", uiFile},
		{"repository folder", repoDir},
		{"repomd.xml file", filepath.Join(repoDir, "repodata", "repomd.xml")},
		{"repository URL", srv.URL + "/repo"},
		{"repository URL with slash", srv.URL + "/repo/"},
		{"file URL", srv.URL + "/feed.jsonl.gz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(context.Background(), tc.src, Options{})
			if err != nil {
				t.Fatal(err)
			}
			g := ids(t, got)
			if tc.name == "OSV single file" {
				if !slices.Equal(g, []string{"AlmaLinux:9 ALSA-2023:3722"}) {
					t.Errorf("got %q", g)
				}
				return
			}
			w := want
			if tc.name == "updateinfo.xml" || tc.name == "repository folder" || tc.name == "repomd.xml file" || tc.name == "repository URL" || tc.name == "repository URL with slash" {
				w = withoutEcosystem(want) // updateinfo does not say the release
			}
			if !slices.Equal(g, w) {
				t.Errorf("got %d advisories %q\nwant %d %q", len(g), g, len(w), w)
			}
			for _, a := range got {
				if a.Description != "" {
					t.Fatalf("%s: a description kept without Options.Descriptions", a.ID)
				}
			}
			// With Descriptions, every kind carries each advisory's own.
			got, err = Load(context.Background(), tc.src, Options{Descriptions: true})
			if err != nil {
				t.Fatal(err)
			}
			words := func(s string) string { return strings.Join(strings.Fields(s), " ") }
			for _, a := range got {
				// The JSON lines were made by joining each file's
				// fields, which joins the spaces inside strings too.
				if d := descs[a.ID]; a.Description != d && words(a.Description) != words(d) || d == "" {
					t.Errorf("%s: description %.40q, want %.40q", a.ID, a.Description, d)
				}
			}
		})
	}
}

// TestLoadErrors: what is not a source of advisories is an error naming it.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	for _, tc := range []struct {
		name, src string
		is        error
	}{
		{"plain text", write(t, dir, "notes", []byte("hello\n")), ErrUnknownFormat},
		{"empty file", write(t, dir, "empty", nil), ErrUnknownFormat},
		{"missing file", filepath.Join(dir, "nope"), os.ErrNotExist},
		{"folder without OSV", t.TempDir(), nil},
		{"repository URL that is not one", srv.URL + "/repo", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(context.Background(), tc.src, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.src)) {
				t.Errorf("error %q does not name %s", err, tc.src)
			}
		})
	}
}

func mustLoad(t *testing.T, src string) []advisory.Advisory {
	t.Helper()
	advs, err := Load(context.Background(), src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return advs
}

func ids(t *testing.T, advs []advisory.Advisory) []string {
	t.Helper()
	var out []string
	for _, a := range advs {
		out = append(out, a.Ecosystem+" "+a.ID)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func withoutEcosystem(ids []string) []string {
	var out []string
	for _, id := range ids {
		_, rest, _ := bytes.Cut([]byte(id), []byte(" "))
		out = append(out, " "+string(rest))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gzipFile(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("gzip", "-c", src).Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
