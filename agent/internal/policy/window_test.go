package policy

import (
	"fmt"
	"testing"
	"time"
	_ "time/tzdata" // the zones below must not depend on the machine's tzdata
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustDays(t *testing.T, d ...string) Days {
	t.Helper()
	v, err := ParseDays(d)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestNextStartAcrossDST pins when a window opens on the days the clock
// changes in New York (2026-03-08 02:00 EST->EDT, 2026-11-01 02:00 EDT->EST)
// and Berlin (2026-03-29 02:00 CET->CEST, 2026-10-25 03:00 CEST->CET).
// Expected instants are in UTC, so they do not trust the code's own zone
// arithmetic.
func TestNextStartAcrossDST(t *testing.T) {
	ny, berlin := mustLoc(t, "America/New_York"), mustLoc(t, "Europe/Berlin")
	tests := []struct {
		name  string
		loc   *time.Location
		days  []string
		start string
		from  string
		want  string
	}{
		{name: "new york week before spring forward (EST)", loc: ny, days: []string{"sun"}, start: "02:30", from: "2026-02-28T12:00:00Z", want: "2026-03-01T07:30:00Z"},
		{name: "new york start skipped by spring forward opens at 03:30 EDT", loc: ny, days: []string{"sun"}, start: "02:30", from: "2026-03-07T12:00:00Z", want: "2026-03-08T07:30:00Z"},
		{name: "new york week after spring forward (EDT)", loc: ny, days: []string{"sun"}, start: "02:30", from: "2026-03-09T00:00:00Z", want: "2026-03-15T06:30:00Z"},
		{name: "new york start hours after the change uses the new offset", loc: ny, days: []string{"sun"}, start: "05:00", from: "2026-03-07T12:00:00Z", want: "2026-03-08T09:00:00Z"},
		{name: "new york start just before spring forward", loc: ny, days: []string{"sun"}, start: "01:59", from: "2026-03-07T12:00:00Z", want: "2026-03-08T06:59:00Z"},
		{name: "new york start shown twice at fall back opens at the first", loc: ny, days: []string{"sun"}, start: "01:30", from: "2026-10-31T12:00:00Z", want: "2026-11-01T05:30:00Z"},
		{name: "new york after the first 01:30 the next is a week later", loc: ny, days: []string{"sun"}, start: "01:30", from: "2026-11-01T05:31:00Z", want: "2026-11-08T06:30:00Z"},
		{name: "new york fall back day at 03:00 (EST)", loc: ny, days: []string{"sun"}, start: "03:00", from: "2026-10-31T12:00:00Z", want: "2026-11-01T08:00:00Z"},
		{name: "berlin start skipped by spring forward", loc: berlin, days: []string{"sun"}, start: "02:30", from: "2026-03-28T12:00:00Z", want: "2026-03-29T01:30:00Z"},
		{name: "berlin start shown twice at fall back", loc: berlin, days: []string{"sun"}, start: "02:30", from: "2026-10-24T12:00:00Z", want: "2026-10-25T00:30:00Z"},
		{name: "berlin weekend window on fall back sunday", loc: berlin, days: []string{"sat", "sun"}, start: "02:00", from: "2026-10-24T01:00:00Z", want: "2026-10-25T00:00:00Z"},
		{name: "berlin saturday after fall back is CET", loc: berlin, days: []string{"sat", "sun"}, start: "02:00", from: "2026-10-26T00:00:00Z", want: "2026-10-31T01:00:00Z"},
		{name: "an opening exactly at from counts", loc: berlin, days: []string{"mon-fri"}, start: "00:00", from: "2026-11-25T23:00:00Z", want: "2026-11-25T23:00:00Z"},
		{name: "range wraps the week", loc: time.UTC, days: []string{"fri-mon"}, start: "12:00", from: "2026-11-24T13:00:00Z", want: "2026-11-27T12:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, err := ParseClock(tt.start)
			if err != nil {
				t.Fatal(err)
			}
			w := Window{Days: mustDays(t, tt.days...), Start: start, Length: time.Hour, Location: tt.loc}
			got := w.NextStart(utc(tt.from))
			if !got.Equal(utc(tt.want)) {
				t.Errorf("NextStart(%s) = %s (%s), want %s", tt.from, got.UTC().Format(time.RFC3339), got, tt.want)
			}
			if !w.Contains(got) || w.Contains(got.Add(-time.Second)) {
				t.Errorf("Contains disagrees with NextStart at %s", got)
			}
		})
	}
}

func TestContains(t *testing.T) {
	ny, berlin := mustLoc(t, "America/New_York"), mustLoc(t, "Europe/Berlin")
	tests := []struct {
		name   string
		w      Window
		at     string
		inside bool
	}{
		{name: "before opening", w: Window{Days: 1 << time.Saturday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}, at: "2026-11-28T00:59:59Z", inside: false},
		{name: "at opening", w: Window{Days: 1 << time.Saturday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}, at: "2026-11-28T01:00:00Z", inside: true},
		{name: "last second", w: Window{Days: 1 << time.Saturday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}, at: "2026-11-28T03:59:59Z", inside: true},
		{name: "at closing", w: Window{Days: 1 << time.Saturday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}, at: "2026-11-28T04:00:00Z", inside: false},
		{name: "other day same hour", w: Window{Days: 1 << time.Saturday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}, at: "2026-11-27T02:00:00Z", inside: false},
		{name: "3h on fall back night is 3 real hours (wall 02:00 CEST to 04:00 CET)", w: Window{Days: 1 << time.Sunday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}, at: "2026-10-25T02:59:59Z", inside: true},
		{name: "3h on fall back night closes at 04:00 CET", w: Window{Days: 1 << time.Sunday, Start: 2 * time.Hour, Length: 3 * time.Hour, Location: berlin}, at: "2026-10-25T03:00:00Z", inside: false},
		{name: "crosses midnight into saturday", w: Window{Days: 1 << time.Friday, Start: 23 * time.Hour, Length: 3 * time.Hour, Location: ny}, at: "2026-11-28T06:30:00Z", inside: true},
		{name: "crossed midnight and closed", w: Window{Days: 1 << time.Friday, Start: 23 * time.Hour, Length: 3 * time.Hour, Location: ny}, at: "2026-11-28T07:00:00Z", inside: false},
		{name: "two-day weekend window on sunday night", w: Window{Days: 1 << time.Saturday, Start: 0, Length: 48 * time.Hour, Location: time.UTC}, at: "2026-11-29T23:59:00Z", inside: true},
		{name: "two-day weekend window over on monday", w: Window{Days: 1 << time.Saturday, Start: 0, Length: 48 * time.Hour, Location: time.UTC}, at: "2026-11-30T00:00:00Z", inside: false},
		{name: "no days is never open", w: Window{Start: 0, Length: 48 * time.Hour, Location: time.UTC}, at: "2026-11-30T00:00:00Z", inside: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.Contains(utc(tt.at)); got != tt.inside {
				t.Errorf("%s: Contains(%s) = %v, want %v", tt.w.String(), tt.at, got, tt.inside)
			}
		})
	}
}

func TestParseDays(t *testing.T) {
	tests := []struct {
		in      []string
		want    string
		wantErr bool
	}{
		{in: []string{"sat", "sun"}, want: "sat,sun"},
		{in: []string{"Monday", "WED"}, want: "mon,wed"},
		{in: []string{"mon-fri"}, want: "mon,tue,wed,thu,fri"},
		{in: []string{"fri-mon"}, want: "mon,fri,sat,sun"},
		{in: []string{"sun-sun"}, want: "sun"},
		{in: []string{"mon-sun"}, want: "mon,tue,wed,thu,fri,sat,sun"},
		{in: []string{"mon", "mon"}, want: "mon"},
		{in: []string{"funday"}, wantErr: true},
		{in: []string{"mon-"}, wantErr: true},
		{in: []string{"-fri"}, wantErr: true},
		{in: []string{"mon-tue-wed"}, wantErr: true},
		{in: nil, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			d, err := ParseDays(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDays(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && d.String() != tt.want {
				t.Errorf("ParseDays(%q) = %s, want %s", tt.in, d, tt.want)
			}
		})
	}
}

func TestParseClock(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"02:00", 2 * time.Hour, true},
		{"00:00", 0, true},
		{"23:59", 23*time.Hour + 59*time.Minute, true},
		{"24:00", 0, false},
		{"2:00", 0, false},
		{"02:60", 0, false},
		{"02-00", 0, false},
		{"-1:00", 0, false},
		{"", 0, false},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseClock(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseClock(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}
