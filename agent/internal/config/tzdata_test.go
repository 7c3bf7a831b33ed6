package config

// The tests' time zones must not depend on the machine's zoneinfo; the agent
// itself uses the device's (see the package doc).
import _ "time/tzdata"
