package api

import (
	"context"
	"net/http"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// cveKnower is the store's answer to "does an imported advisory name this
// CVE"; both SQL stores have it.
type cveKnower interface {
	KnownCVE(ctx context.Context, cve string) (bool, error)
}

// unknownCVE answers 404 when an answer with no device is for a CVE no
// imported advisory names, so that "rpmfleet cve CVE-2O23-1" (a typing
// error) is not mistaken for "no device is exposed". It reports whether it
// answered.
func (s *Server) unknownCVE(w http.ResponseWriter, r *http.Request, resp *protocol.CVEResponse) bool {
	if len(resp.Exposed) > 0 || len(resp.Patched) > 0 || resp.Next != "" {
		return false
	}
	k, ok := s.st.(cveKnower)
	if !ok {
		return false
	}
	known, err := k.KnownCVE(r.Context(), resp.CVE)
	if err != nil {
		s.fail(w, r, err)
		return true
	}
	if known {
		return false
	}
	writeError(w, http.StatusNotFound, "cve: "+resp.CVE+" is unknown: no imported advisory names it", "id")
	return true
}
