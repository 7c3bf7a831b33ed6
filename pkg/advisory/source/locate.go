package source

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/repo"
)

// repoStream is a repository's updateinfo, with the repository kept so
// that Load can read its primary.xml afterwards (Options.Locations).
type repoStream struct {
	Stream
	r *repo.Repo
}

// locate streams the repository's primary.xml once and, for every
// advisory package whose name, EVR and arch a primary package has, sets
// Filename to that package's location href (relative to the repository)
// and SHA256 to its digest when primary.xml gives a SHA-256. It returns
// how many advisory packages it located. Only the index of the advisories'
// packages is held, never primary.xml.
func locate(ctx context.Context, r *repo.Repo, advs []advisory.Advisory) (int, error) {
	type ref struct{ adv, pkg int }
	want := map[string][]ref{}
	for i := range advs {
		for j := range advs[i].Packages {
			p := &advs[i].Packages[j]
			if p.Arch == "" {
				continue
			}
			k := nevra(p.Name, p.EVR.String(), p.Arch)
			want[k] = append(want[k], ref{i, j})
		}
	}
	if len(want) == 0 {
		return 0, nil
	}
	prim, err := r.Primary(ctx)
	if err != nil {
		return 0, fmt.Errorf("primary.xml: %w", err)
	}
	defer prim.Close()
	n := 0
	for {
		p, err := prim.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("primary.xml: %w", err)
		}
		refs := want[nevra(p.Name, p.EVR.String(), p.Arch)]
		if len(refs) == 0 || p.LocationBase != "" {
			continue
		}
		for _, rf := range refs {
			ap := &advs[rf.adv].Packages[rf.pkg]
			ap.Filename = p.Location
			if p.Checksum.Type == "sha256" {
				ap.SHA256 = p.Checksum.Value
			}
			n++
		}
	}
}

func nevra(name, evr, arch string) string { return name + "-" + evr + "." + arch }
