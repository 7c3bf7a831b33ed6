package dashboard

import (
	"context"
	"log/slog"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// HistoryDays is how many days of exposure the history keeps.
const HistoryDays = 400

// DefaultRecordEvery is how often the exposure history records today's
// figures.
const DefaultRecordEvery = 15 * time.Minute

// Summarizer answers the fleet's summary (store.Queries has it).
type Summarizer interface {
	Summary(ctx context.Context) (protocol.Summary, error)
}

// RecordExposure records the fleet's exposure as today's ExposureDay at
// once and then every interval until ctx ends, so the overview's chart
// has a point for every day the server ran (the day's last figures). A
// failed recording is logged and tried again at the next tick. Several
// servers on one database write the same row.
func RecordExposure(ctx context.Context, sum Summarizer, h store.ExposureHistory, every time.Duration, now func() time.Time, log *slog.Logger) {
	if every <= 0 {
		every = DefaultRecordEvery
	}
	if now == nil {
		now = time.Now
	}
	log = log.With("component", "dashboard")
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := RecordOnce(ctx, sum, h, now()); err != nil && ctx.Err() == nil {
			log.Warn("exposure history not recorded", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RecordOnce records the fleet's exposure now as its day's figures.
func RecordOnce(ctx context.Context, sum Summarizer, h store.ExposureHistory, now time.Time) error {
	s, err := sum.Summary(ctx)
	if err != nil {
		return err
	}
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return h.PutExposureDay(ctx, store.ExposureDay{Day: day, Devices: s.Devices, FullyPatched: s.FullyPatched,
		ExposedBySeverity: s.ExposedBySeverity}, day.AddDate(0, 0, -HistoryDays))
}
