package console

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/taskino/taskino/cmd/internal/inspect"
)

// The pages: each template file but layout.html is a page, rendered in the
// layout (its "content" block).
var pageNames = []string{"overview", "tasks", "task", "live", "dead", "workers", "login", "error"}

func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, p := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", p, err)
		}
		out[p] = t
	}
	return out, nil
}

var funcs = template.FuncMap{
	"show":  show,
	"clip":  func(n int, s string) string { return show(inspect.Clip(s, n)) },
	"tz":    func(t time.Time, loc *time.Location) string { return inspect.Stamp(t, loc) },
	"local": localTime,
	"alt":   altTime,
	"iso":   inspect.ISO,
	"path":  url.PathEscape,
	"ms":    func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := now.Sub(t).Round(time.Second)
		if d < 0 {
			return "in " + (-d).String()
		}
		return d.String() + " ago"
	},
	"add":       func(a, b int) int { return a + b },
	"label":     func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"persec":    func(n int) string { return fmt.Sprintf("%.2f", float64(n)/3600) },
	"show2":     showLines,
	"joinShown": joinShown,
	"sortCol": func(d tasksData, by, label string) sortCol {
		return sortCol{Label: label, URL: d.SortURL[by], Active: d.Sort == by, Desc: d.Desc}
	},
	"timelineLayout": func(l layout, tl timelineData) layout {
		l.Data = tl
		return l
	},
}

// showLines is show for a text of several lines: its line ends stay.
func showLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = show(l)
	}
	return strings.Join(lines, "\n")
}

// show makes a text from Redis safe to read: control characters (ESC, CR,
// LF, NUL, C1) and other unprintable runes are shown escaped, as \x1b or
// \u2028, so nothing can clear, hide or forge what a page shows. The
// templates escape markup.
func show(s string) string {
	clean := true
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// localTime is a <time> that the page script shows in the viewer's zone;
// without the script, it reads in UTC.
func localTime(t time.Time) template.HTML {
	if t.IsZero() {
		return "-"
	}
	u := t.UTC()
	return template.HTML(`<time class="local" datetime="` + u.Format(time.RFC3339Nano) + `">` + u.Format("2006-01-02 15:04:05 UTC") + `</time>`)
}

// altTime is localTime under a time shown in loc: the script hides it
// when the viewer's zone writes it the same.
func altTime(t time.Time, loc *time.Location) template.HTML {
	if t.IsZero() {
		return ""
	}
	u := t.UTC()
	return template.HTML(`<time class="local" datetime="` + u.Format(time.RFC3339Nano) + `" data-shown="` + html.EscapeString(inspect.Stamp(t, loc)) + `">` + u.Format("2006-01-02 15:04:05 UTC") + `</time>`)
}

// layout is what every page's layout reads.
type layout struct {
	Title, Page, Prefix, NS, Base, CSRF, Msg string
	Namespaces                               []string
	ReadOnly, Auth                           bool
	Data                                     any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, n *namespace, page, title string, data any) {
	c.renderCode(w, r, n, page, title, data, http.StatusOK)
}

func (c *Console) renderCode(w http.ResponseWriter, r *http.Request, n *namespace, page, title string, data any, code int) {
	l := layout{Title: title, Page: page, Prefix: c.cfg.Prefix, CSRF: c.csrf, Msg: c.message(r),
		Namespaces: c.cfg.Namespaces, ReadOnly: c.cfg.ReadOnly, Auth: c.cfg.AuthToken != "", Data: data}
	if n != nil {
		l.NS, l.Base = n.name, c.cfg.Prefix+"/n/"+url.PathEscape(n.name)
	}
	var buf bytes.Buffer
	if err := c.pages[page].Execute(&buf, l); err != nil {
		c.log.Error().Err(err).Str("page", page).Msg("console: render")
		http.Error(w, "taskino console: render "+page+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page: one line naming the problem.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, n *namespace, code int, err error) {
	if code >= 500 {
		c.log.Warn().Err(err).Str("path", r.URL.Path).Msg("console: request failed")
	}
	c.renderCode(w, r, n, "error", http.StatusText(code), map[string]any{"Code": code, "Error": err.Error()}, code)
}

// pageURL is the current list's URL with one query value changed.
func pageURL(base string, q url.Values, key, value string) string {
	v := url.Values{}
	for k, vs := range q {
		if k != "msg" {
			v[k] = vs
		}
	}
	v.Set(key, value)
	return base + "?" + v.Encode()
}

// joinShown is xs, each shown safe, joined and clipped to n bytes.
func joinShown(xs []string, n int) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = show(x)
	}
	return inspect.Clip(strings.Join(out, ", "), n)
}

// sortCol is a sortable column's header.
type sortCol struct {
	Label, URL   string
	Active, Desc bool
}
