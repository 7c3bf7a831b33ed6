package protocol

import "time"

// Status is where a device stands with one advisory.
type Status string

// Statuses. A device none of whose packages an advisory names is
// StatusNotAffected; the server does not list those rows.
const (
	// StatusAffected: an installed package is older than the advisory's
	// fix.
	StatusAffected Status = "affected"
	// StatusPatched: every package the advisory names that is installed is
	// at or past the fix.
	StatusPatched Status = "patched"
	// StatusPendingReboot: the fix is installed but takes effect only after
	// a reboot the device has not made yet.
	StatusPendingReboot Status = "pending-reboot"
	// StatusFailed: the device is affected and its last attempt to apply
	// the advisory failed or was rolled back.
	StatusFailed Status = "failed"
	// StatusNotAffected: the device has none of the advisory's packages.
	StatusNotAffected Status = "not-affected"
)

// Exposed reports whether a device in this status still runs vulnerable
// code it could be patched against: affected or failed. A device pending a
// reboot has the fix installed and is counted as patched by the CVE query.
func (s Status) Exposed() bool { return s == StatusAffected || s == StatusFailed }

// CVEResponse answers "which devices are exposed to this CVE, and which are
// patched?".
type CVEResponse struct {
	// CVE is the id asked about ("CVE-2023-2650").
	CVE string `json:"cve"`
	// Exposed lists, per exposed device, each advisory that would cure it
	// and each vulnerable package, sorted by device, advisory and package.
	Exposed []CVEExposure `json:"exposed"`
	// Patched lists devices that installed the fix (including those pending
	// a reboot), with the advisory that fixed it, sorted likewise.
	Patched []CVEPatched `json:"patched"`
	// Next is set on a page (a request with limit) that may not be the
	// last: the name of its last device, to ask for the next page with
	// after=Next. Empty on the last page and on a full answer.
	Next string `json:"next,omitempty"`
}

// CVEExposure is one exposed package on one device.
type CVEExposure struct {
	// Device is the device's name.
	Device string `json:"device"`
	// Advisory is the advisory whose fix cures the device ("ALSA-2023:3722").
	Advisory string `json:"advisory"`
	// Package is the vulnerable installed package's name.
	Package string `json:"package"`
	// Installed is the installed EVR ("1:3.0.1-23.el9_0").
	Installed string `json:"installed"`
	// Fixed is the first fixed EVR ("1:3.0.7-16.el9_2").
	Fixed string `json:"fixed"`
}

// CVEPatched is one patched device.
type CVEPatched struct {
	// Device is the device's name.
	Device string `json:"device"`
	// Advisory is the advisory whose fix the device carries.
	Advisory string `json:"advisory"`
}

// DeviceSummary is one line of the device list.
type DeviceSummary struct {
	// ID is the server's id for the device.
	ID string `json:"id"`
	// Name is the device's unique name.
	Name string `json:"name"`
	// Labels are the key=value labels given at enrolment.
	Labels map[string]string `json:"labels,omitempty"`
	// Info is what the device last reported about itself.
	Info DeviceInfo `json:"info"`
	// Enrolled is when the device enrolled.
	Enrolled time.Time `json:"enrolled"`
	// LastSeen is when the device last reported; zero if never.
	LastSeen time.Time `json:"last_seen"`
	// Packages is the number of installed packages last reported.
	Packages int `json:"packages"`
	// Affected counts advisories the device is exposed to (affected or
	// failed).
	Affected int `json:"affected"`
	// PendingReboot counts advisories waiting for a reboot.
	PendingReboot int `json:"pending_reboot"`
	// WorstSeverity is the highest severity among the advisories the device
	// is exposed to ("Critical"); empty when none.
	WorstSeverity string `json:"worst_severity,omitempty"`
	// Revoked is when the device was revoked: its credential no longer
	// works. Nil for a device in service.
	Revoked *time.Time `json:"revoked,omitempty"`
}

// Device is one device in detail.
type Device struct {
	DeviceSummary
	// Advisories are the advisories that apply to the device (not
	// StatusNotAffected), most severe first.
	Advisories []DeviceAdvisory `json:"advisories"`
}

// DeviceAdvisory is the device's status for one advisory.
type DeviceAdvisory struct {
	// Advisory is the advisory id.
	Advisory string `json:"advisory"`
	// Severity is the advisory's severity ("Important").
	Severity string `json:"severity"`
	// Status is the device's status.
	Status Status `json:"status"`
	// Since is when the status last changed.
	Since time.Time `json:"since"`
}

// AdvisorySummary is one advisory with its fleet-wide counts.
type AdvisorySummary struct {
	// ID is the advisory id ("ALSA-2023:3722").
	ID string `json:"id"`
	// Type is "security", "bugfix" or "enhancement".
	Type string `json:"type"`
	// Severity is "None", "Low", "Moderate", "Important" or "Critical".
	Severity string `json:"severity"`
	// Issued is when the advisory was issued; zero if unknown.
	Issued time.Time `json:"issued"`
	// Title is the advisory's title.
	Title string `json:"title"`
	// CVEs are the CVEs it fixes.
	CVEs []string `json:"cves,omitempty"`
	// Ecosystems are the releases the id was imported for, sorted
	// ("AlmaLinux:8", "AlmaLinux:9"): one id may name an advisory of
	// several releases, as AlmaLinux's OSV files do. "" stands for a
	// source that names none (a repository's updateinfo.xml). Only in
	// GET PathAdvisories' answer.
	Ecosystems []string `json:"ecosystems,omitempty"`
	// Affected, Patched, PendingReboot and Failed count devices in each
	// status.
	Affected      int `json:"affected"`
	Patched       int `json:"patched"`
	PendingReboot int `json:"pending_reboot"`
	Failed        int `json:"failed"`
}

// AdvisoryStatus is one advisory and the status of every device it applies
// to.
type AdvisoryStatus struct {
	AdvisorySummary
	// Devices lists the devices the advisory applies to, by name.
	Devices []AdvisoryDevice `json:"devices"`
	// Releases are the advisory's copies, one per release it was
	// imported for, sorted by release.
	Releases []AdvisoryRelease `json:"releases,omitempty"`
}

// AdvisoryDevice is one device's status for an advisory.
type AdvisoryDevice struct {
	// Device is the device name.
	Device string `json:"device"`
	// Status is the device's status.
	Status Status `json:"status"`
}

// Summary is the fleet at a glance.
type Summary struct {
	// Devices is the number of enrolled devices.
	Devices int `json:"devices"`
	// FullyPatched is the number of devices exposed to no advisory.
	FullyPatched int `json:"fully_patched"`
	// FullyPatchedShare is FullyPatched/Devices, 0 with no devices.
	FullyPatchedShare float64 `json:"fully_patched_share"`
	// ExposedBySeverity counts, per severity name, the devices whose worst
	// exposure has that severity.
	ExposedBySeverity map[string]int `json:"exposed_by_severity"`
	// OldestUnpatchedCritical is the earliest-issued Critical advisory
	// that still affects a device; nil when none does.
	OldestUnpatchedCritical *AdvisorySummary `json:"oldest_unpatched_critical,omitempty"`
}

// ImportRequest asks the server to import advisories from repositories.
type ImportRequest struct {
	// URLs are repository base URLs (with repodata/repomd.xml below) or
	// URLs of OSV files.
	URLs []string `json:"urls"`
}

// ImportResponse says what an import did.
type ImportResponse struct {
	// Advisories is the number of advisories read, one per (id,
	// ecosystem): an OSV record for AlmaLinux 8 and 9 counts twice.
	Advisories int `json:"advisories"`
	// Changed is how many advisory ids the import added or changed: an
	// id counts once however many of its ecosystems changed, and an
	// import of data the server already holds changes none.
	Changed int `json:"changed"`
}
