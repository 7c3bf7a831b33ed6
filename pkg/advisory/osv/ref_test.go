package osv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/advisory"
	"github.com/rpmfleet/rpmfleet/pkg/compressed"
	"github.com/rpmfleet/rpmfleet/pkg/rpmver"
)

// referenceDecode is a second, deliberately plain reading of OSV input:
// encoding/json into generic values, then the mapping the package doc
// describes, written the obvious way. The fast Decoder must agree with it
// on every input, valid or not (TestDatabaseMatchesReference, FuzzDecoder).
// It returns the advisories read before the first error, and that error.
func referenceDecode(data []byte, opts Options) ([]advisory.Advisory, error) {
	r, _, err := compressed.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	dec := json.NewDecoder(r)
	var out []advisory.Advisory
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, err
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return out, errors.New("top-level value is not an object")
		}
		list, err := referenceAdvisories(obj, opts)
		if err != nil {
			return out, err
		}
		out = append(out, list...)
	}
}

func refString(v any, field string) (string, error) {
	switch s := v.(type) {
	case nil:
		return "", nil
	case string:
		return s, nil
	}
	return "", fmt.Errorf("%s: not a string", field)
}

func refArray(v any, field string) ([]any, error) {
	switch a := v.(type) {
	case nil:
		return nil, nil
	case []any:
		return a, nil
	}
	return nil, fmt.Errorf("%s: not an array", field)
}

func refObject(v any, field string) (map[string]any, error) {
	switch m := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return m, nil
	}
	return nil, fmt.Errorf("%s: not an object", field)
}

func refTime(v any, field string) (time.Time, error) {
	s, err := refString(v, field)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339, s)
}

func referenceAdvisories(obj map[string]any, opts Options) ([]advisory.Advisory, error) {
	var a advisory.Advisory
	var err error
	if a.ID, err = refString(obj["id"], "id"); err != nil {
		return nil, err
	}
	if a.Title, err = refString(obj["summary"], "summary"); err != nil {
		return nil, err
	}
	if opts.Descriptions {
		d, err := refString(obj["details"], "details")
		if err != nil {
			return nil, err
		}
		a.Description = advisory.BoundDescription(d)
	}
	if a.Issued, err = refTime(obj["published"], "published"); err != nil {
		return nil, err
	}
	if a.Updated, err = refTime(obj["modified"], "modified"); err != nil {
		return nil, err
	}
	for _, field := range []string{"related", "aliases"} {
		list, err := refArray(obj[field], field)
		if err != nil {
			return nil, err
		}
		for _, v := range list {
			s, err := refString(v, field)
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(s, "CVE-") {
				a.CVEs = append(a.CVEs, s)
			}
		}
	}
	slices.Sort(a.CVEs)
	a.CVEs = slices.Compact(a.CVEs)
	refs, err := refArray(obj["references"], "references")
	if err != nil {
		return nil, err
	}
	for _, v := range refs {
		m, err := refObject(v, "references[]")
		if err != nil {
			return nil, err
		}
		typ, err := refString(m["type"], "type")
		if err != nil {
			return nil, err
		}
		url, err := refString(m["url"], "url")
		if err != nil {
			return nil, err
		}
		a.References = append(a.References, advisory.Reference{Type: strings.ToLower(typ), URL: url})
	}
	a.Type = advisory.TypeFromID(a.ID)
	if prefix, _, ok := strings.Cut(a.Title, ": "); ok {
		if s, err := advisory.ParseSeverity(prefix); err == nil {
			a.Severity = s
		}
	}

	byEco := map[string][]advisory.Package{}
	var ecos []string
	affected, err := refArray(obj["affected"], "affected")
	if err != nil {
		return nil, err
	}
	for _, v := range affected {
		aff, err := refObject(v, "affected[]")
		if err != nil {
			return nil, err
		}
		pkg, err := refObject(aff["package"], "package")
		if err != nil {
			return nil, err
		}
		eco, err := refString(pkg["ecosystem"], "ecosystem")
		if err != nil {
			return nil, err
		}
		name, err := refString(pkg["name"], "name")
		if err != nil {
			return nil, err
		}
		var fixed []rpmver.EVR
		ranges, err := refArray(aff["ranges"], "ranges")
		if err != nil {
			return nil, err
		}
		for _, rv := range ranges {
			rng, err := refObject(rv, "ranges[]")
			if err != nil {
				return nil, err
			}
			typ, err := refString(rng["type"], "type")
			if err != nil {
				return nil, err
			}
			events, err := refArray(rng["events"], "events")
			if err != nil {
				return nil, err
			}
			if typ == "" {
				return nil, errors.New("range type missing")
			}
			for _, ev := range events {
				m, err := refObject(ev, "events[]")
				if err != nil {
					return nil, err
				}
				f, err := refString(m["fixed"], "fixed")
				if err != nil {
					return nil, err
				}
				if typ != "ECOSYSTEM" || m["fixed"] == nil {
					continue
				}
				evr, err := rpmver.ParseEVR(f)
				if err != nil {
					return nil, err
				}
				fixed = append(fixed, evr)
			}
		}
		if name == "" || eco == "" {
			return nil, errors.New("package name or ecosystem missing")
		}
		if len(fixed) == 0 {
			continue
		}
		if _, ok := byEco[eco]; !ok {
			ecos = append(ecos, eco)
		}
		for _, evr := range fixed {
			p := advisory.Package{Name: name, EVR: evr}
			if !slices.Contains(byEco[eco], p) {
				byEco[eco] = append(byEco[eco], p)
			}
		}
	}
	if a.ID == "" {
		return nil, errors.New("id missing")
	}
	if opts.Ecosystem != "" {
		ecos = []string{opts.Ecosystem}
	}
	var out []advisory.Advisory
	for _, eco := range ecos {
		if len(byEco[eco]) == 0 {
			continue
		}
		b := a
		b.Ecosystem = eco
		b.Packages = byEco[eco]
		out = append(out, b)
	}
	return out, nil
}
