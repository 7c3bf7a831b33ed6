package protocol

// The bodies of the messages the server signs with its Ed25519 notice key
// (pkg/notice): the fleet-wide feed notice on TopicAdvisoryFeed, a command
// on a device's command topic, and a device's plan, served at PathPlan. The
// signed envelope, its sequence number and its expiry are pkg/notice's; what
// is here is the JSON body inside it.

// FeedNotice is the body of the retained, signed notice the server
// publishes on TopicAdvisoryFeed when an import adds or changes advisories.
// It carries no instruction: an agent that receives it fetches its plan,
// which says what, if anything, applies to it.
type FeedNotice struct {
	// Changed is how many advisory ids the import added or changed.
	Changed int `json:"changed"`
	// Advisories are the ids of those advisories, at most
	// MaxFeedAdvisories of them; empty when there were more.
	Advisories []string `json:"advisories,omitempty"`
}

// MaxFeedAdvisories bounds FeedNotice.Advisories, so a notice stays small
// whatever the import.
const MaxFeedAdvisories = 100

// CommandVerb is what a command asks a device to do.
type CommandVerb string

// Command verbs.
const (
	// CommandCheck: fetch the plan now and act on it as policy says, as if
	// a feed notice had arrived.
	CommandCheck CommandVerb = "check"
	// CommandApply: fetch the plan now and apply the advisories named in
	// Command.Advisories (those of them the plan holds) at once, whatever
	// the policy's mode and maintenance window say. Package verification,
	// exclusions and rollback still hold.
	CommandApply CommandVerb = "apply"
	// CommandReport: send a report (the inventory change) now.
	CommandReport CommandVerb = "report"
)

// Command is the body of a signed command to one device, and what an
// operator posts to PathCommand+NAME.
type Command struct {
	Verb CommandVerb `json:"verb"`
	// Advisories are the advisory ids for CommandApply; empty otherwise.
	Advisories []string `json:"advisories,omitempty"`
}

// CommandResponse answers a posted Command.
type CommandResponse struct {
	// DeviceID is the device's id, the one in its command topic.
	DeviceID string `json:"device_id"`
	// Topic is where the signed command was published.
	Topic string `json:"topic"`
}

// Plan is the body of a device's signed plan: the advisories that affect
// the device now (status affected or failed), with the exact packages that
// fix them. The agent's policy decides which of them it applies, and when.
// GET PathPlan answers the signed plan (a pkg/notice envelope) with an ETag
// that changes only when the plan's content does; a request whose
// If-None-Match carries it gets 304 Not Modified.
type Plan struct {
	// Advisories affecting the device, most severe first, then by id.
	Advisories []PlanAdvisory `json:"advisories"`
	// Policy is the server's policy for the device (policy.go), when a
	// group holding one selects it; Policy.Version says which fields it
	// carries. Agents before issue 13 ignore it (an unknown field).
	Policy *Policy `json:"policy,omitempty"`
}

// PlanAdvisory is one advisory of a plan.
type PlanAdvisory struct {
	// ID is the advisory id ("ALSA-2023:3722").
	ID string `json:"id"`
	// Type is "security", "bugfix" or "enhancement".
	Type string `json:"type"`
	// Severity is "None", "Low", "Moderate", "Important" or "Critical".
	Severity string `json:"severity"`
	// RebootSuggested is the advisory's own reboot flag.
	RebootSuggested bool `json:"reboot_suggested,omitempty"`
	// Status is the device's status for it: affected or failed.
	Status Status `json:"status"`
	// Packages are the device's installed packages the advisory fixes.
	Packages []PlanPackage `json:"packages"`
}

// PlanPackage is one package of a plan: what is installed, and the fix.
type PlanPackage struct {
	Name string `json:"name"`
	Arch string `json:"arch"`
	// Installed is the installed EVR, the rollback target.
	Installed string `json:"installed"`
	// Fixed is the EVR that fixes it.
	Fixed string `json:"fixed"`
	// Location, SHA256 and Size locate the fixed package in its
	// repository, when the server imported the advisory from a repository
	// and read them from its primary.xml; empty otherwise. When SHA256 is
	// set, the agent installs only a package with that digest, so a plan
	// pins the exact file, not just its name and version.
	Location string `json:"location,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	Size     int64  `json:"size,omitempty"`
}
