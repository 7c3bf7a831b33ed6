package store

import (
	"context"
	"time"
)

// Delivery is one webhook notification in the outbox (migration 0013):
// the event's signed body is made once, stored pending, and sent by
// whichever server claims it, so a restart between the event and its
// delivery loses nothing.
type Delivery struct {
	// ID is the delivery id (X-Rpmfleet-Delivery).
	ID string
	// Webhook is the webhook's name in the configuration.
	Webhook string
	// Event is the event type (protocol.Webhook*); EventID its id.
	Event   string
	EventID string
	// Key names what the event is about ("rollback:DEVICE:CYCLE"): a
	// second delivery with the same Webhook and Key is not stored, so an
	// event two replicas (or two reports carrying one cycle) notice is
	// sent once.
	Key string
	// Body is the JSON body.
	Body []byte
	// Status is protocol.DeliveryPending, DeliveryDelivered or
	// DeliveryFailed.
	Status     string
	Attempts   int
	HTTPStatus int
	LastError  string
	Created    time.Time
	Updated    time.Time
	// Next is when a pending delivery's next attempt is due.
	Next time.Time
}

// DeliveryFilter narrows ListDeliveries; zero fields do not filter.
type DeliveryFilter struct {
	Status  string
	Webhook string
	// Limit bounds the answer (100 when 0).
	Limit int
}

// SilentDevice is a device that stopped reporting.
type SilentDevice struct {
	ID       string
	Name     string
	LastSeen time.Time
	Enrolled time.Time
}

// Deliveries is the webhook outbox.
type Deliveries interface {
	// AddDeliveries stores ds as given (pending, due at Next), skipping
	// one whose Webhook and Key are already stored; it returns how many
	// it stored.
	AddDeliveries(ctx context.Context, ds []Delivery) (int, error)
	// ClaimDeliveries returns at most limit pending deliveries due at now,
	// the longest due first, and moves each one's Next to lease in the
	// same transaction, so no other claim takes it before lease: a server
	// that dies while sending leaves it due again then.
	ClaimDeliveries(ctx context.Context, now, lease time.Time, limit int) ([]Delivery, error)
	// RecordDelivery writes d's Status, Attempts, HTTPStatus, LastError,
	// Updated and Next; ErrNotFound for an unknown id.
	RecordDelivery(ctx context.Context, d Delivery) error
	// ListDeliveries lists deliveries newest first, without their Body.
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	// PruneDeliveries deletes the delivered and failed deliveries last
	// updated before before, and returns how many.
	PruneDeliveries(ctx context.Context, before time.Time) (int64, error)
	// SilentDevices lists, by name, at most limit devices in service
	// (not revoked) whose last report (their enrolment, if they never
	// reported) is after from and at or before to.
	SilentDevices(ctx context.Context, from, to time.Time, limit int) ([]SilentDevice, error)
}
