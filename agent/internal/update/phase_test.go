package update

import (
	"errors"
	"testing"
)

func walk(t *testing.T, path ...Phase) {
	t.Helper()
	cur := path[0]
	for _, next := range path[1:] {
		got, err := transition(cur, next)
		if err != nil {
			t.Fatalf("transition(%s, %s): %v", cur, next, err)
		}
		cur = got
	}
	if !cur.Final() {
		t.Fatalf("path ends at %s, which is not final", cur)
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path []Phase
	}{
		{"happy path", []Phase{Planned, Downloading, Verifying, Preflight, Applying, HealthCheck, Committed}},
		{"abandoned on a bad signature", []Phase{Planned, Downloading, Verifying, Failed}},
		{"abandoned on a failed download", []Phase{Planned, Downloading, Failed}},
		{"abandoned on a missing dependency", []Phase{Planned, Downloading, Verifying, Preflight, Failed}},
		{"rpm refused the transaction", []Phase{Planned, Downloading, Verifying, Preflight, Applying, Failed}},
		{"bad health, rolled back", []Phase{Planned, Downloading, Verifying, Preflight, Applying, HealthCheck, RollingBack, RolledBack}},
		{"half-applied found on resume", []Phase{Applying, RollingBack, RolledBack}},
		{"rollback failed", []Phase{HealthCheck, RollingBack, Failed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { walk(t, tt.path...) })
	}
}

func TestIllegalTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		from, to Phase
	}{
		{"skip verification", Downloading, Preflight},
		{"apply without preflight", Verifying, Applying},
		{"commit without health check", Applying, Committed},
		{"leave a final phase", Committed, Downloading},
		{"retry a failed cycle in place", Failed, Planned},
		{"give up on a bad update without rolling back", HealthCheck, Failed},
		{"roll back before applying", Preflight, RollingBack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := transition(tt.from, tt.to)
			if !errors.Is(err, ErrIllegalTransition) || got != tt.from {
				t.Errorf("transition(%s, %s) = %s, %v; want %s and ErrIllegalTransition", tt.from, tt.to, got, err, tt.from)
			}
		})
	}
}

func TestPhaseText(t *testing.T) {
	t.Parallel()
	for p := Planned; p <= Failed; p++ {
		b, err := p.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var q Phase
		if err := q.UnmarshalText(b); err != nil || q != p {
			t.Errorf("round trip of %s = %s, %v", p, q, err)
		}
	}
	var q Phase
	if err := q.UnmarshalText([]byte("installing")); err == nil || err.Error() != `update: unknown phase "installing"` {
		t.Errorf("UnmarshalText(installing): err = %v, want update: unknown phase \"installing\"", err)
	}
}
