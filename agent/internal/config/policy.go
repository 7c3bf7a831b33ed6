package config

import (
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/agent/internal/policy"
	"github.com/rpmfleet/rpmfleet/pkg/advisory"
)

func (d *decoder) policy(t *table) policy.Policy {
	p := policy.Policy{Mode: policy.Notify, SecurityOnly: true, MinSeverity: advisory.SeverityNone, Reboot: policy.RebootNever,
		InstallonlyLimit: policy.DefaultInstallonlyLimit}
	if t == nil {
		return p
	}
	if s, ok := t.str("mode"); ok {
		if m, err := policy.ParseMode(s); err != nil {
			d.errorf(t.key("mode"), "bad value %q: want notify, download or apply", s)
		} else {
			p.Mode = m
			p.Set |= policy.SetMode
		}
	}
	if b, ok := t.boolean("security_only"); ok {
		p.SecurityOnly = b
		p.Set |= policy.SetSecurityOnly
	}
	if s, ok := t.str("min_severity"); ok {
		if sev, err := advisory.ParseSeverity(s); err != nil {
			d.errorf(t.key("min_severity"), "bad value %q: want none, low, moderate, important or critical", s)
		} else {
			p.MinSeverity = sev
			p.Set |= policy.SetMinSeverity
		}
	}
	if globs, ok := t.strs("exclude"); ok {
		for _, g := range globs {
			if err := policy.CheckGlob(g); err != nil {
				d.errorf(t.key("exclude"), "bad value %q: want a package name glob (path.Match syntax: * ? [a-z] \\)", g)
				continue
			}
			p.Exclude = append(p.Exclude, g)
		}
	}
	if s, ok := t.str("reboot"); ok {
		if r, err := policy.ParseReboot(s); err != nil {
			d.errorf(t.key("reboot"), "bad value %q: want never or when-needed", s)
		} else {
			p.Reboot = r
			p.Set |= policy.SetReboot
		}
	}
	if cmds, ok := t.strs("health_checks"); ok {
		for _, c := range cmds {
			if strings.TrimSpace(c) == "" {
				d.errorf(t.key("health_checks"), "empty command")
				continue
			}
			p.HealthChecks = append(p.HealthChecks, c)
		}
	}
	d.plainUpdates(t, &p) // allowlist.go
	for _, wt := range t.tables("window") {
		if w, ok := d.window(wt); ok {
			p.Windows = append(p.Windows, w)
		}
	}
	t.done()
	return p
}

func (d *decoder) window(t *table) (policy.Window, bool) {
	w := policy.Window{Location: time.Local}
	ok := true
	if days, present := t.strs("days"); present {
		for _, s := range days {
			v, err := policy.ParseDays([]string{s})
			if err != nil {
				d.errorf(t.key("days"), "bad value %q: want mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri", s)
				ok = false
			}
			w.Days |= v
		}
		if len(days) == 0 {
			d.errorf(t.key("days"), "no days: the window would never open")
			ok = false
		}
	} else {
		if _, there := t.m["days"]; !there {
			d.errorf(t.path, "missing days")
		}
		ok = false
	}
	if s, present := t.str("start"); present {
		v, err := policy.ParseClock(s)
		if err != nil {
			d.errorf(t.key("start"), "bad value %q: want HH:MM from 00:00 to 23:59", s)
			ok = false
		}
		w.Start = v
	} else {
		if _, there := t.m["start"]; !there {
			d.errorf(t.path, "missing start")
		}
		ok = false
	}
	if v, present := t.duration("length"); present {
		if v <= 0 || v > policy.MaxWindowLength {
			d.errorf(t.key("length"), "bad value %q: want more than 0 and at most %s", t.m["length"], policy.MaxWindowLength)
			ok = false
		}
		w.Length = v
	} else {
		if _, there := t.m["length"]; !there {
			d.errorf(t.path, "missing length")
		}
		ok = false
	}
	if s, present := t.str("timezone"); present {
		loc, err := time.LoadLocation(s)
		if err != nil || s == "" {
			d.errorf(t.key("timezone"), "bad value %q: want an IANA time zone such as Europe/Berlin", s)
			ok = false
		} else {
			w.Location = loc
		}
	}
	t.done()
	return w, ok
}
