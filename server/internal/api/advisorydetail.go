package api

import (
	"context"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// variantLoader reads one advisory's stored releases; both SQL stores
// have it.
type variantLoader interface {
	AdvisoryVariants(ctx context.Context, id string) ([]store.Variant, error)
}

// advisoryReleases fills in what each release's copy of an advisory says:
// description, fixed packages and references, as "dnf updateinfo info"
// shows them.
func (s *Server) advisoryReleases(ctx context.Context, a *protocol.AdvisoryStatus) error {
	l, ok := s.st.(variantLoader)
	if !ok {
		return nil
	}
	vs, err := l.AdvisoryVariants(ctx, a.ID)
	if err != nil {
		return err
	}
	for _, v := range vs {
		r := protocol.AdvisoryRelease{Release: v.Ecosystem, RebootSuggested: v.RebootSuggested, Description: v.Description,
			Packages: []protocol.AdvisoryPackage{}, References: []protocol.AdvisoryReference{}}
		if !v.Updated.IsZero() {
			r.Updated = v.Updated.UTC().Format(time.RFC3339)
		}
		for _, p := range v.Packages {
			r.Packages = append(r.Packages, protocol.AdvisoryPackage{Name: p.Name, Arch: p.Arch, Fixed: p.EVR.String()})
		}
		for _, ref := range v.References {
			r.References = append(r.References, protocol.AdvisoryReference{Type: ref.Type, ID: ref.ID, URL: ref.URL, Title: ref.Title})
		}
		a.Releases = append(a.Releases, r)
	}
	return nil
}
