package repo_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/rpmfleet/rpmfleet/pkg/repo"
)

// List a repository's metadata and stream its primary.xml. The same code
// reads an http(s) URL; the checksums of repomd.xml are checked as the
// files stream in (this fixture's primary.xml was trimmed after its
// repomd.xml was written, so the check fails at the end).
func ExampleRepo() {
	r, err := repo.New("testdata/yummy", repo.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	m, err := r.Metadata(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range m.Data {
		fmt.Println(d.Type, d.Location)
	}
	p, err := r.Primary(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for {
		pkg, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(pkg.NEVRA(), pkg.Location)
	}
	// Output:
	// other repodata/other.xml.gz
	// filelists repodata/filelists.xml.gz
	// primary repodata/primary.xml.gz
	// group repodata/comps.xml
	// updateinfo repodata/updateinfo.xml.gz
	// modules repodata/module.yaml.zst
	// nss-devel-0:3.19.1-18.el7.i686 Packages/n/nss-devel-3.19.1-18.el7.i686.rpm
	// tpm-quote-tools-0:1.0.2-3.el7.x86_64 Packages/t/tpm-quote-tools-1.0.2-3.el7.x86_64.rpm
	// primary: line 86: repo: checksum mismatch: testdata/yummy/repodata/primary.xml.gz: repomd.xml says sha256:0d601662ea6b0c7e71e02a1a71a85852b3ddba6ff900ad9406d38fb543393091, the file has sha256:82223f69a4954f5a172973631e45a17af8fe8255e7748444c8842bb28713fbb6
}
