// Command osvrepo writes the advisories of an OSV database as updateinfo.xml
// into an otherwise empty repository made by createrepo_c and modifyrepo_c,
// so dnf can be asked the question rpmfleet-agent check answers, on the same
// device root (make footprint). OSV gives no arch; real updateinfo lists a
// package once per arch, so each fixed package is written once per -arch.
//
//	osvrepo -osv almalinux9.jsonl.gz -ecosystem AlmaLinux:9 -arch aarch64,noarch -out REPO
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "osvrepo:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	src := flag.String("osv", "", "OSV JSON lines file (.gz allowed)")
	eco := flag.String("ecosystem", "AlmaLinux:9", "OSV ecosystem to take")
	arches := flag.String("arch", "aarch64,noarch", "comma-separated arches to list each fixed package under")
	out := flag.String("out", "", "repository directory to create")
	flag.Parse()
	if *src == "" || *out == "" {
		return fmt.Errorf("-osv and -out are required")
	}
	advs, err := osv.ParseFile(*src, osv.Options{Ecosystem: *eco})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("make repository: %w", err)
	}
	tmp, err := os.MkdirTemp("", "osvrepo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	xmlPath := filepath.Join(tmp, "updateinfo.xml")
	f, err := os.Create(xmlPath)
	if err != nil {
		return err
	}
	defer f.Close()
	w := updateinfo.NewWriter(f)
	for i := range advs {
		a := advs[i]
		a.Packages = nil
		for _, p := range advs[i].Packages {
			for _, arch := range strings.Split(*arches, ",") {
				p.Arch = arch
				a.Packages = append(a.Packages, p)
			}
		}
		if err := w.Write(&a); err != nil {
			return fmt.Errorf("write %s: %w", a.ID, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write updateinfo: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write updateinfo: %w", err)
	}
	for _, c := range [][]string{
		{"createrepo_c", "--quiet", *out},
		{"modifyrepo_c", "--mdtype=updateinfo", xmlPath, filepath.Join(*out, "repodata")},
	} {
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", c[0], err)
		}
	}
	fmt.Fprintf(os.Stderr, "osvrepo: %d advisories in %s\n", len(advs), *out)
	return nil
}
