package updateinfo_test

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
)

// Read advisories one at a time from a compressed updateinfo.xml; the
// compression is found by magic bytes.
func ExampleDecoder() {
	f, err := os.Open("testdata/rocky8-updateinfo.xml.zst")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	d := updateinfo.NewDecoder(f)
	defer d.Close()
	for {
		a, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(a.ID, a.Type, a.Severity, a.CVEs, len(a.Packages))
	}
	// Output:
	// RLBA-2021:2580 bugfix None [] 3
	// RLSA-2021:2575 security Moderate [CVE-2021-3520] 1
	// RLSA-2021:3057 security Important [CVE-2021-22543 CVE-2021-22555 CVE-2021-3609] 1
	// RLSA-2019:1972 security Important [CVE-2019-8324] 2
}
