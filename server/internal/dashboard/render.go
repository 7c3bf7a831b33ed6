package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rpmfleet/rpmfleet/pkg/version"
)

// pageNames are the templates in templates/, each a page over layout.html.
var pageNames = []string{"login", "error", "overview", "devices", "device", "cve", "advisories", "advisory", "rollouts", "rollout"}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"day": func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"ago": ago,
	"percent": func(f float64) string {
		return fmt.Sprintf("%.1f%%", 100*f)
	},
	"lower":   strings.ToLower,
	"version": version.String,
	"link":    link,
	"add":     func(a, b int) int { return a + b },
}

// ago says how long before now t was, roughly ("3h ago").
func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: parse %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// frame is what layout.html shows around every page.
type frame struct {
	Title string
	User  *user
	Now   time.Time
	// Nav is the nav entry to mark as current.
	Nav string
	// CVE is the CVE search box's value.
	CVE string
	// Rollouts shows the rollouts nav entry.
	Rollouts bool
	Page     any
}

// titled is a page view that names its page.
type titled interface {
	title() (title, nav string)
}

func (*loginView) title() (string, string) { return "Log in", "" }
func (*errorView) title() (string, string) { return "Error", "" }

// render writes page name with view v, buffered, so a template error is a
// 500 and never half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, v titled) {
	f := frame{User: userFrom(r.Context()), Now: d.opts.Now(), Page: v, Rollouts: d.opts.Rollouts != nil}
	f.Title, f.Nav = v.title()
	if c, ok := v.(*cveView); ok {
		f.CVE = c.ID
	}
	var buf bytes.Buffer
	if err := d.pages[name].Execute(&buf, f); err != nil {
		d.log.Error("dashboard template failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// link builds a local URL from a path and key, value pairs, leaving out
// empty values and zeros. A template interpolates the whole URL, at the
// start of an href, so html/template checks it as a URL and escapes it for
// the attribute without escaping its query syntax again.
func link(path string, kv ...any) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v := fmt.Sprint(kv[i+1])
		if v != "" && v != "0" && v != "false" {
			q.Set(fmt.Sprint(kv[i]), v)
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// queryOf is the query string k=v.
func queryOf(k, v string) string { return url.Values{k: {v}}.Encode() }
