package protocol

import "time"

// EnrollRequest is what an agent sends once, with an enrolment token, to
// become a device of the fleet.
type EnrollRequest struct {
	// Token is the enrolment token an admin created ("rpmfleet
	// enroll-token create").
	Token string `json:"token"`
	// Name the device asks for; the server uses Device.Hostname when empty.
	// Names are unique in the fleet.
	Name string `json:"name,omitempty"`
	// Device describes the device as a report does.
	Device DeviceInfo `json:"device"`
}

// EnrollResponse gives the device its identity and what it must pin.
type EnrollResponse struct {
	// DeviceID is the server's stable id for the device, used in MQTT
	// topics.
	DeviceID string `json:"device_id"`
	// Name is the device's name in the fleet.
	Name string `json:"name"`
	// Credential is the device's own secret, sent as a bearer token on
	// every later request. The server keeps only its SHA-256; it is shown
	// this once.
	Credential string `json:"credential"`
	// NoticeKey is the server's Ed25519 public key (32 bytes, base64 in
	// JSON) that signs notices and plans; the agent pins it.
	NoticeKey []byte `json:"notice_key"`
	// BrokerURL is the MQTT broker to connect to ("mqtts://host:8883");
	// empty when the server runs without one and the agent only polls.
	BrokerURL string `json:"broker_url,omitempty"`
}

// DeviceInfo is what a device says about itself.
type DeviceInfo struct {
	// OSID is os-release's ID ("almalinux", "rhel").
	OSID string `json:"os_id"`
	// OSVersionID is os-release's VERSION_ID ("9.2").
	OSVersionID string `json:"os_version_id"`
	// Arch is the machine architecture as rpm names it ("aarch64",
	// "armv7hl", "x86_64").
	Arch string `json:"arch"`
	// Kernel is the running kernel release (uname -r).
	Kernel string `json:"kernel"`
	// Hostname is the device's host name.
	Hostname string `json:"hostname"`
	// AgentVersion is the version of rpmfleet-agent.
	AgentVersion string `json:"agent_version"`
}

// Report is what an agent posts after enrolment, after every update cycle
// and whenever its installed packages change.
type Report struct {
	// ID identifies the report for idempotency: a device retrying a report
	// sends the same ID, and the server applies it at most once. A UUID or
	// any string of up to 128 bytes unique per device.
	ID string `json:"id"`
	// Time is when the agent made the report.
	Time time.Time `json:"time"`
	// Device describes the device now.
	Device DeviceInfo `json:"device"`
	// Inventory is the installed package set, in full or as a change.
	Inventory Inventory `json:"inventory"`
	// Cycles are the update cycles finished since the previous report.
	Cycles []CycleResult `json:"cycles,omitempty"`
	// RebootPending says a finished update still waits for a reboot to take
	// effect. When false, advisories pending a reboot count as patched.
	RebootPending bool `json:"reboot_pending,omitempty"`
}

// InventoryKind says whether an Inventory carries the whole set or a change.
type InventoryKind string

// Inventory kinds.
const (
	// InventoryFull: Packages is the whole installed set.
	InventoryFull InventoryKind = "full"
	// InventoryDelta: Added and Removed change the set the server already
	// holds for the device.
	InventoryDelta InventoryKind = "delta"
)

// Inventory is the device's installed package set.
type Inventory struct {
	// Kind is InventoryFull or InventoryDelta.
	Kind InventoryKind `json:"kind"`
	// Packages is the whole set, for InventoryFull.
	Packages []Package `json:"packages,omitempty"`
	// Added are packages installed since the previous report, for
	// InventoryDelta.
	Added []Package `json:"added,omitempty"`
	// Removed are packages gone since the previous report, for
	// InventoryDelta. An upgrade is the old package removed and the new one
	// added.
	Removed []Package `json:"removed,omitempty"`
	// Digest is InventoryDigest of the whole set after the change. When the
	// server's copy disagrees it answers NeedFullInventory.
	Digest string `json:"digest"`
}

// Package is one installed package.
type Package struct {
	// Name is the package name ("openssl-libs").
	Name string `json:"name"`
	// Epoch is the epoch as a decimal string; "" and "0" are the same.
	Epoch string `json:"epoch,omitempty"`
	// Version is the package version ("3.0.7").
	Version string `json:"version"`
	// Release is the package release ("16.el9_2").
	Release string `json:"release"`
	// Arch is the package architecture ("aarch64", "noarch").
	Arch string `json:"arch"`
	// ModularityLabel is the rpm header's modularity label
	// ("nodejs:18:9020020230512:rhel9") for a package built in a module
	// stream; empty otherwise.
	ModularityLabel string `json:"modularity_label,omitempty"`
}

// CycleOutcome is how an update cycle ended.
type CycleOutcome string

// Cycle outcomes.
const (
	// OutcomeApplied: the packages were installed and the health checks
	// passed.
	OutcomeApplied CycleOutcome = "applied"
	// OutcomeRolledBack: the update was installed, failed its health
	// checks, and the previous versions were restored.
	OutcomeRolledBack CycleOutcome = "rolled-back"
	// OutcomeFailed: the update could not be applied (download,
	// verification, pre-flight or transaction failed); nothing changed.
	OutcomeFailed CycleOutcome = "failed"
	// OutcomeAbandoned: the update failed too often and is set aside.
	OutcomeAbandoned CycleOutcome = "abandoned"
)

// CycleResult is the result of one update cycle on the device.
type CycleResult struct {
	// ID is the device's own number for the cycle (its update journal's),
	// the same in every report that carries the cycle; the server keeps a
	// cycle once per device and ID. 0 from agents before protocol 4: then
	// every report's copy is kept.
	ID int64 `json:"id,omitempty"`
	// Advisories the cycle applied or tried to apply.
	Advisories []string `json:"advisories"`
	// Before are the packages the cycle replaced, as they were installed.
	Before []Package `json:"before,omitempty"`
	// After are the packages installed by the cycle (empty unless applied).
	After []Package `json:"after,omitempty"`
	// Outcome is how the cycle ended.
	Outcome CycleOutcome `json:"outcome"`
	// Error says why a cycle that did not apply failed.
	Error string `json:"error,omitempty"`
	// RebootNeeded says the applied update takes effect only after a
	// reboot (kernel, glibc, systemd, or the advisory says so).
	RebootNeeded bool `json:"reboot_needed,omitempty"`
	// Started and Finished bound the cycle.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// ReportResponse is the server's answer to a Report.
type ReportResponse struct {
	// NeedFullInventory asks the agent to send its whole package set next:
	// the server holds none for the device, or a delta's digest did not
	// match.
	NeedFullInventory bool `json:"need_full_inventory,omitempty"`
	// Duplicate says the report id was seen before; nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
}
