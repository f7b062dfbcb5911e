package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

func TestTriggerWords(t *testing.T) {
	at := time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		tr   events.Trigger
		want string
	}{
		{events.Trigger{Kind: events.KindCron, Cron: "30 2 * * *", TZ: "Europe/Berlin"}, "every day at 02:30 (Europe/Berlin)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 30 2 * * *"}, "every day at 02:30 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "15 30 2 * * *"}, "every day at 02:30:15 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "*/5 * * * *"}, "every 5 minutes (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "*/10 * * * * *"}, "every 10 seconds (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "* * * * *"}, "every minute (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "* * * * * *"}, "every second (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 * * * *"}, "every hour, on the hour (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "15 * * * *"}, "every hour at minute 15 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 9 * * 1-5", TZ: "America/New_York"}, "on Monday to Friday at 09:00 (America/New_York)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 9 * * MON"}, "every Monday at 09:00 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 9 * * 1,4"}, "on Monday and Thursday at 09:00 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 6 1 * *"}, "on day 1 of every month at 06:00 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 3 L * *"}, "on the last day of every month at 03:00 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 18 LW * *"}, "on the last weekday of every month at 18:00 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 9 15W * ?"}, "on the weekday nearest day 15 of every month at 09:00 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 1 L-2 * *"}, "2 days before the last day of every month at 01:00 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "30 2 * * 5L", TZ: "Europe/Berlin"}, "on the last Friday of every month at 02:30 (Europe/Berlin)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 9 ? * MON#1"}, "on the first Monday of every month at 09:00 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 0 * * 7"}, "every Sunday at 00:00 (UTC)"},
		{events.Cron("30 2 * * *").In("Europe/Berlin").DST(events.GapSkip, events.OverlapTwice), "every day at 02:30 (Europe/Berlin); skipped on the day the clocks jump over it; twice when the clocks repeat it"},
		{events.Trigger{Kind: events.KindCron, Cron: "*/7 * * * * *"}, "cron */7 * * * * * (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 0 1 1 *"}, "every year on 1 January at 00:00 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 */2 * * *"}, "every 2 hours at minute 0 (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "@daily", TZ: "Asia/Tokyo"}, "every day at 00:00 (Asia/Tokyo)"},
		{events.Trigger{Kind: events.KindCron, Cron: "@every 90s"}, "every 90 seconds (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "5-10 3 * * *"}, "cron 5-10 3 * * * (UTC)"},
		{events.Trigger{Kind: events.KindCron, Cron: "0 3 1-7 * 1"}, "cron 0 3 1-7 * 1 (UTC)"},
		{events.Trigger{Kind: events.KindEvery, Period: time.Second}, "every second"},
		{events.Trigger{Kind: events.KindEvery, Period: 5 * time.Minute}, "every 5 minutes"},
		{events.Trigger{Kind: events.KindEvery, Period: 90 * time.Minute}, "every 90 minutes"},
		{events.Trigger{Kind: events.KindEvery, Period: 1500 * time.Millisecond}, "every 1500 milliseconds"},
		{events.Trigger{Kind: events.KindEvery, Period: time.Hour, Start: at}, "every hour, from 2026-03-29 01:00:00 UTC"},
		{events.Trigger{Kind: events.KindOnce, At: at}, "once, at 2026-03-29 01:00:00 UTC"},
		{events.Every(time.Hour).Excluding("2026-12-25", "cron: * * 1 1 *"), "every hour; except 2026-12-25 and 1 more"},
	} {
		if got := TriggerWords(c.tr); got != c.want {
			t.Errorf("%v: %q, want %q", c.tr, got, c.want)
		}
	}
}

func TestShowEscapesControlCharacters(t *testing.T) {
	for in, want := range map[string]string{
		"plain name":          "plain name",
		"\x1b[2J\x1b[31mred":  `\x1b[2J\x1b[31mred`,
		"line\r\nforged line": `line\r\nforged line`,
		"nul\x00":             `nul\x00`,
		"c1\u0085":            `c1\u0085`,
		"<b>markup</b>":       "<b>markup</b>", // the templates escape markup
	} {
		if got := show(in); got != want {
			t.Errorf("show(%q) = %q, want %q", in, got, want)
		}
	}
}

// newTestConsole serves a console of a namespace with one task, on a real
// redis-server.
func newTestConsole(t *testing.T, cfg Config) (*httptest.Server, *store.Store) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st, err := store.New(rdb, "c", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec := events.Spec{Name: "job", Trigger: events.Trigger{Kind: events.KindEvery, Period: time.Hour}}.WithDefaults()
	if _, err := st.Apply(context.Background(), 1, []events.Spec{spec}); err != nil {
		t.Fatal(err)
	}
	cfg.Redis, cfg.Namespaces = rdb, []string{"c"}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	t.Cleanup(func() { hs.Close(); _ = c.Close() })
	return hs, st
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func get(t *testing.T, cl *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := cl.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Actions need the page's CSRF token, and a browser's cross-site POST is
// refused even with it; the console works under a path prefix.
func TestActionsNeedTheCSRFToken(t *testing.T) {
	hs, st := newTestConsole(t, Config{Prefix: "/ops/taskino"})
	ctx := context.Background()
	base := hs.URL + "/ops/taskino/n/c"
	code, body := get(t, hs.Client(), base+"/task?name=job")
	if code != 200 {
		t.Fatalf("task page: %d\n%s", code, body)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field on the task page:\n%s", body)
	}
	if !strings.Contains(body, `action="/ops/taskino/n/c/task/pause"`) {
		t.Errorf("the pause form does not post under the prefix:\n%s", body)
	}
	post := func(form url.Values, header http.Header) int {
		form.Set("name", "job")
		req, _ := http.NewRequest(http.MethodPost, base+"/task/pause", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header[k] = v
		}
		cl := *hs.Client()
		cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, c := range map[string]struct {
		form   url.Values
		header http.Header
	}{
		"no token":    {url.Values{}, nil},
		"wrong token": {url.Values{"csrf": {strings.Repeat("0", 64)}}, nil},
		"cross-site":  {url.Values{"csrf": {m[1]}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
	} {
		if code := post(c.form, c.header); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
		if at, _ := st.Paused(ctx, "job"); !at.IsZero() {
			t.Fatalf("%s: the task was paused", name)
		}
	}
	if code := post(url.Values{"csrf": {m[1]}}, http.Header{"Sec-Fetch-Site": {"same-origin"}}); code != http.StatusSeeOther {
		t.Errorf("with the token: %d, want 303", code)
	}
	if at, _ := st.Paused(ctx, "job"); at.IsZero() {
		t.Error("with the token: the task is not paused")
	}
	if code, _ := get(t, hs.Client(), hs.URL+"/n/c/tasks"); code != http.StatusNotFound {
		t.Errorf("outside the prefix: %d, want 404", code)
	}
}

// With a token, nothing is served without it: pages go to the login, the
// live stream and actions are refused; the login sets a cookie that
// opens them, and a wrong token does not.
func TestAuthToken(t *testing.T) {
	hs, _ := newTestConsole(t, Config{AuthToken: "s3cret"})
	cl := *hs.Client()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cl.Get(hs.URL + "/n/c/tasks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
		t.Errorf("a page without the token: %d to %q, want 303 to the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, u := range []string{"/n/c/events", "/static/../n/c/tasks"} {
		if code, _ := get(t, &cl, hs.URL+u); code == http.StatusOK {
			t.Errorf("%s without the token: 200", u)
		}
	}
	login := func(token string) *http.Response {
		resp, err := cl.PostForm(hs.URL+"/login", url.Values{"token": {token}, "next": {"/n/c/tasks"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := login("wrong"); len(r.Cookies()) != 0 || !strings.Contains(r.Header.Get("Location"), "failed=1") {
		t.Errorf("a wrong token: cookies %v, to %q", r.Cookies(), r.Header.Get("Location"))
	}
	r := login("s3cret")
	if len(r.Cookies()) != 1 || !r.Cookies()[0].HttpOnly || r.Header.Get("Location") != "/n/c/tasks" {
		t.Fatalf("the right token: cookies %v, to %q", r.Cookies(), r.Header.Get("Location"))
	}
	req, _ := http.NewRequest(http.MethodGet, hs.URL+"/n/c/tasks", nil)
	req.AddCookie(r.Cookies()[0])
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with the cookie: %d, want 200", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, hs.URL+"/n/c/tasks", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	if resp, err = cl.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with the bearer token: %d, want 200", resp.StatusCode)
	}
	resp, err = cl.PostForm(hs.URL+"/login", url.Values{"token": {"s3cret"}, "next": {"//evil.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("login with next=//evil.example/: to %q, want /", loc)
	}
}

// Read-only: no form on any page, every action refused.
func TestReadOnly(t *testing.T) {
	hs, st := newTestConsole(t, Config{ReadOnly: true})
	for _, p := range []string{"/n/c/", "/n/c/tasks", "/n/c/task?name=job", "/n/c/dead", "/n/c/workers", "/n/c/live"} {
		code, body := get(t, hs.Client(), hs.URL+p)
		if code != 200 {
			t.Errorf("%s: %d", p, code)
		}
		if strings.Contains(body, `method="post"`) {
			t.Errorf("%s: a form posts in read-only mode", p)
		}
	}
	resp, err := hs.Client().PostForm(hs.URL+"/n/c/task/pause", url.Values{"name": {"job"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST in read-only mode: %d, want 403", resp.StatusCode)
	}
	if at, _ := st.Paused(context.Background(), "job"); !at.IsZero() {
		t.Error("read-only: the task was paused")
	}
}

// Without a token, a request naming another host is refused (a page that
// rebinds its DNS name to 127.0.0.1 cannot use the console); AnyHost lets
// a console behind an authentication of its own answer.
func TestLoopbackHostWithoutToken(t *testing.T) {
	for _, anyHost := range []bool{false, true} {
		hs, _ := newTestConsole(t, Config{AnyHost: anyHost})
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/n/c/tasks", nil)
		req.Host = "rebound.example:8080"
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusForbidden
		if anyHost {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("AnyHost %v, Host rebound.example: %d, want %d", anyHost, resp.StatusCode, want)
		}
		for _, host := range []string{"localhost:1", "127.0.0.1:1", "[::1]:1"} {
			req.Host = host
			if resp, err = hs.Client().Do(req); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("Host %s: %d, want 200", host, resp.StatusCode)
			}
		}
	}
}

func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"/ops/n/c/tasks?q=x":        "/ops/n/c/tasks?q=x",
		"//evil.example/":           "/ops/",
		"/ops/\t/evil.example/":     "/ops/",
		"/\t/evil.example/":         "/ops/",
		"https://evil.example/ops/": "/ops/",
		"/ops\\evil":                "/ops/",
		"/elsewhere":                "/ops/",
		"":                          "/ops/",
	} {
		if got := safeNext("/ops", next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

// Odd requests get an answer, not a panic: a page number past any int,
// a task named "..", a path the mux cleans (its redirect stays under the
// prefix), an unknown namespace, a bad slot.
func TestOddRequests(t *testing.T) {
	hs, st := newTestConsole(t, Config{Prefix: "/ops"})
	spec := events.Spec{Name: "..", Trigger: events.Trigger{Kind: events.KindEvery, Period: time.Hour}}.WithDefaults()
	job := events.Spec{Name: "job", Trigger: events.Trigger{Kind: events.KindEvery, Period: time.Hour}}.WithDefaults()
	if _, err := st.Apply(context.Background(), 2, []events.Spec{job, spec}); err != nil {
		t.Fatal(err)
	}
	cl := *hs.Client()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, c := range []struct {
		path string
		code int
		loc  string
	}{
		{"/ops/n/c/tasks?page=9223372036854775807", 200, ""},
		{"/ops/n/c/tasks?page=-5&sort=bogus", 200, ""},
		{"/ops/n/c/task?name=..", 200, ""},
		{"/ops/n/c/task?name=nope", 404, ""},
		{"/ops/n/c/task?name=job&at=tuesday", 200, ""},
		{"/ops/n/c", 307, "/ops/n/c/"},
		{"/ops/n/c//tasks", 307, "/ops/n/c/tasks"},
		{"/ops/n/other/", 404, ""},
		{"/ops/n/c/tasks?status=bogus", 400, ""},
		{"/ops/n/c/dead?after=x", 400, ""},
	} {
		resp, err := cl.Get(hs.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code || c.loc != "" && resp.Header.Get("Location") != c.loc {
			t.Errorf("%s: %d to %q, want %d to %q", c.path, resp.StatusCode, resp.Header.Get("Location"), c.code, c.loc)
		}
	}
}
