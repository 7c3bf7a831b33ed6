package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxWindowLength bounds a window's length: a week would be always open.
const MaxWindowLength = 7 * 24 * time.Hour

// Days is a set of weekdays, bit d set for time.Weekday d.
type Days uint8

// Has reports whether d holds the weekday.
func (d Days) Has(w time.Weekday) bool { return d&(1<<uint(w)) != 0 }

var dayNames = [...]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// String lists the days, Monday first: "mon,tue,sat".
func (d Days) String() string {
	var out []string
	for i := 1; i <= 7; i++ {
		w := time.Weekday(i % 7)
		if d.Has(w) {
			out = append(out, dayNames[w])
		}
	}
	return strings.Join(out, ",")
}

func parseDay(s string) (time.Weekday, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, n := range dayNames {
		if s == n || s == strings.ToLower(time.Weekday(i).String()) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// ParseDays reads day names ("mon" or "monday", any case) and ranges
// ("mon-fri"; a range may wrap the week: "fri-mon").
func ParseDays(list []string) (Days, error) {
	if len(list) == 0 {
		return 0, fmt.Errorf("%w: no days", ErrBadValue)
	}
	var d Days
	for _, item := range list {
		from, to, isRange := strings.Cut(item, "-")
		a, ok := parseDay(from)
		b := a
		if isRange {
			var ok2 bool
			b, ok2 = parseDay(to)
			ok = ok && ok2
		}
		if !ok {
			return 0, fmt.Errorf("%w: day %q: want mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri", ErrBadValue, item)
		}
		for w := a; ; w = (w + 1) % 7 {
			d |= 1 << uint(w)
			if w == b {
				break
			}
		}
	}
	return d, nil
}

// ParseClock reads a wall-clock time "HH:MM" (00:00 to 23:59) and returns it
// as the time since midnight.
func ParseClock(s string) (time.Duration, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || len(hh) != 2 || len(mm) != 2 || err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, fmt.Errorf("%w: time %q: want HH:MM from 00:00 to 23:59", ErrBadValue, s)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

// Window is a maintenance window: it opens on each of Days at the local
// wall-clock time Start in Location and stays open for Length of real time.
//
// On a day when the clock skips Start (spring forward), the window opens at
// the instant Start would have been under the old offset, which the clock
// shows one hour later (02:30 becomes 03:30 EDT). On a day when the clock
// shows Start twice (fall back), it opens at the first. Length is real
// elapsed time, so a 3h window across a change shows 2 or 4 hours on the
// wall clock.
type Window struct {
	Days Days
	// Start is the wall-clock opening time as the time since midnight.
	Start    time.Duration
	Length   time.Duration
	Location *time.Location
}

func (w *Window) loc() *time.Location {
	if w.Location == nil {
		return time.Local
	}
	return w.Location
}

// String describes the window: "sat,sun 02:00 for 3h0m0s (Europe/Berlin)",
// or "(the system's zone)" for time.Local.
func (w *Window) String() string {
	h, m := int(w.Start/time.Hour), int(w.Start%time.Hour/time.Minute)
	zone := w.loc().String()
	if w.loc() == time.Local {
		zone = "the system's zone"
	}
	return fmt.Sprintf("%s %02d:%02d for %s (%s)", w.Days, h, m, w.Length, zone)
}

// opening returns when the window opens on the local date y-m-d (whatever
// the weekday).
func (w *Window) opening(y int, m time.Month, d int) time.Time {
	loc := w.loc()
	wall := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Add(w.Start)
	guess := time.Date(y, m, d, int(w.Start/time.Hour), int(w.Start%time.Hour/time.Minute), 0, 0, loc)
	// The offsets in force around the opening: at most one change happens
	// in a 12-hour span in every zone there is.
	_, offBefore := guess.Add(-6 * time.Hour).Zone()
	_, offAfter := guess.Add(6 * time.Hour).Zone()
	var best time.Time
	for _, off := range []int{offBefore, offAfter} {
		c := wall.Add(-time.Duration(off) * time.Second).In(loc)
		cy, cm, cd := c.Date()
		if cy == y && cm == m && cd == d && c.Hour() == int(w.Start/time.Hour) && c.Minute() == int(w.Start%time.Hour/time.Minute) {
			if best.IsZero() || c.Before(best) {
				best = c
			}
		}
	}
	if best.IsZero() { // the clock skipped Start
		best = wall.Add(-time.Duration(offBefore) * time.Second).In(loc)
	}
	return best
}

// Contains reports whether the window is open at t.
func (w *Window) Contains(t time.Time) bool {
	if w.Days == 0 || w.Length <= 0 {
		return false
	}
	lt := t.In(w.loc())
	y, m, d := lt.Date()
	// An opening up to Length ago may still be open: look back that many
	// days, and one more for a start late in the day.
	back := int(w.Length/(24*time.Hour)) + 1
	for k := 0; k <= back; k++ {
		day := time.Date(y, m, d-k, 12, 0, 0, 0, time.UTC)
		if !w.Days.Has(day.Weekday()) {
			continue
		}
		open := w.opening(day.Date())
		if !t.Before(open) && t.Before(open.Add(w.Length)) {
			return true
		}
	}
	return false
}

// NextStart returns the first opening at or after t, or the zero time for a
// window with no days.
func (w *Window) NextStart(t time.Time) time.Time {
	if w.Days == 0 {
		return time.Time{}
	}
	lt := t.In(w.loc())
	y, m, d := lt.Date()
	for k := 0; k <= 8; k++ {
		day := time.Date(y, m, d+k, 12, 0, 0, 0, time.UTC)
		if !w.Days.Has(day.Weekday()) {
			continue
		}
		if open := w.opening(day.Date()); !open.Before(t) {
			return open
		}
	}
	return time.Time{}
}
