package config

import (
	"errors"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

var repoIDRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

func (d *decoder) repo(t *table) Repo {
	r := Repo{Enabled: true, GPGCheck: true}
	if s, ok := t.str("id"); !ok {
		if _, present := t.m["id"]; !present {
			d.errorf(t.path, "missing id")
		}
	} else if !repoIDRe.MatchString(s) {
		d.errorf(t.key("id"), "bad value %q: want letters, digits and _.:-", s)
	} else {
		r.ID = s
	}
	if s, ok := t.str("baseurl"); ok {
		if err := checkBaseURL(s); err != nil {
			d.errorf(t.key("baseurl"), "bad value %q: %v", s, err)
		}
		r.BaseURL = s
	} else if _, present := t.m["baseurl"]; !present {
		d.errorf(t.path, "missing baseurl")
	}
	if keys, ok := t.strs("gpgkey"); ok {
		for _, k := range keys {
			p := strings.TrimPrefix(k, "file://")
			if !filepath.IsAbs(p) {
				why := ""
				if strings.Contains(k, "://") {
					why = "; a key fetched over the network pins nothing"
				}
				d.errorf(t.key("gpgkey"), "bad value %q: want a key file on the device (an absolute path or file:/// URL)%s", k, why)
				continue
			}
			r.GPGKeys = append(r.GPGKeys, filepath.Clean(p))
		}
	}
	if b, ok := t.boolean("enabled"); ok {
		r.Enabled = b
	}
	if b, ok := t.boolean("gpgcheck"); ok {
		r.GPGCheck = b
	}
	if r.GPGCheck && len(r.GPGKeys) == 0 {
		if _, present := t.m["gpgkey"]; !present {
			d.errorf(t.path, "gpgcheck is on but no gpgkey is given: packages could not be verified")
		}
	}
	t.done()
	return r
}

func checkBaseURL(s string) error {
	if filepath.IsAbs(s) {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return errors.New("no host")
		}
	case "file":
		if !strings.HasPrefix(u.Path, "/") {
			return errors.New("want file:///absolute/path")
		}
	default:
		return errors.New("want an http, https or file URL, or an absolute folder")
	}
	return nil
}
