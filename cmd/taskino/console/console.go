// Package console is taskino's web console: an http.Handler that shows the
// namespaces' tasks (their triggers in words, next fires, history,
// timelines and explain answers), the live events, the dead letters and the
// planners and workers, and, unless read-only, triggers, pauses and resumes
// tasks and replays or deletes dead letters.
//
// It reads Redis through the store (and one events reader per namespace,
// shared by every viewer), and writes only through the store's and the
// planner's admin calls, the same as the CLI's. Pages are HTML rendered on
// the server from embedded templates; the embedded script (no library, no
// network) only adds live updates (Server-Sent Events) and local times.
//
// Mount it at any path prefix:
//
//	c, err := console.New(console.Config{Redis: rdb, Namespaces: []string{"default"}, Prefix: "/ops/taskino"})
//	mux.Handle("/ops/taskino/", c)
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures a Console.
type Config struct {
	// Redis is the client of the namespaces' Redis.
	Redis redis.UniversalClient
	// Namespaces are the namespaces the console shows, the first one
	// first; the switcher offers them all. Required.
	Namespaces []string
	// Prefix is the path the console is mounted at ("" for the root, or
	// "/ops/taskino": no trailing slash). Every link and form uses it.
	Prefix string
	// ReadOnly removes every action: no forms are shown, and every POST
	// but the login is refused.
	ReadOnly bool
	// AuthToken, when not empty, is required of every request: as
	// "Authorization: Bearer TOKEN", or the cookie the login page sets.
	// Without it, the console answers only requests whose Host is a
	// loopback name or address (localhost, 127.0.0.1, [::1]), so a web
	// page cannot reach it through DNS rebinding; AnyHost lifts that, for
	// a console mounted behind an authentication of your own.
	AuthToken string
	AnyHost   bool
	// SecureCookie marks the login cookie Secure even when the request
	// came without TLS (a proxy in front ends it); it is Secure anyway on
	// a TLS request or one with X-Forwarded-Proto: https.
	SecureCookie bool
	// PageSize is how many tasks a page of the tasks list shows (default
	// 50) and DeadPageSize how many dead letters (default 50).
	PageSize, DeadPageSize int
	// StateTTL is how long the states of all tasks are reused by views
	// that need all of them (the overview's counts, a tasks list filtered
	// or sorted by state); default 5 seconds. The task set itself is read
	// again only when its version changes (or after SpecsTTL, default 30
	// seconds, for a set changed by hand).
	StateTTL, SpecsTTL time.Duration
	// Who names the console's user in the events its actions append
	// (default "taskino-web@HOST").
	Who string
	// Logger logs failed requests (default: none).
	Logger *zerolog.Logger
}

// Console is the web console, an http.Handler. Close stops its events
// readers.
type Console struct {
	cfg    Config
	mux    *http.ServeMux
	pages  map[string]*template.Template
	static http.Handler
	csrf   string
	ns     map[string]*namespace
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    zerolog.Logger
}

// New checks cfg and returns the console. It does not touch Redis until a
// page is asked for.
func New(cfg Config) (*Console, error) {
	if cfg.Redis == nil {
		return nil, errors.New("console: Config.Redis is nil")
	}
	if len(cfg.Namespaces) == 0 {
		return nil, errors.New("console: Config.Namespaces is empty: give the namespaces to show")
	}
	if err := CheckPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("console: Config.Prefix: %w", err)
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 50
	}
	if cfg.DeadPageSize <= 0 {
		cfg.DeadPageSize = 50
	}
	if cfg.StateTTL <= 0 {
		cfg.StateTTL = 5 * time.Second
	}
	if cfg.SpecsTTL <= 0 {
		cfg.SpecsTTL = 30 * time.Second
	}
	if cfg.Who == "" {
		host, _ := os.Hostname()
		cfg.Who = "taskino-web@" + host
	}
	c := &Console{cfg: cfg, ns: map[string]*namespace{}, log: zerolog.Nop()}
	if cfg.Logger != nil {
		c.log = *cfg.Logger
	}
	for _, name := range cfg.Namespaces {
		st, err := store.New(cfg.Redis, name, store.Options{EventsMaxLen: store.NoTrim})
		if err != nil {
			return nil, fmt.Errorf("console: namespace %q: %w", name, err)
		}
		if _, dup := c.ns[name]; dup {
			return nil, fmt.Errorf("console: namespace %q given twice", name)
		}
		c.ns[name] = newNamespace(name, st, cfg)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	c.csrf = hex.EncodeToString(b)
	var err error
	if c.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(staticFS, "static")
	c.static = http.StripPrefix(cfg.Prefix+"/static/", http.FileServer(http.FS(sub)))
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.routes()
	return c, nil
}

// Close stops the console's events readers and ends its live streams.
func (c *Console) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// ServeHTTP serves the console; paths outside Prefix are not found.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	rest, ok := strings.CutPrefix(r.URL.Path, c.cfg.Prefix)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		http.NotFound(w, r)
		return
	}
	if rest == "" {
		http.Redirect(w, r, c.cfg.Prefix+"/", http.StatusFound)
		return
	}
	if strings.HasPrefix(rest, "/static/") {
		h.Set("Cache-Control", "public, max-age=3600")
		c.static.ServeHTTP(w, r)
		return
	}
	if c.cfg.AuthToken == "" && !c.cfg.AnyHost && !Loopback(r.Host) {
		http.Error(w, "taskino console: without a token it answers only for localhost, 127.0.0.1 or [::1] (its Host was "+strconv.Quote(r.Host)+"): give it --auth-token to serve other names", http.StatusForbidden)
		return
	}
	if rest != "/login" && !c.authorized(r) {
		if r.Method == http.MethodGet && !strings.HasSuffix(rest, "/events") {
			http.Redirect(w, r, c.cfg.Prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		http.Error(w, "taskino console: a valid token is required (Authorization: Bearer TOKEN, or log in)", http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodPost && rest != "/login" {
		if c.cfg.ReadOnly && rest != "/logout" {
			http.Error(w, "taskino console: read-only: actions are disabled", http.StatusForbidden)
			return
		}
		if err := c.checkCSRF(r); err != nil {
			http.Error(w, "taskino console: "+err.Error(), http.StatusForbidden)
			return
		}
	}
	// The routes hold the prefix, so the redirects the mux makes (to a
	// cleaned path) stay under it.
	c.mux.ServeHTTP(w, r)
}

const authCookie = "taskino_console"

// CheckPrefix says what is wrong with a path prefix for Config.Prefix.
func CheckPrefix(p string) error {
	if p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") ||
		strings.Trim(p, "/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "") {
		return fmt.Errorf("%q: want \"\" or a path such as /ops/taskino (a leading slash, no trailing one; letters, digits, - _ . /)", p)
	}
	return nil
}

// Loopback reports whether host (a Host header, or a listen address, with
// or without a port) names this machine: localhost or a loopback address.
func Loopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// cookieValue is what the login cookie holds: a MAC of the token, not the
// token.
func (c *Console) cookieValue() string {
	m := hmac.New(sha256.New, []byte(c.cfg.AuthToken))
	m.Write([]byte("taskino console login"))
	return hex.EncodeToString(m.Sum(nil))
}

func (c *Console) authorized(r *http.Request) bool {
	if c.cfg.AuthToken == "" {
		return true
	}
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(a), []byte(c.cfg.AuthToken)) == 1
	}
	if ck, err := r.Cookie(authCookie); err == nil {
		return subtle.ConstantTimeCompare([]byte(ck.Value), []byte(c.cookieValue())) == 1
	}
	return false
}

// checkCSRF refuses a POST without the console's CSRF token, or one a
// browser says came from another site.
func (c *Console) checkCSRF(r *http.Request) error {
	if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
		return errors.New("refused: a cross-site request")
	}
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("bad form: %v", err)
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(c.csrf)) != 1 {
		return errors.New("refused: missing or wrong CSRF token (reload the page and try again)")
	}
	return nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	p := c.cfg.Prefix
	m.HandleFunc("GET "+p+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p+"/n/"+url.PathEscape(c.cfg.Namespaces[0])+"/", http.StatusFound)
	})
	m.HandleFunc("GET "+p+"/login", c.loginPage)
	m.HandleFunc("POST "+p+"/login", c.login)
	m.HandleFunc("POST "+p+"/logout", c.logout)
	m.HandleFunc("GET "+p+"/n/{ns}/{$}", c.withNS(c.overview))
	m.HandleFunc("GET "+p+"/n/{ns}/tasks", c.withNS(c.tasksPage))
	// A task by ?name=: any task name (one of "." or "..", or with a
	// slash) makes a plain query value.
	m.HandleFunc("GET "+p+"/n/{ns}/task", c.withNS(c.taskPage))
	m.HandleFunc("GET "+p+"/n/{ns}/task/timeline", c.withNS(c.timelineFragment))
	m.HandleFunc("POST "+p+"/n/{ns}/task/{action}", c.withNS(c.taskAction))
	m.HandleFunc("GET "+p+"/n/{ns}/live", c.withNS(c.livePage))
	m.HandleFunc("GET "+p+"/n/{ns}/events", c.withNS(c.eventStream))
	m.HandleFunc("GET "+p+"/n/{ns}/dead", c.withNS(c.deadPage))
	m.HandleFunc("POST "+p+"/n/{ns}/dead/{action}", c.withNS(c.deadAction))
	m.HandleFunc("GET "+p+"/n/{ns}/workers", c.withNS(c.workersPage))
	c.mux = m
}

// withNS resolves the {ns} of the path to one of the configured
// namespaces.
func (c *Console) withNS(h func(http.ResponseWriter, *http.Request, *namespace)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, ok := c.ns[r.PathValue("ns")]
		if !ok {
			c.fail(w, r, nil, http.StatusNotFound, fmt.Errorf("namespace %q is not one this console shows (%s)", r.PathValue("ns"), strings.Join(c.cfg.Namespaces, ", ")))
			return
		}
		h(w, r, n)
	}
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, nil, "login", "Log in", map[string]any{"Next": safeNext(c.cfg.Prefix, r.URL.Query().Get("next")), "Failed": r.URL.Query().Has("failed")})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	next := safeNext(c.cfg.Prefix, r.PostForm.Get("next"))
	if c.cfg.AuthToken == "" || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(c.cfg.AuthToken)) != 1 {
		http.Redirect(w, r, c.cfg.Prefix+"/login?failed=1&next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	secure := c.cfg.SecureCookie || r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
	http.SetCookie(w, &http.Cookie{Name: authCookie, Value: c.cookieValue(), Path: c.cfg.Prefix + "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: authCookie, Value: "", Path: c.cfg.Prefix + "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, c.cfg.Prefix+"/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect inside the console: a path under
// the prefix, with no scheme, host, backslash or control character (a
// browser drops a tab, and "/\t/host" becomes "//host").
func safeNext(prefix, next string) string {
	u, err := url.Parse(next)
	bad := err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || !strings.HasPrefix(next, prefix+"/") || strings.HasPrefix(next, "//")
	for _, r := range next {
		if r < 0x20 || r == 0x7f || r == '\\' {
			bad = true
		}
	}
	if bad {
		return prefix + "/"
	}
	return next
}

// back redirects after an action to the page it came from, with a
// message, signed so that a link made elsewhere cannot put words in the
// console's mouth.
func (c *Console) back(w http.ResponseWriter, r *http.Request, to, msg string) {
	u := to
	if msg != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "msg=" + url.QueryEscape(msg) + "&sig=" + c.sign(msg)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// sign is a MAC of a message with the console's secret.
func (c *Console) sign(msg string) string {
	m := hmac.New(sha256.New, []byte(c.csrf))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// message is the page's signed message, "" when none or not signed.
func (c *Console) message(r *http.Request) string {
	q := r.URL.Query()
	msg := q.Get("msg")
	if msg == "" || !hmac.Equal([]byte(q.Get("sig")), []byte(c.sign(msg))) {
		return ""
	}
	return msg
}
