// Package protocol holds the types that rpmfleet's agent, server and admin
// CLI exchange: the JSON bodies of the HTTP API under /api/v1, the API paths
// and the MQTT topics. It is data only, so both the agent and the server can
// import it without pulling in each other's code. The functions beyond
// accessors are InventoryDigest, because the digest of a package set is part
// of the wire contract and both ends must compute it byte for byte alike,
// and the limits on names and device info with their checks and Escape
// (validate.go), because the agent checks its name by the rule the server
// enforces, and everything that shows device text shows it the same way.
//
// EVRs travel as "epoch:version-release" with the epoch always written
// ("1:3.0.7-16.el9_2", "0:2.34-60.el9"), as rpmver.EVR.String writes them.
// Times are RFC 3339 in UTC. docs/api.md documents every endpoint.
package protocol

import "fmt"

// Version is the protocol version a binary speaks. Agents send it in every
// request (header Rpmfleet-Protocol) and the server in every response, so
// each side knows which fields the other understands. It only goes up; add
// a dated line below whenever a field or endpoint is added or its meaning
// changes.
//
//   - 1: 2026-11-25: first version: enrolment, reports with full or delta
//     inventories and cycle results, CVE, device, advisory and summary
//     queries, admin and enrolment tokens. MQTT topics reserved under
//     rpmfleet/v1/.
//   - 2: 2026-11-25: signed plans (GET PathPlan, with ETag), operator
//     commands (POST PathCommand+NAME), the signed feed notice on
//     TopicAdvisoryFeed; push.go holds their bodies.
//   - 3: 2026-12-05: device lifecycle: POST PathDevice+NAME+PathRevokeSuffix
//     revokes a device, DELETE PathDevice+NAME deletes it,
//     DeviceSummary.Revoked; GET PathEnrollTokens lists enrolment tokens
//     (EnrollTokenInfo) and DELETE PathEnrollTokens+"/"+ID revokes one;
//     names and device info are held to validate.go's limits (400 naming
//     the field); 503 from PathEnroll when too many enrolments are in
//     flight.
//   - 4: 2026-12-05: CycleResult.ID, the device's own cycle number, so the
//     server keeps a cycle carried by two reports once; the group policy in
//     signed plans, label and group selections, groups, approvals,
//     rollouts, the audit log and FleetLock (docs/api.md).
//   - 5: 2026-12-05: webhook notifications (webhook.go: WebhookEvent, and
//     GET PathWebhookDeliveries listing WebhookDelivery);
//     AdvisorySummary.Ecosystems in GET PathAdvisories.
const Version = 5

// VersionHeader is the HTTP header carrying Version.
const VersionHeader = "Rpmfleet-Protocol"

// HTTP API paths. Paths ending in "/" take one more segment: the device
// name, the CVE id or the advisory id, path-escaped.
const (
	// PathPrefix is the root of the versioned API.
	PathPrefix = "/api/v1"

	// PathEnroll: POST EnrollRequest (enrolment token in the body),
	// answered with EnrollResponse.
	PathEnroll = PathPrefix + "/enroll"
	// PathReport: POST Report with the device credential, answered with
	// ReportResponse.
	PathReport = PathPrefix + "/report"
	// PathPlan: GET the device's signed plan (a pkg/notice envelope whose
	// body is a Plan) with the device credential; answered with an ETag,
	// and 304 to a matching If-None-Match.
	PathPlan = PathPrefix + "/plan"
	// PathCommand: POST a Command to PathCommand+NAME (operator); the
	// server signs it and publishes it on the device's command topic,
	// answering CommandResponse.
	PathCommand = PathPrefix + "/command/"

	// PathDevices: GET []DeviceSummary; query label=k=v (repeatable) and
	// exposed_to=CVE-ID filter.
	PathDevices = PathPrefix + "/devices"
	// PathDevice: GET PathDevice+NAME gives a Device; DELETE
	// PathDevice+NAME deletes the device and everything kept about it
	// (admin), answered 204; POST PathDevice+NAME+PathRevokeSuffix revokes
	// it (operator), answered with DeviceRevokeResponse.
	PathDevice = PathPrefix + "/device/"
	// PathRevokeSuffix follows PathDevice+NAME to revoke a device.
	PathRevokeSuffix = "/revoke"
	// PathCVE: GET PathCVE+CVE-ID gives a CVEResponse.
	PathCVE = PathPrefix + "/cve/"
	// PathAdvisory: GET PathAdvisory+ID gives an AdvisoryStatus.
	PathAdvisory = PathPrefix + "/advisory/"
	// PathAdvisories: GET []AdvisorySummary; query severity=LEVEL gives
	// those at least that severe.
	PathAdvisories = PathPrefix + "/advisories"
	// PathSummary: GET Summary.
	PathSummary = PathPrefix + "/summary"
	// PathImport: POST an OSV JSON file, an OSV JSON-lines file (possibly
	// compressed) or an updateinfo.xml, or an ImportRequest naming
	// repository URLs; answered with ImportResponse.
	PathImport = PathPrefix + "/import"
	// PathTokens: GET []TokenInfo, POST TokenCreateRequest (answered with
	// TokenCreateResponse); DELETE PathTokens+"/"+ID revokes.
	PathTokens = PathPrefix + "/tokens"
	// PathEnrollTokens: POST EnrollTokenCreateRequest (operator), answered
	// with EnrollTokenCreateResponse; GET []EnrollTokenInfo (admin);
	// DELETE PathEnrollTokens+"/"+ID revokes (admin), answered 204.
	PathEnrollTokens = PathPrefix + "/enroll-tokens"
)

// MQTT topics. Every topic lives under TopicPrefix; a device may subscribe
// only to its own command topic and publish only to its own state and
// online topics.
const (
	// TopicPrefix is the root of rpmfleet's topics.
	TopicPrefix = "rpmfleet/v1/"
	// TopicAdvisoryFeed carries the retained, signed notice that the
	// advisory feed changed; agents fetch their plan when it does.
	TopicAdvisoryFeed = TopicPrefix + "advisories"
)

// DeviceCommandTopic is the topic on which the server sends signed commands
// (check now, apply these advisories, report now) to one device.
func DeviceCommandTopic(deviceID string) string {
	return fmt.Sprintf("%sdevice/%s/command", TopicPrefix, deviceID)
}

// DeviceStateTopic is the device's retained state topic.
func DeviceStateTopic(deviceID string) string {
	return fmt.Sprintf("%sdevice/%s/state", TopicPrefix, deviceID)
}

// DeviceOnlineTopic carries the device's retained presence: PayloadOnline
// when it connects and PayloadOffline as its last will.
func DeviceOnlineTopic(deviceID string) string {
	return fmt.Sprintf("%sdevice/%s/online", TopicPrefix, deviceID)
}

// Payloads of DeviceOnlineTopic.
const (
	PayloadOnline  = "online"
	PayloadOffline = "offline"
)

// Error is the body of every non-2xx API response.
type Error struct {
	// Error says what was wrong, in lower case, naming the input.
	Error string `json:"error"`
	// Field is the JSON field (dotted path, "inventory.packages[3].name")
	// or query parameter at fault, when one is.
	Field string `json:"field,omitempty"`
}
