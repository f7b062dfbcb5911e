package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// browser starts a headless Chromium (Debian's, installed by .ci/run) and
// returns a context driving one tab of it; a JavaScript dialog opening
// (an alert a hostile value would raise) is counted in dialogs.
func browser(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Fatal("chromium is not installed (bash .ci/run installs Debian's chromium)")
	}
	// Its profile is removed after it exits (its helpers may still write
	// while it goes, which t.TempDir's check would call a failure).
	profile, err := os.MkdirTemp("", "taskino-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	// Chromium is newer than the protocol types chromedp knows: events
	// of a kind it cannot decode are no matter here.
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
			t.Logf("chromedp: %s", msg)
		}
	}))
	t.Cleanup(func() { cancelC(); cancelA(); _ = os.RemoveAll(profile) })
	dialogs := &atomic.Int32{}
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(true)) }()
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, dialogs
}

// run runs browser actions, failing the test after limit.
func browse(t *testing.T, ctx context.Context, limit time.Duration, what string, actions ...chromedp.Action) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := chromedp.Run(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// clickTimeline opens the explain answer of fire's slot from the task
// page's timeline. The timeline is redrawn on each of the task's events
// (fires appended ahead of their slot come every second), so a click may
// land on a row just replaced ("Could not find node"): it is made again on
// the new row, up to five times.
func clickTimeline(t *testing.T, ctx context.Context, what, fire string) {
	t.Helper()
	var err error
	for try := 0; try < 5; try++ {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = chromedp.Run(c, chromedp.Click(fmt.Sprintf(`#timeline tr[data-fire=%q] a`, fire), chromedp.ByQuery),
			chromedp.WaitVisible("#answer", chromedp.ByQuery))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "Could not find node") {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// screenshots is where the test saves its screenshots:
// $TASKINO_SCREENSHOTS, else e2e/screenshots.
func screenshots(t *testing.T) string {
	dir := os.Getenv("TASKINO_SCREENSHOTS")
	if dir == "" {
		dir = "screenshots"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// shoot saves the page in light and dark.
func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	for _, scheme := range []string{"light", "dark"} {
		var png []byte
		browse(t, ctx, 20*time.Second, "screenshot "+name,
			emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}),
			chromedp.FullScreenshot(&png, 100))
		if err := os.WriteFile(filepath.Join(dir, name+"-"+scheme+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	browse(t, ctx, 5*time.Second, "back to light", emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}))
}

// awaitHTTP waits until url answers 200 (the console binary is up).
func awaitHTTP(t *testing.T, u string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s: %v", u, limit, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a port: nothing to wait on
	}
}

// nextEvent waits for the next event appended after id for which match
// holds, and returns it with when this test saw it.
func nextEvent(t *testing.T, rdb *redis.Client, key, after string, limit time.Duration, match func(e events.Event) bool) (events.Event, time.Time) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		res, err := rdb.XRead(context.Background(), &redis.XReadArgs{Streams: []string{key, after}, Block: time.Second, Count: 100}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		seen := time.Now()
		for _, m := range res[0].Messages {
			after = m.ID
			f := map[string]string{}
			for k, v := range m.Values {
				f[k], _ = v.(string)
			}
			e, err := events.DecodeEvent(m.ID, f)
			if err == nil && match(e) {
				return e, seen
			}
		}
	}
	t.Fatalf("no matching event on %s within %s", key, limit)
	return events.Event{}, time.Time{}
}

// The web console in a real headless Chromium, against a real redis-server
// with a planner and a worker binary running, and the console binary
// (taskino web) serving it: each page loads with its content; a
// completion is pushed to the Live page and the task's timeline, without a
// reload (how soon is logged: a timing limit would fail on a loaded CI
// machine, not on a fault); trigger, pause, resume and dead-letter replay work
// from the pages and show in Redis; a POST without the CSRF token is
// refused; --read-only shows no action; a task named
// <script>alert(1)</script> and errors holding markup render as text and
// run nothing. Screenshots of each page, light and dark, are saved.
func TestConsoleInChromium(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	payloads := filepath.Join(dir, "payloads.log")
	tasks := writeFile(t, dir, "tasks.yaml", fmt.Sprintf(`version: 1
tasks:
  - name: steady
    every: 1s
    exec: [sh, -c, 'true']
  - name: failing
    every: 2s
    attempts: 1
    exec: [sh, -c, 'echo "<img src=x onerror=alert(2)><b>disk</b> full" >&2; exit 3']
  - name: pausable
    cron: "0 30 2 * * *"
    tz: Europe/Berlin
    exec: [sh, -c, 'true']
  - name: manual
    cron: "0 0 1 1 *"
    exec: [sh, -c, 'echo "$TASKINO_PAYLOAD" >> %s']
`, payloads))
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	// A hand-written trigger whose id holds markup and ESC: dead-lettered
	// (a control character), its fields shown as text.
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Fires("default"), Values: []any{"task", "steady", "id", "<b>id</b>\x1b[31m"}}).Err(); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks}, common...)...)
	addr, roAddr := freeAddr(t), freeAddr(t)
	web := startProc(t, "web", cli, append([]string{"web", "--http", addr}, common...)...)
	ro := startProc(t, "web-ro", cli, append([]string{"web", "--http", roAddr, "--read-only"}, common...)...)
	base := "http://" + addr + "/n/" + ns
	roBase := "http://" + roAddr + "/n/" + ns
	awaitHTTP(t, base+"/", 20*time.Second)
	awaitHTTP(t, roBase+"/", 20*time.Second)
	shots := screenshots(t)
	t.Logf("screenshots in %s", shots)

	// A dead letter of failing (its error holds markup), and the
	// planner and worker seen, before the pages are read.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("planner stderr:\n%s\nworker stderr:\n%s\nweb stderr:\n%s", p.stderr(), w.stderr(), web.stderr())
		}
	})
	awaitEvent(t, b, 30*time.Second, events.TypeDead, func(e events.Event) bool { return e.Task == "failing" })
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Task == "steady" })

	// A spec written into Redis by hand, as anyone with write access to it
	// could (once the worker checked its tasks
	// file against the stored set): its name is markup.
	hostile := "<script>alert(1)</script>"
	var spec map[string]any
	rawManual, err := b.rdb.HGet(b.ctx, b.st.Keys().Specs(), "manual").Result()
	if err != nil || json.Unmarshal([]byte(rawManual), &spec) != nil {
		t.Fatalf("the stored spec of manual: %q, %v", rawManual, err)
	}
	spec["name"], spec["queue"] = hostile, "nobody"
	raw, _ := json.Marshal(spec)
	if err := b.rdb.HSet(b.ctx, b.st.Keys().Specs(), hostile, raw).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, dialogs := browser(t)
	text := func(sel string) string {
		var s string
		browse(t, ctx, 10*time.Second, "read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
		return s
	}
	contains := func(page, got string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: want %q in the page; it reads:\n%s", page, w, got)
			}
		}
	}

	// Overview.
	browse(t, ctx, 20*time.Second, "overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible("h1", chromedp.ByQuery))
	contains("overview", text("main"), "Overview", "planners live", "workers live", "dead letters", "Last hour", "Queues", "Recent misses", "failing", "p1", "w1")
	shoot(t, ctx, shots, "overview")

	// Tasks: every task, the hostile name as text.
	browse(t, ctx, 20*time.Second, "tasks", chromedp.Navigate(base+"/tasks"), chromedp.WaitVisible("table.tasks", chromedp.ByQuery))
	tasksText := text("main")
	contains("tasks", tasksText, "steady", "every second", "failing", "every 2 seconds", "pausable", "every day at 02:30 (Europe/Berlin)", "manual", hostile)
	var scripts int
	browse(t, ctx, 5*time.Second, "count scripts", chromedp.Evaluate(`document.querySelectorAll("script").length`, &scripts))
	if scripts != 1 {
		t.Errorf("tasks page: %d script elements, want 1 (the console's own): a name was rendered as markup", scripts)
	}
	shoot(t, ctx, shots, "tasks")

	// The hostile task's own page.
	browse(t, ctx, 20*time.Second, "hostile task", chromedp.Navigate(base+"/task?name="+url.QueryEscape(hostile)), chromedp.WaitVisible("h1", chromedp.ByQuery))
	contains("hostile task page", text("h1"), hostile)

	// Live: a completion is pushed to the page.
	browse(t, ctx, 20*time.Second, "live", chromedp.Navigate(base+"/live?task=steady"), chromedp.WaitVisible("#live-rows tr", chromedp.ByQuery))
	last, err := b.st.LastEntryID(b.ctx, b.st.Keys().Events())
	if err != nil {
		t.Fatal(err)
	}
	done, seen := nextEvent(t, b.rdb, b.st.Keys().Events(), last, 10*time.Second, func(e events.Event) bool {
		return e.Type == events.TypeCompleted && e.Task == "steady"
	})
	browse(t, ctx, 20*time.Second, "the completion on the Live page, pushed",
		chromedp.WaitVisible(fmt.Sprintf(`#live-rows tr[data-type="completed"][data-fire=%q]`, done.Fire), chromedp.ByQuery))
	t.Logf("the completion showed on the Live page %s after the test read it", time.Since(seen).Round(time.Millisecond))
	shoot(t, ctx, shots, "live")

	// Live, all tasks: the hostile trigger id and the markup error as text.
	browse(t, ctx, 20*time.Second, "live all", chromedp.Navigate(base+"/live"), chromedp.WaitVisible(`#live-rows tr[data-type="dead"]`, chromedp.ByQuery))
	contains("live", text("#live-rows"), "<img src=x onerror=alert(2)><b>disk</b> full", `field "id": a control character ('\x1b' at byte 9)`)

	// Task: a completion is pushed to its timeline.
	browse(t, ctx, 20*time.Second, "task steady", chromedp.Navigate(base+"/task?name=steady"), chromedp.WaitVisible("#timeline table", chromedp.ByQuery))
	contains("task steady", text("main"), "every second", "Next 10 fires", "Recent slots", "Explain the slot of") // its answer may be "ran" or "running": a run takes a few ms each second
	last, _ = b.st.LastEntryID(b.ctx, b.st.Keys().Events())
	done, seen = nextEvent(t, b.rdb, b.st.Keys().Events(), last, 10*time.Second, func(e events.Event) bool {
		return e.Type == events.TypeCompleted && e.Task == "steady"
	})
	browse(t, ctx, 20*time.Second, "the completion in the task's timeline, pushed",
		chromedp.WaitVisible(fmt.Sprintf(`#timeline tr[data-fire=%q]`, done.Fire), chromedp.ByQuery))
	t.Logf("the completion showed in the timeline %s after the test read it", time.Since(seen).Round(time.Millisecond))
	// A slot of the timeline opens its explain answer.
	clickTimeline(t, ctx, "explain a slot", done.Fire)
	contains("explain", text("#answer"), "ran: started on w1")
	shoot(t, ctx, shots, "task")

	// The failing task's page: the error as text, a dead slot explained.
	browse(t, ctx, 20*time.Second, "task failing", chromedp.Navigate(base+"/task?name=failing"), chromedp.WaitVisible("#timeline table", chromedp.ByQuery))
	contains("task failing", text("#timeline"), "<img src=x onerror=alert(2)><b>disk</b> full")

	// Trigger with a payload, from the page.
	browse(t, ctx, 20*time.Second, "trigger", chromedp.Navigate(base+"/task?name=manual"), chromedp.WaitVisible("#trigger", chromedp.ByQuery),
		chromedp.SendKeys("#payload", "from the console", chromedp.ByQuery), chromedp.Click("#trigger", chromedp.ByQuery),
		chromedp.WaitVisible("p.msg", chromedp.ByQuery))
	contains("trigger", text("p.msg"), "triggered manual")
	ran := ofType(awaitEvent(t, b, 20*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Task == "manual" }), events.TypeCompleted)
	if data, _ := os.ReadFile(payloads); strings.TrimSpace(string(data)) != "from the console" {
		t.Errorf("manual ran with payload %q, want the one given on the page", data)
	}
	// The manual run's slot (its trigger's time, not a slot of the cron)
	// opens its own explain answer.
	var manualFire string
	for _, e := range ran {
		if e.Task == "manual" {
			manualFire = e.Fire
		}
	}
	browse(t, ctx, 20*time.Second, "the manual task", chromedp.Navigate(base+"/task?name=manual"), chromedp.WaitVisible("#timeline table", chromedp.ByQuery))
	clickTimeline(t, ctx, "the manual run explained", manualFire)
	contains("manual run explained", text("#answer"), "ran: started on w1")

	// Pause and resume, from the page; Redis says so.
	browse(t, ctx, 20*time.Second, "pause", chromedp.Navigate(base+"/task?name=pausable"), chromedp.WaitVisible("#pause", chromedp.ByQuery),
		chromedp.Click("#pause", chromedp.ByQuery), chromedp.WaitVisible("#resume", chromedp.ByQuery))
	if at, err := b.st.Paused(b.ctx, "pausable"); err != nil || at.IsZero() {
		t.Errorf("after Pause on the page: paused since %v, %v; want paused", at, err)
	}
	contains("paused task", text("main"), "Paused since")
	browse(t, ctx, 20*time.Second, "resume", chromedp.Click("#resume", chromedp.ByQuery), chromedp.WaitVisible("#pause", chromedp.ByQuery))
	if at, err := b.st.Paused(b.ctx, "pausable"); err != nil || !at.IsZero() {
		t.Errorf("after Resume on the page: paused since %v, %v; want not paused", at, err)
	}

	// Dead letters: listed with their markup as text; one replayed.
	all, err := b.st.ListDead(b.ctx, "-", 100)
	if err != nil {
		t.Fatal(err)
	}
	ds := slices.DeleteFunc(all, func(d store.DeadLetter) bool { return d.Task() != "failing" })
	if len(ds) == 0 {
		t.Fatalf("no dead letter of failing among %d", len(all))
	}
	browse(t, ctx, 20*time.Second, "dead", chromedp.Navigate(base+"/dead"), chromedp.WaitVisible("table.dead", chromedp.ByQuery))
	contains("dead", text("table.dead"), "failing", "<img src=x onerror=alert(2)><b>disk</b> full", `<b>id</b>\x1b[31m`)
	shoot(t, ctx, shots, "dead")
	browse(t, ctx, 20*time.Second, "replay", chromedp.Click(fmt.Sprintf(`[id="dl-%s"] button.replay`, cssID(ds[0].ID)), chromedp.ByQuery),
		chromedp.WaitVisible("p.msg", chromedp.ByQuery))
	contains("replay", text("p.msg"), "replayed 1 dead letter")
	if _, err := b.st.DeadLetterByID(b.ctx, ds[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("dead letter %s after Replay on the page: %v, want it gone", ds[0].ID, err)
	}
	awaitEvent(t, b, 20*time.Second, events.TypeFailed, func(e events.Event) bool { return e.Task == "failing" && e.Fire == ds[0].Fields["id"] })

	// Workers.
	browse(t, ctx, 20*time.Second, "workers", chromedp.Navigate(base+"/workers"), chromedp.WaitVisible("h1", chromedp.ByQuery))
	contains("workers", text("main"), "Planners", "p1", "w1", "live", "default", "(devel)")
	shoot(t, ctx, shots, "workers")

	// An action without the CSRF token is refused, and changes nothing.
	resp, err := http.PostForm(base+"/task/pause", url.Values{"name": {"pausable"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST pause without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if at, _ := b.st.Paused(b.ctx, "pausable"); !at.IsZero() {
		t.Errorf("POST without the CSRF token paused the task")
	}

	// Read-only: no action on any page, and a POST is refused.
	for _, path := range []string{"/task?name=manual", "/task?name=failing", "/dead", "/"} {
		var forms int
		browse(t, ctx, 20*time.Second, "read-only "+path, chromedp.Navigate(roBase+path), chromedp.WaitVisible("h1", chromedp.ByQuery),
			chromedp.Evaluate(`document.querySelectorAll("form[method=post], #trigger, #pause, #resume, button.replay, button.delete").length`, &forms))
		if forms != 0 {
			t.Errorf("read-only %s: %d action elements, want none", path, forms)
		}
	}
	contains("read-only", text("header"), "read-only")
	resp, err = http.PostForm(roBase+"/task/pause", url.Values{"csrf": {"x"}, "name": {"pausable"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("read-only POST: %d, want 403", resp.StatusCode)
	}

	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialog(s) opened: a value from Redis ran as script", n)
	}
	for _, pr := range []*proc{ro, web, w, p} {
		pr.stop(t, syscall.SIGTERM)
	}
}

// cssID escapes a stream entry id for an id selector (#dl-ID).
func cssID(id string) string { return id }
