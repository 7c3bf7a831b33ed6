package store

import (
	"context"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/protocol"
)

// What the dashboard (server/internal/dashboard) reads beyond Queries.
// Both SQL stores (sqlstore) have these; they are separate interfaces, not
// part of Store, so a store without them still serves the API.

// DeviceDetails reads what the device pages show beyond Queries.
type DeviceDetails interface {
	// DeviceSummaries answers what Devices answers, in the same order,
	// with each package set's counts worked out once for all its devices
	// rather than once per device: the dashboard's device list and the
	// metrics read every device.
	DeviceSummaries(ctx context.Context, f DeviceFilter) ([]protocol.DeviceSummary, error)
	// DevicePage returns one page of the devices q asks for, sorted as
	// it says, and how many devices match in all.
	DevicePage(ctx context.Context, q DeviceQuery) (page []protocol.DeviceSummary, total int, err error)
	// DevicePackages returns the packages of the device's last reported
	// set, sorted by name; none before its first full inventory.
	// ErrNotFound for an unknown device id.
	DevicePackages(ctx context.Context, deviceID string) ([]protocol.Package, error)
	// DeviceCycles returns the device's last limit update cycles, the
	// latest first.
	DeviceCycles(ctx context.Context, deviceID string, limit int) ([]protocol.CycleResult, error)
}

// DeviceQuery asks for one page of the device list.
type DeviceQuery struct {
	Filter DeviceFilter
	// NameContains keeps the devices whose name holds it.
	NameContains string
	// Sort is one of DeviceSorts ("" is "name"); Desc reverses it. Ties
	// go by name, ascending.
	Sort string
	Desc bool
	// Offset and Limit select the page's rows.
	Offset, Limit int
}

// DeviceSorts are the keys a DeviceQuery sorts by: DeviceSummary's Name,
// LastSeen, Enrolled, Packages, Affected and WorstSeverity.
var DeviceSorts = []string{"name", "last_seen", "enrolled", "packages", "affected", "severity"}

// ExposureDay is the fleet's exposure on one UTC day, as last recorded
// that day.
type ExposureDay struct {
	// Day is the day's midnight, UTC.
	Day time.Time
	// Devices and FullyPatched are protocol.Summary's counts.
	Devices, FullyPatched int
	// ExposedBySeverity counts devices by their worst exposure's severity
	// name ("Critical").
	ExposedBySeverity map[string]int
}

// ExposureHistory keeps one ExposureDay a day (migration 0010).
type ExposureHistory interface {
	// PutExposureDay records d as its day's figures, replacing what was
	// recorded for that day, and forgets days before keepFrom.
	PutExposureDay(ctx context.Context, d ExposureDay, keepFrom time.Time) error
	// ExposureDays returns the days from since on, oldest first.
	ExposureDays(ctx context.Context, since time.Time) ([]ExposureDay, error)
}
