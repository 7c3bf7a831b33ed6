package rpmtest

import (
	"bytes"
	"fmt"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/advisory/updateinfo"
)

// UpdateinfoXML writes advisories as updateinfo.xml. Real updateinfo lists a
// package once per arch, and OSV gives none, so every fixed entry without an
// arch is written once for each of arches; entries with an arch are kept.
func UpdateinfoXML(advs []advisory.Advisory, arches []string) ([]byte, error) {
	var buf bytes.Buffer
	w := updateinfo.NewWriter(&buf)
	for i := range advs {
		a := advs[i]
		a.Packages = nil
		for _, p := range advs[i].Packages {
			if p.Arch != "" {
				a.Packages = append(a.Packages, p)
				continue
			}
			for _, arch := range arches {
				p.Arch = arch
				a.Packages = append(a.Packages, p)
			}
		}
		if err := w.Write(&a); err != nil {
			return nil, fmt.Errorf("rpmtest: updateinfo: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("rpmtest: updateinfo: %w", err)
	}
	return buf.Bytes(), nil
}
