package protocol

import "time"

// Webhook notifications (issue 14): the JSON body the server POSTs to the
// webhooks of its configuration (server.toml's [[webhook]] tables), and
// the record of each delivery the admin API lists. The body is signed
// (server/internal/notify: X-Rpmfleet-Signature, HMAC-SHA256 over the
// timestamp and the body); docs/api.md describes both.

// WebhookVersion is the version of WebhookEvent's layout. It goes up only
// when a field changes meaning or goes away; new fields and new event
// types are added under the same version, so a receiver ignores what it
// does not know.
//
//   - 1: 2026-12-05: exposure, rollback, silent and rollout-paused events.
const WebhookVersion = 1

// Webhook event types, also sent in the X-Rpmfleet-Event header.
const (
	// WebhookExposure: devices newly exposed to advisories at or above
	// the webhook's minimum severity, after an import or a report.
	WebhookExposure = "exposure"
	// WebhookRollback: a device's update cycle was rolled back.
	WebhookRollback = "rollback"
	// WebhookSilent: a device has not reported for longer than the
	// webhook's silence threshold.
	WebhookSilent = "silent"
	// WebhookRolloutPaused: a rollout was paused, by its failure rate or
	// by an admin.
	WebhookRolloutPaused = "rollout-paused"
)

// MaxWebhookExposures bounds the exposures one exposure event lists, and
// the devices one silent event lists; their Total still counts them all.
const MaxWebhookExposures = 100

// WebhookEvent is the body of a webhook notification. Exactly one of the
// event fields is set, the one Type names.
type WebhookEvent struct {
	// Version is WebhookVersion.
	Version int `json:"version"`
	// Type is one of the Webhook* event types.
	Type string `json:"type"`
	// ID is the event's id, the same in every webhook it goes to and on
	// every retry: a receiver that keeps the ids it saw drops repeats.
	ID string `json:"id"`
	// Time is when the server noticed what happened.
	Time time.Time `json:"time"`

	Exposure      *ExposureEvent      `json:"exposure,omitempty"`
	Rollback      *RollbackEvent      `json:"rollback,omitempty"`
	Silent        *SilentEvent        `json:"silent,omitempty"`
	RolloutPaused *RolloutPausedEvent `json:"rollout_paused,omitempty"`
}

// ExposureEvent lists the device and advisory pairs that became exposed
// (affected or failed) by one import or one report.
type ExposureEvent struct {
	// Cause is "import" (new or changed advisories) or "report" (a
	// device's new inventory).
	Cause string `json:"cause"`
	// Exposures are the new pairs, most severe first, at most
	// MaxWebhookExposures of them.
	Exposures []NewExposure `json:"exposures"`
	// Total counts every new pair, also those Exposures leaves out.
	Total int `json:"total"`
}

// NewExposure is one device newly exposed to one advisory.
type NewExposure struct {
	// Device and DeviceID name the device (an import's event gives the
	// name only).
	Device   string `json:"device"`
	DeviceID string `json:"device_id,omitempty"`
	// Advisory, Severity, Title and CVEs describe the advisory.
	Advisory string   `json:"advisory"`
	Severity string   `json:"severity"`
	Title    string   `json:"title,omitempty"`
	CVEs     []string `json:"cves,omitempty"`
}

// RollbackEvent is one update cycle a device rolled back: the update was
// installed, failed the health checks, and the previous versions were
// restored.
type RollbackEvent struct {
	Device   string `json:"device"`
	DeviceID string `json:"device_id"`
	// Cycle is the device's own number for the cycle (CycleResult.ID);
	// 0 from an agent older than protocol 4.
	Cycle int64 `json:"cycle,omitempty"`
	// Advisories the cycle tried to apply.
	Advisories []string `json:"advisories"`
	// Error is the device's reason, as it reported it (device text:
	// escape it before showing it in a terminal).
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// SilentEvent lists the devices that went silent, no report for longer
// than the webhook's threshold, since the server last looked (once a
// minute): each silence is notified once, when it crosses the threshold.
type SilentEvent struct {
	// Threshold is the webhook's silence threshold, in Go's duration
	// form ("24h0m0s").
	Threshold string `json:"threshold"`
	// Devices are the newly silent devices by name, at most
	// MaxWebhookExposures of them.
	Devices []SilentDevice `json:"devices"`
	// Total counts every newly silent device.
	Total int `json:"total"`
}

// SilentDevice is one device gone silent.
type SilentDevice struct {
	Device   string `json:"device"`
	DeviceID string `json:"device_id"`
	// LastSeen is its last report; zero when it never reported (then
	// the silence began at Enrolled).
	LastSeen time.Time `json:"last_seen"`
	Enrolled time.Time `json:"enrolled"`
}

// RolloutPausedEvent is a rollout that was paused.
type RolloutPausedEvent struct {
	Rollout    string   `json:"rollout"`
	Group      string   `json:"group"`
	Advisories []string `json:"advisories"`
	// Phase is the paused phase, counted from 1.
	Phase int `json:"phase"`
	// Automatic says the server paused it for its failure rate; false
	// for an admin's pause.
	Automatic bool `json:"automatic"`
	// Reason is why ("phase 1: 2 of 4 devices failed ...").
	Reason string `json:"reason"`
}

// PathWebhookDeliveries: GET []WebhookDelivery (admin), newest first;
// query limit=N (1 to MaxDeliveryPage, default 100), status=pending,
// delivered or failed, webhook=NAME.
const PathWebhookDeliveries = PathPrefix + "/webhooks/deliveries"

// MaxDeliveryPage bounds a page of deliveries.
const MaxDeliveryPage = 1000

// Delivery states.
const (
	// DeliveryPending: not delivered yet; another attempt is due at
	// WebhookDelivery.Next.
	DeliveryPending = "pending"
	// DeliveryDelivered: the webhook answered 2xx.
	DeliveryDelivered = "delivered"
	// DeliveryFailed: every attempt failed; no more are made.
	DeliveryFailed = "failed"
)

// WebhookDelivery is one event's delivery to one webhook.
type WebhookDelivery struct {
	// ID is the delivery's id (X-Rpmfleet-Delivery).
	ID string `json:"id"`
	// Webhook is the webhook's name in the configuration (never its URL,
	// which may hold a token).
	Webhook string `json:"webhook"`
	// Event is the event type; EventID the WebhookEvent.ID.
	Event   string `json:"event"`
	EventID string `json:"event_id"`
	// Status is DeliveryPending, DeliveryDelivered or DeliveryFailed.
	Status string `json:"status"`
	// Attempts counts the attempts made.
	Attempts int `json:"attempts"`
	// HTTPStatus is the last answer's status; 0 when none came.
	HTTPStatus int `json:"http_status"`
	// LastError is why the last attempt failed; "" once delivered.
	LastError string `json:"last_error,omitempty"`
	// Created is when the event was queued; Updated when the delivery
	// last changed.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Next is when the next attempt is due, for a pending delivery.
	Next *time.Time `json:"next,omitempty"`
}
