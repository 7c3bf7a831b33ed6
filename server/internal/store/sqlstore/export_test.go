package sqlstore

import (
	"context"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// CVEQueries are the queries behind Store.CVE, for plan_test.go.
var CVEQueries = map[string]string{"status": cveStatusQuery, "findings": cveFindingsQuery, "devices": cveDevicesQuery, "page": cvePageQuery}

// WriteBatch writes reports as one batch, the way the writer does, and
// returns each report's answer.
func (s *Store) WriteBatch(ctx context.Context, deviceIDs []string, rs []*protocol.Report, now time.Time, match []store.MatchFunc) ([]protocol.ReportResponse, []error) {
	batch := make([]*reportReq, len(rs))
	for i, r := range rs {
		q, err := s.prepare(ctx, deviceIDs[i], r, now, match[i])
		if err != nil {
			panic(err)
		}
		batch[i] = q
	}
	s.writeBatch(batch)
	resps, errs := make([]protocol.ReportResponse, len(rs)), make([]error, len(rs))
	for i, q := range batch {
		res := <-q.done
		resps[i], errs[i] = res.resp, res.err
	}
	return resps, errs
}
