package protocol

import (
	"strings"
	"testing"
)

// TestValidFleetLockGroup: the one rule for reboot group names, which the
// agent's configuration, its FleetLock client, the server's configuration
// and its FleetLock endpoint all apply.
func TestValidFleetLockGroup(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		g    string
		want bool
	}{
		{"default", true},
		{"workers.eu-1", true},
		{"A.b-9", true},
		{strings.Repeat("g", MaxFleetLockGroup), true},
		{strings.Repeat("g", MaxFleetLockGroup+1), false},
		{"", false},
		{"a b", false},
		{"no/slash", false},
		{"under_score", false},
		{"grüppe", false},
		{"a\x1b[2J", false},
	} {
		if got := ValidFleetLockGroup(tt.g); got != tt.want {
			t.Errorf("ValidFleetLockGroup(%q) = %v, want %v", tt.g, got, tt.want)
		}
	}
}
