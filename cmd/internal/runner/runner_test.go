//go:build unix

package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
)

var fire = events.Fire{
	ID:      "f-42",
	Task:    "nightly-report",
	At:      time.Date(2026, 11, 21, 11, 0, 5, 0, time.FixedZone("CET", 3600)),
	Payload: "héllo wörld, 100% /x?y=z&a+b\nsecond line",
	Attempt: 2,
}

// execRun runs argv once with opts, as the dispatcher would, and returns
// the output and error.
func execRun(t *testing.T, ctx context.Context, opts Options, argv ...string) (string, error) {
	t.Helper()
	return Exec(argv, opts).(*execHandler).run(ctx, fire)
}

func TestExecEnvironment(t *testing.T) {
	t.Setenv("RUNNER_TEST_INHERITED", "from the worker")
	out, err := execRun(t, context.Background(), Options{Node: "w-7"}, "sh", "-c",
		`printf "%s|%s|%s|%s|%s|%s|%s" "$TASKINO_TASK" "$TASKINO_FIRE_ID" "$TASKINO_SCHEDULED_AT" "$TASKINO_ATTEMPT" "$TASKINO_PAYLOAD" "$TASKINO_NODE" "$RUNNER_TEST_INHERITED"`)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	want := "nightly-report|f-42|2026-11-21T10:00:05.000Z|2|" + fire.Payload + "|w-7|from the worker"
	if out != want {
		t.Fatalf("output\n got %q\nwant %q", out, want)
	}
}

func TestExecPayloadWithNUL(t *testing.T) {
	f := fire
	f.Payload = "a\x00b"
	_, err := Exec([]string{"true"}, Options{}).(*execHandler).run(context.Background(), f)
	if err == nil || !strings.Contains(err.Error(), "TASKINO_PAYLOAD") {
		t.Fatalf("error %v does not name TASKINO_PAYLOAD", err)
	}
}

func TestExecSuccessOutputBothStreams(t *testing.T) {
	out, err := execRun(t, context.Background(), Options{}, "sh", "-c", "echo to-stdout; echo to-stderr >&2")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if out != "to-stdout\nto-stderr\n" {
		t.Fatalf("output %q", out)
	}
}

func TestExecExitStatus(t *testing.T) {
	out, err := execRun(t, context.Background(), Options{}, "sh", "-c",
		`echo starting; echo "disk full: /var/backups" >&2; echo "  " >&2; exit 3`)
	if err == nil {
		t.Fatal("exit 3 succeeded")
	}
	if got, want := err.Error(), "exit status 3: disk full: /var/backups"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("error does not wrap the *exec.ExitError of exit 3: %#v", err)
	}
	if !strings.Contains(out, "starting\n") || !strings.Contains(out, "disk full") {
		t.Fatalf("output %q", out)
	}
}

func TestExecExitStatusNoOutput(t *testing.T) {
	_, err := execRun(t, context.Background(), Options{}, "sh", "-c", "exit 1")
	if err == nil || err.Error() != "exit status 1" {
		t.Fatalf("error %v, want exit status 1", err)
	}
}

func TestExecLongLastLineIsShortened(t *testing.T) {
	_, err := execRun(t, context.Background(), Options{}, "sh", "-c", `head -c 1000 /dev/zero | tr '\0' x; exit 2`)
	if err == nil {
		t.Fatal("exit 2 succeeded")
	}
	msg := err.Error()
	line := strings.TrimPrefix(msg, "exit status 2: ")
	if line == msg || len(line) > maxLine || !strings.HasSuffix(line, "...") || !strings.HasPrefix(line, "xxx") {
		t.Fatalf("error %q: want the line cut to %d bytes ending in ...", msg, maxLine)
	}
}

func TestExecKilledBySignal(t *testing.T) {
	_, err := execRun(t, context.Background(), Options{}, "sh", "-c", "echo about to die; kill -KILL $$")
	if err == nil {
		t.Fatal("a killed command succeeded")
	}
	if got, want := err.Error(), "killed by signal SIGKILL: about to die"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
}

func TestExecOutputTail(t *testing.T) {
	const limit = 1000
	out, err := execRun(t, context.Background(), Options{OutputLimit: limit}, "sh", "-c", "yes | head -c 100000; printf END")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	full := strings.Repeat("y\n", 50000) + "END"
	if want := full[len(full)-limit:]; out != want {
		t.Fatalf("output: got %d bytes ending %q, want the last %d bytes", len(out), out[max(len(out)-20, 0):], limit)
	}
}

func TestExecDefaultOutputLimit(t *testing.T) {
	out, err := execRun(t, context.Background(), Options{}, "sh", "-c", "yes | head -c 100000")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(out) != defaultOutputLimit {
		t.Fatalf("kept %d bytes, want %d", len(out), defaultOutputLimit)
	}
}

func TestExecNotFound(t *testing.T) {
	const name = "taskino-no-such-command-4d1f"
	_, err := execRun(t, context.Background(), Options{}, name, "arg")
	if err == nil {
		t.Fatal("a missing command ran")
	}
	if !strings.Contains(err.Error(), `"`+name+`"`) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("error %q does not say %q was not found", err, name)
	}
	if !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("error %v does not wrap exec.ErrNotFound", err)
	}

	path := filepath.Join(t.TempDir(), "missing")
	_, err = execRun(t, context.Background(), Options{}, path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("error %v does not say %s was not found", err, path)
	}
}

func TestExecEmptyArgv(t *testing.T) {
	if _, err := execRun(t, context.Background(), Options{}); err == nil {
		t.Fatal("an empty argv ran")
	}
}

func TestExecContextAlreadyDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	marker := filepath.Join(t.TempDir(), "ran")
	_, err := execRun(t, ctx, Options{}, "touch", marker)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want one wrapping context.Canceled", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran after its context ended")
	}
}

// expiring is a context that ends, with context.DeadlineExceeded, when
// the test cancels it: the test picks the moment a deadline would pass
// instead of racing a clock.
type expiring struct{ context.Context }

func (e expiring) Err() error {
	if e.Context.Err() != nil {
		return context.DeadlineExceeded
	}
	return nil
}

// expireWhenWritten returns a context that expires once the file at path
// holds a pid, and a function returning that pid.
func expireWhenWritten(t *testing.T, path string) (context.Context, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var (
		mu  sync.Mutex
		pid int
	)
	go func() {
		defer cancel()
		stop := time.Now().Add(30 * time.Second)
		for time.Now().Before(stop) {
			if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
				n, err := strconv.Atoi(strings.TrimSpace(string(b)))
				if err == nil {
					mu.Lock()
					pid = n
					mu.Unlock()
				}
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return expiring{ctx}, func() int {
		mu.Lock()
		defer mu.Unlock()
		if pid == 0 {
			t.Fatalf("no pid written to %s", path)
		}
		return pid
	}
}

// gone reports whether pid has ended: no such process, or a zombie
// waiting to be reaped by whoever inherited it.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		// pid (comm) S ...: the state follows the last ')'.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
			return s[i+2] == 'Z'
		}
	}
	out, err := exec.Command("ps", "-o", "stat=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return false
	}
	st := strings.TrimSpace(string(out))
	return st == "" || st[0] == 'Z'
}

// waitGone fails the test unless pid ends within a generous bound.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	stop := time.Now().Add(20 * time.Second)
	for !gone(pid) {
		if time.Now().After(stop) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still running", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, grandchild := expireWhenWritten(t, pidFile)
	// The background sleep holds the output pipe open, and so does the
	// foreground one.
	_, err := execRun(t, ctx, Options{KillGrace: time.Minute}, "sh", "-c", `sleep 300 & echo $! > "$0"; sleep 300`, pidFile)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want one wrapping context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "SIGTERM") {
		t.Fatalf("error %q does not say the group was sent SIGTERM", err)
	}
	waitGone(t, grandchild())
}

func TestExecIgnoredTermIsKilled(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, grandchild := expireWhenWritten(t, pidFile)
	_, err := execRun(t, ctx, Options{KillGrace: 50 * time.Millisecond}, "sh", "-c",
		`trap "" TERM; sleep 300 & echo $! > "$0"; wait; wait`, pidFile)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want one wrapping context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "SIGKILL") {
		t.Fatalf("error %q does not say the group was sent SIGKILL", err)
	}
	waitGone(t, grandchild())
}

func TestExecRealDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := execRun(t, ctx, Options{}, "sleep", "300")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want one wrapping context.DeadlineExceeded", err)
	}
}

func TestExecLeftoverProcessesAreStopped(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The command exits at once, leaving a child that holds the output.
	out, err := execRun(t, context.Background(), Options{KillGrace: time.Minute}, "sh", "-c",
		`sleep 300 & echo $! > "$0"; echo done`, pidFile)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if out != "done\n" {
		t.Fatalf("output %q", out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

func TestExecRunWithoutDispatcher(t *testing.T) {
	// Outside a dispatcher run, SetOutput does nothing: Run still works.
	if err := Exec([]string{"true"}, Options{}).Run(context.Background(), fire); err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := Exec([]string{"false"}, Options{}).Run(context.Background(), fire); err == nil || err.Error() != "exit status 1" {
		t.Fatalf("error %v, want exit status 1", err)
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	for _, limit := range []int{1, 7, 64, 1000} {
		tl := newTail(limit)
		var all []byte
		r := rand.New(rand.NewPCG(1, uint64(limit)))
		for range 500 {
			p := make([]byte, r.IntN(3*limit))
			for i := range p {
				p[i] = 'a' + byte(r.IntN(26))
			}
			all = append(all, p...)
			if n, err := tl.Write(p); n != len(p) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			want := all[max(len(all)-limit, 0):]
			if got := tl.String(); got != string(want) {
				t.Fatalf("limit %d after %d bytes: got %q, want %q", limit, len(all), got, want)
			}
			if cap(tl.buf) > 4*limit+8 {
				t.Fatalf("limit %d: buffer grew to %d", limit, cap(tl.buf))
			}
		}
	}
}

func TestTailConcurrentWrites(t *testing.T) {
	tl := newTail(100)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range 1000 {
				tl.Write(bytes.Repeat([]byte{'a' + byte(w)}, 7))
			}
		})
	}
	wg.Wait()
	if got := tl.String(); len(got) != 100 {
		t.Fatalf("kept %d bytes, want 100", len(got))
	}
}

func TestTailCutsOnRuneBoundary(t *testing.T) {
	tl := newTail(5)
	tl.Write([]byte("aé€x")) // a, é (2 bytes), € (3 bytes), x: the last 5 bytes start inside é
	if got := tl.String(); got != "€x" {
		t.Fatalf("got %q, want %q", got, "€x")
	}
}

func TestLastLine(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"\n \n":                  "",
		"one\ntwo\n":             "two",
		"one\n  two  \n\n  \n":   "two",
		"progress 10%\rdone\r\n": "done",
	} {
		if got := lastLine(in); got != want {
			t.Errorf("lastLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// --- HTTP

type seen struct {
	method string
	path   string
	header http.Header
	host   string
	body   string
}

// recordingServer answers every request with status and body and sends
// what it saw on the returned channel.
func recordingServer(t *testing.T, status int, body string) (*httptest.Server, <-chan seen) {
	t.Helper()
	ch := make(chan seen, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- seen{method: r.Method, path: r.URL.RequestURI(), header: r.Header.Clone(), host: r.Host, body: string(b)}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func httpRun(ctx context.Context, req Request, opts Options) (string, error) {
	return HTTP(req, opts).(*httpHandler).run(ctx, fire)
}

func TestHTTPRequestAsConfigured(t *testing.T) {
	srv, got := recordingServer(t, http.StatusOK, "report queued\n")
	headers := map[string]string{"Authorization": "Bearer s3cret", "content-type": "application/json", "Host": "reports.internal"}
	out, err := httpRun(context.Background(), Request{
		Method: http.MethodPut, URL: srv.URL + "/hooks/report?week=47", Headers: headers, Body: `{"full":true}`,
	}, Options{Node: "w-7"})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if out != "report queued\n" {
		t.Fatalf("output %q", out)
	}
	r := <-got
	if r.method != http.MethodPut || r.path != "/hooks/report?week=47" || r.body != `{"full":true}` || r.host != "reports.internal" {
		t.Fatalf("server saw %s %s host %q body %q", r.method, r.path, r.host, r.body)
	}
	for k, want := range map[string]string{
		"Authorization":          "Bearer s3cret",
		"Content-Type":           "application/json",
		"X-Taskino-Task":         "nightly-report",
		"X-Taskino-Fire-Id":      "f-42",
		"X-Taskino-Scheduled-At": "2026-11-21T10:00:05.000Z",
		"X-Taskino-Attempt":      "2",
		"X-Taskino-Node":         "w-7",
	} {
		if v := r.header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	p, err := url.PathUnescape(r.header.Get("X-Taskino-Payload"))
	if err != nil || p != fire.Payload {
		t.Errorf("X-Taskino-Payload %q decodes to %q (%v), want %q", r.header.Get("X-Taskino-Payload"), p, err, fire.Payload)
	}
	headers["Authorization"] = "changed after HTTP was called"
	if _, err := httpRun(context.Background(), Request{URL: srv.URL}, Options{}); err != nil {
		t.Fatal(err)
	}
	<-got
}

func TestHTTPDefaultMethodAndNoPayloadHeader(t *testing.T) {
	srv, got := recordingServer(t, http.StatusNoContent, "")
	f := fire
	f.Payload = ""
	for _, tc := range []struct{ body, method string }{{"", http.MethodGet}, {"x=1", http.MethodPost}} {
		if err := HTTP(Request{URL: srv.URL, Body: tc.body}, Options{}).Run(context.Background(), f); err != nil {
			t.Fatalf("run: %v", err)
		}
		r := <-got
		if r.method != tc.method || r.body != tc.body {
			t.Errorf("body %q: server saw %s with body %q, want %s", tc.body, r.method, r.body, tc.method)
		}
		if _, ok := r.header["X-Taskino-Payload"]; ok {
			t.Errorf("X-Taskino-Payload sent for an empty payload")
		}
	}
}

func TestHTTPErrorStatus(t *testing.T) {
	srv, _ := recordingServer(t, http.StatusInternalServerError, "{\"error\":\n  \"database   unreachable\"}\n")
	out, err := httpRun(context.Background(), Request{URL: srv.URL}, Options{})
	if err == nil {
		t.Fatal("a 500 succeeded")
	}
	if got, want := err.Error(), `HTTP 500 Internal Server Error: {"error": "database unreachable"}`; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
	if !strings.Contains(out, "database   unreachable") {
		t.Fatalf("output %q", out)
	}
}

func TestHTTPOutputTail(t *testing.T) {
	body := strings.Repeat("0123456789", 10000) + "END" // beyond the 64 KiB read
	srv, _ := recordingServer(t, http.StatusOK, body)
	out, err := httpRun(context.Background(), Request{URL: srv.URL}, Options{OutputLimit: 100})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	read := body[:maxBodyRead]
	if want := read[len(read)-100:]; out != want {
		t.Fatalf("output %q, want %q", out, want)
	}
}

func TestHTTPContextCancelAbortsRequest(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := httpRun(ctx, Request{URL: srv.URL}, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want one wrapping context.Canceled", err)
	}
}

func TestHTTPTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + "/gone"
	srv.Close()
	_, err := httpRun(context.Background(), Request{URL: u + "?token=abc"}, Options{})
	// The host, not the path or query (which may hold tokens).
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/…") || strings.Contains(err.Error(), "/gone") || strings.Contains(err.Error(), "abc") {
		t.Fatalf("error %v; want it to name %s/… and not the path or query", err, srv.URL)
	}
}

// An HTTP task's secrets stay out of its errors and off other hosts: the
// password of the URL and a token in its path and query appear in no
// error; on a redirect to another host, Authorization, X-Api-Key and the
// task's secret headers are dropped, the others kept; on a redirect to the
// same host all are kept.
func TestHTTPSecrets(t *testing.T) {
	got := make(chan http.Header, 2)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusTeapot)
	}))
	defer other.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/landed", http.StatusFound)
	}))
	defer first.Close()
	u := strings.Replace(first.URL, "http://", "http://user:hunter2-pw@", 1) + "/hook/T0K3N-path?key=T0K3N-query"
	req := Request{URL: u, Headers: map[string]string{"X-Api-Key": "k-secret", "X-Token": "t-secret", "X-Plain": "plain"}, SecretHeaders: []string{"X-Token"}}
	_, err := httpRun(context.Background(), req, Options{})
	if err == nil {
		t.Fatal("want the teapot's status as an error")
	}
	for _, s := range []string{"hunter2-pw", "T0K3N", "k-secret", "t-secret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q holds the secret %q", err, s)
		}
	}
	h := <-got
	for _, name := range []string{"Authorization", "X-Api-Key", "X-Token"} {
		if h.Get(name) != "" {
			t.Errorf("the other host got %s: %q", name, h.Get(name))
		}
	}
	if h.Get("X-Plain") != "plain" {
		t.Errorf("the other host did not get X-Plain: %v", h)
	}
	// A bad URL (a control character in it) is not retried.
	_, err = httpRun(context.Background(), Request{URL: "http://h/\x7f"}, Options{})
	if !errors.Is(err, dispatcher.SkipRetry) {
		t.Errorf("a request that cannot be built: %v; want it to wrap SkipRetry", err)
	}
	// A fire id with a line break cannot go in a header: not retried.
	_, err = HTTP(Request{URL: other.URL}, Options{}).(*httpHandler).run(context.Background(), events.Fire{ID: "a\r\nX-Evil: 1", Task: "t", Attempt: 1})
	if !errors.Is(err, dispatcher.SkipRetry) {
		t.Errorf("a fire id with CR LF: %v; want it to wrap SkipRetry", err)
	}
}

func TestHTTPBadURL(t *testing.T) {
	if _, err := httpRun(context.Background(), Request{URL: "://nope"}, Options{}); err == nil {
		t.Fatal("a bad URL was requested")
	}
}

// TestChildEnv: a command gets the worker's environment without any
// TASKINO_* variable and those redacted (by name or prefix), plus the
// fire's values.
func TestChildEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "TASKINO_REDIS=redis://:pw@h/0", "TASKINO_NAMESPACE=x", "AWS_SECRET=s", "AWS_REGION=eu", "DB_PASSWORD=p", "HOME=/root"}
	got := childEnv(environ, []string{"AWS_*", "DB_PASSWORD"}, []string{"TASKINO_TASK=t"})
	want := []string{"PATH=/bin", "HOME=/root", "TASKINO_TASK=t"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("childEnv = %v, want %v", got, want)
	}
}
