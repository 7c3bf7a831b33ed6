package update

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rpmfleet/rpmfleet/pkg/inventory"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// synthRepo writes a repository folder whose primary.xml lists n synthetic
// packages plus demo-lib 1.0-1 and 1.1-1, and whose updateinfo fixes
// demo-lib in 1.1-1, with repomd.xml giving both files' digests.
func synthRepo(tb testing.TB, dir string, n int) {
	tb.Helper()
	rd := filepath.Join(dir, "repodata")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		tb.Fatal(err)
	}
	write := func(typ string, body func(w io.Writer)) string {
		path := filepath.Join(rd, typ+".xml.gz")
		f, err := os.Create(path)
		if err != nil {
			tb.Fatal(err)
		}
		zsum, osum := sha256.New(), sha256.New()
		zw, _ := gzip.NewWriterLevel(io.MultiWriter(f, zsum), gzip.BestSpeed)
		cw := &countWriter{w: io.MultiWriter(zw, osum)}
		body(cw)
		if err := zw.Close(); err != nil {
			tb.Fatal(err)
		}
		fi, _ := f.Stat()
		f.Close()
		return fmt.Sprintf(`<data type="%s"><checksum type="sha256">%x</checksum><open-checksum type="sha256">%x</open-checksum><location href="repodata/%s.xml.gz"/><size>%d</size><open-size>%d</open-size></data>`,
			typ, zsum.Sum(nil), osum.Sum(nil), typ, fi.Size(), cw.n)
	}
	pkg := func(w io.Writer, name, ver string, i int) {
		fmt.Fprintf(w, `<package type="rpm"><name>%s</name><arch>x86_64</arch><version epoch="0" ver="%s" rel="1"/><checksum type="sha256" pkgid="YES">%064x</checksum>`+
			`<summary>synthetic package %d</summary><description>A synthetic package, so that primary.xml is as long as a distribution's, with a description of ordinary length.</description>`+
			`<packager>bench</packager><url>https://example.org/</url><time file="1700000000" build="1700000000"/><size package="123456" installed="654321" archive="655000"/>`+
			`<location href="Packages/%s-%s-1.x86_64.rpm"/><format><rpm:license>MIT</rpm:license><rpm:sourcerpm>%s-%s-1.src.rpm</rpm:sourcerpm>`+
			`<rpm:provides><rpm:entry name="%s" flags="EQ" epoch="0" ver="%s" rel="1"/></rpm:provides><rpm:requires><rpm:entry name="libc.so.6()(64bit)"/></rpm:requires><file>/usr/lib64/lib%s.so.1</file></format></package>`+"\n",
			name, ver, i, i, name, ver, name, ver, name, ver, name)
	}
	primary := write("primary", func(w io.Writer) {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="%d">`+"\n", n+2)
		for i := range n {
			pkg(w, fmt.Sprintf("synth-%d", i), "1.0", i)
			if i == n/2 {
				pkg(w, "demo-lib", "1.0", n)
				pkg(w, "demo-lib", "1.1", n+1)
			}
		}
		if n == 0 {
			pkg(w, "demo-lib", "1.0", n)
			pkg(w, "demo-lib", "1.1", n+1)
		}
		io.WriteString(w, "</metadata>\n")
	})
	ui := write("updateinfo", func(w io.Writer) {
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><updates><update from="bench" status="final" type="security" version="1"><id>BENCH-1</id><title>t</title><severity>Important</severity>`+
			`<issued date="2026-01-01 00:00:00"/><pkglist><collection short="c"><name>c</name><package name="demo-lib" version="1.1" release="1" epoch="0" arch="x86_64"><filename>demo-lib-1.1-1.x86_64.rpm</filename></package></collection></pkglist></update></updates>`)
	})
	repomd := `<?xml version="1.0" encoding="UTF-8"?><repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision>` + primary + ui + `</repomd>`
	if err := os.WriteFile(filepath.Join(rd, "repomd.xml"), []byte(repomd), 0o644); err != nil {
		tb.Fatal(err)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

var benchInstalled = []inventory.Package{
	{Name: "demo-lib", EVR: rpmver.MustParseEVR("1.0-1"), Arch: "x86_64"},
	{Name: "bash", EVR: rpmver.MustParseEVR("5.1.8-9.el9"), Arch: "x86_64"},
}

// TestPlanFromLargePrimary: the plan finds the one fix and its rollback in
// a primary.xml of 10,000 packages, streaming it.
func TestPlanFromLargePrimary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	synthRepo(t, dir, 10000)
	r, err := repo.New(dir, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := makePlan(context.Background(), []*repo.Repo{r}, benchInstalled, Selection{IDs: []string{"BENCH-1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Packages) != 1 || p.Packages[0].To != "1.1-1" || p.Packages[0].Old == nil || p.Packages[0].Old.NEVRA != "demo-lib-1.0-1.x86_64" {
		t.Fatalf("plan: %+v", p.Packages)
	}
}

// BenchmarkPlan makes the plan from primary.xml files of growing size and
// reports the process's peak RSS, which should stay flat: the plan keeps only
// the packages it wants. Run one size per process to read the peak alone:
//
//	go test -run NONE -bench 'Plan/50000' ./agent/internal/update
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{5000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			synthRepo(b, dir, n)
			r, err := repo.New(dir, repo.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := makePlan(context.Background(), []*repo.Repo{r}, benchInstalled, Selection{IDs: []string{"BENCH-1"}}, nil); err != nil {
					b.Fatal(err)
				}
			}
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB")
		})
	}
}
