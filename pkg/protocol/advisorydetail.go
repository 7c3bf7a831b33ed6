package protocol

// AdvisoryRelease is what one release's (ecosystem's) copy of an advisory
// says, as "dnf updateinfo info" shows it: the same id may be imported for
// several releases (the OpenJDK advisories of AlmaLinux 8 and 9), each with
// its own fixed packages.
type AdvisoryRelease struct {
	// Release is the ecosystem ("AlmaLinux:9"); empty when the source did
	// not say (a repository's updateinfo.xml).
	Release string `json:"release"`
	// Updated is when this copy was last updated, when the source says.
	Updated string `json:"updated,omitempty"`
	// RebootSuggested is set when the advisory asks for a reboot.
	RebootSuggested bool `json:"reboot_suggested,omitempty"`
	// Description is this copy's description (updateinfo's <description>,
	// OSV's details), at most 16 KiB: a longer one ends with a line
	// "[description truncated: N bytes]". Omitted when the source gave none
	// or the server has not imported this copy since it began keeping them.
	// It is text from the advisory's source: escape it before printing.
	Description string `json:"description,omitempty"`
	// Packages are the fixed packages, in the source's order.
	Packages []AdvisoryPackage `json:"packages"`
	// References are the links the advisory cites.
	References []AdvisoryReference `json:"references"`
}

// AdvisoryPackage is one fixed package of an advisory.
type AdvisoryPackage struct {
	Name string `json:"name"`
	// Arch is empty when the source does not give one (OSV).
	Arch string `json:"arch,omitempty"`
	// Fixed is the fixed version, [epoch:]version-release.
	Fixed string `json:"fixed"`
}

// AdvisoryReference is a link an advisory cites.
type AdvisoryReference struct {
	Type  string `json:"type,omitempty"`
	ID    string `json:"id,omitempty"`
	URL   string `json:"url"`
	Title string `json:"title,omitempty"`
}
