// Command advisoryrepo makes a dnf repository whose updateinfo.xml holds the
// advisories of an OSV database, for benchmarks and demos that compare
// rpmfleet with dnf on the same advisories:
//
//	go run ./internal/rpmtest/cmd/advisoryrepo -osv almalinux9.jsonl.gz -ecosystem AlmaLinux:9 -out DIR
//
// OSV gives no arch, so each fixed package is listed once per -arch.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/rpmfleet/rpmfleet/internal/rpmtest"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/osv"
)

func main() {
	src := flag.String("osv", "", "OSV file, folder or JSON lines")
	eco := flag.String("ecosystem", "", "keep only this ecosystem (\"AlmaLinux:9\")")
	arches := flag.String("arch", "aarch64,noarch", "comma-separated arches to list each arch-less package under")
	out := flag.String("out", "", "repository folder to make")
	flag.Parse()
	if *src == "" || *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*src, *eco, strings.Split(*arches, ","), *out); err != nil {
		fmt.Fprintln(os.Stderr, "advisoryrepo:", err)
		os.Exit(1)
	}
}

func run(src, eco string, arches []string, out string) error {
	advs, err := osv.ParseFile(src, osv.Options{Ecosystem: eco})
	if err != nil {
		return err
	}
	xml, err := rpmtest.UpdateinfoXML(advs, arches)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := rpmtest.NewRepo(out, nil, xml); err != nil {
		return err
	}
	fmt.Printf("%s: %d advisories\n", out, len(advs))
	return nil
}
