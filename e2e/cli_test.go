package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// proc is a binary running as a child process, its stdout read line by
// line and its stderr kept.
type proc struct {
	name  string
	cmd   *exec.Cmd
	lines chan string // stdout lines; closed at EOF
	mu    sync.Mutex
	err   bytes.Buffer
	out   []string
}

// startProc starts bin with args; the test fails if it is still running
// at the end of the test (stop was not called).
func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, bin, nil, args...)
}

// startProcEnv is startProc with env (KEY=value) added to the environment.
func startProcEnv(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), lines: make(chan string, 100_000)}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.err}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// stop sends sig and checks the process exits 0.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.signal(t, sig)
	p.exited(t, sig)
}

// signal sends sig (stop's first half).
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal: %v", p.name, err)
	}
}

// exited waits for the process to exit after sig and checks it exited 0
// (stop's second half).
func (p *proc) exited(t *testing.T, sig syscall.Signal) {
	t.Helper()
	for range p.lines { // drain stdout to EOF, so Wait can finish
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("%s exited with %v after %s, want 0; stderr:\n%s", p.name, err, sig, p.stderr())
	}
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err.String()
}

// stdout is every stdout line read so far.
func (p *proc) stdout() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.out...)
}

// awaitLine waits until a stdout line for which match holds, failing the
// test after limit or at EOF.
func (p *proc) awaitLine(t *testing.T, limit time.Duration, match func(line string) bool) string {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s: stdout ended before the line awaited; stderr:\n%s", p.name, p.stderr())
			}
			if match(line) {
				return line
			}
		case <-deadline:
			t.Fatalf("%s: no such stdout line after %s; stderr:\n%s", p.name, limit, p.stderr())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// runCLI runs the taskino CLI to its end and returns its stdout, stderr
// and exit code.
func runCLI(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIEnv(t, bin, nil, args...)
}

// runCLIEnv is runCLI with env (KEY=value) added to the environment.
func runCLIEnv(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, errOut, code := runCLI(t, bin, args...)
	if code != 0 {
		t.Fatalf("taskino %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// redisFlags are the flags that put a binary on the bundle's Redis and
// the tests' namespace.
func redisFlags(b testBundle) []string {
	return []string{"--redis", "redis://" + b.srv.Addr + "/0", "--namespace", ns}
}

// buildBinaries builds the CLI, the planner and the worker.
func buildBinaries(t *testing.T) (cli, planner, worker string) {
	t.Helper()
	return buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-planner"), buildBinary(t, "cmd/taskino-worker")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// run is one line a test task wrote: what its environment said.
type run struct{ task, fire, scheduled, attempt, payload string }

func readRuns(t *testing.T, path string) []run {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []run
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 5 {
			t.Fatalf("runs file line %q: want 5 fields", line)
		}
		out = append(out, run{f[0], f[1], f[2], f[3], f[4]})
	}
	return out
}

// The whole product as a user runs it: a tasks file applied with the CLI,
// 2 planners and 2 workers as processes, exec tasks that run once per slot
// with the right environment, a task run by `taskino trigger` and by a raw
// XADD, `taskino tail --json` showing the completions, /metrics and
// /healthz, and SIGTERM making every process exit 0.
func TestBinariesEndToEnd(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	runsFile := filepath.Join(dir, "runs.log")
	// Each run appends one line (shorter than PIPE_BUF, so appends from
	// concurrent runs do not interleave).
	record := fmt.Sprintf(`[sh, -c, 'printf "%%s|%%s|%%s|%%s|%%s\n" "$TASKINO_TASK" "$TASKINO_FIRE_ID" "$TASKINO_SCHEDULED_AT" "$TASKINO_ATTEMPT" "$TASKINO_PAYLOAD" >> %s; echo ran $TASKINO_FIRE_ID']`, runsFile)
	tasks := writeFile(t, dir, "tasks.yaml", fmt.Sprintf(`version: 1
tasks:
  - name: stamp
    every: 250ms
    payload: "from the file"
    exec: %s
  - name: by-hand
    once: 2099-01-01T00:00:00Z
    exec: %s
`, record, record))
	redisURL := "redis://" + b.srv.Addr + "/0"
	common := []string{"--redis", redisURL, "--namespace", ns}

	out := mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	if !strings.Contains(out, "applied version 1") || !strings.Contains(out, "+ stamp") || !strings.Contains(out, "+ by-hand") {
		t.Errorf("apply printed %q, want the version and the added tasks", out)
	}
	tail := startProc(t, "tail", cli, append([]string{"tail", "--json"}, common...)...)
	metricsAddr := freeAddr(t)
	procs := []*proc{
		startProc(t, "planner-1", plannerBin, append([]string{"--node", "p1"}, common...)...),
		startProc(t, "planner-2", plannerBin, append([]string{"--node", "p2"}, common...)...),
		startProc(t, "worker-1", workerBin, append([]string{"--node", "w1", "--tasks", tasks, "--http", metricsAddr}, common...)...),
		startProc(t, "worker-2", workerBin, append([]string{"--node", "w2", "--tasks", tasks, "--concurrency", "4"}, common...)...),
	}
	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		n, by := 0, map[string]bool{}
		for _, e := range ofType(all, events.TypeCompleted) {
			if e.Task == "stamp" {
				n++
				by[e.Worker] = true
			}
		}
		return n >= 12 && by["w1"] && by["w2"]
	})

	triggered := mustCLI(t, cli, append([]string{"trigger", "by-hand", "--payload", "from the CLI"}, common...)...)
	if !strings.HasPrefix(triggered, "triggered by-hand: entry ") {
		t.Errorf("trigger printed %q", triggered)
	}
	rawID, err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Fires("default"), Values: []any{"task", "by-hand", "payload", "from XADD"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	// tail --json shows both manual runs' completions.
	manual := map[string]bool{}
	tail.awaitLine(t, 60*time.Second, func(line string) bool {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("tail --json line %q is not JSON: %v", line, err)
		}
		if e["type"] == "completed" && e["task"] == "by-hand" {
			manual[e["fire"].(string)] = true
			if out, _ := e["output"].(string); !strings.HasPrefix(out, "ran ") {
				t.Errorf("completed event %v lacks the run's output", e)
			}
			if _, ok := e["attempt"].(float64); !ok {
				t.Errorf("completed event %v: attempt is not a number", e)
			}
		}
		return len(manual) == 2
	})
	if !manual["m-"+rawID] {
		t.Errorf("tail showed completions of %v, want the raw XADD's fire m-%s among them", manual, rawID)
	}

	// Metrics and health of the worker with --http.
	body := httpGet(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{`taskino_runs_total{status="completed",task="stamp"}`, `taskino_stream_lag{stream="taskino:{e2e}:fires:default"}`, "taskino_fire_lateness_seconds_bucket"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if h := httpGet(t, "http://"+metricsAddr+"/healthz"); strings.TrimSpace(h) != "ok" {
		t.Errorf("/healthz said %q", h)
	}

	for _, p := range procs {
		p.stop(t, syscall.SIGTERM)
	}
	tail.stop(t, syscall.SIGTERM)

	// Once per slot, with the right environment.
	all := mustRange(t, b, "-")
	completed := map[string]int{}
	for _, e := range ofType(all, events.TypeCompleted) {
		completed[e.Fire]++
	}
	seen := map[string]bool{}
	runs := readRuns(t, runsFile)
	for _, r := range runs {
		if seen[r.fire] {
			t.Errorf("fire %s ran twice", r.fire)
		}
		seen[r.fire] = true
		if r.attempt != "1" {
			t.Errorf("run %+v: TASKINO_ATTEMPT %q, want 1", r, r.attempt)
		}
		switch r.task {
		case "stamp":
			at, err := time.Parse("2006-01-02T15:04:05.000Z07:00", r.scheduled)
			if err != nil || !strings.HasSuffix(r.scheduled, "Z") {
				t.Errorf("run %+v: TASKINO_SCHEDULED_AT %q is not RFC 3339 UTC with milliseconds", r, r.scheduled)
			} else if r.fire != events.FireID("stamp", at) {
				t.Errorf("run %+v: fire id and scheduled time disagree", r)
			}
			if at.UnixMilli()%250 != 0 {
				t.Errorf("run %+v: scheduled at %s, not a 250ms slot", r, r.scheduled)
			}
			if r.payload != "from the file" {
				t.Errorf("run %+v: payload %q, want the file's", r, r.payload)
			}
		case "by-hand":
			if r.payload != "from the CLI" && r.payload != "from XADD" {
				t.Errorf("run %+v: payload %q, want the trigger's", r, r.payload)
			}
		default:
			t.Errorf("run of unknown task %+v", r)
		}
	}
	for fire, n := range completed {
		if n != 1 || !seen[fire] {
			t.Errorf("fire %s: %d completed events, ran %v; want one of each", fire, n, seen[fire])
		}
	}
	if len(runs) != len(completed) {
		t.Errorf("%d runs, %d completed fires, want them equal", len(runs), len(completed))
	}
	byWorker := map[string]int{}
	for _, e := range ofType(all, events.TypeCompleted) {
		byWorker[e.Worker]++
	}
	for _, w := range []string{"w1", "w2"} {
		if byWorker[w] == 0 {
			t.Errorf("worker %s ran nothing (runs by worker: %v)", w, byWorker)
		}
	}
	down := map[string]bool{}
	for _, e := range ofType(all, events.TypeNodeDown) {
		down[e.Worker] = true
	}
	for _, n := range []string{"p1", "p2", "w1", "w2"} {
		if !down[n] {
			t.Errorf("%s announced no node_down: not a clean stop", n)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}

// Bad input to every binary: a one-line error naming the problem, a
// non-zero exit, no stack trace, and never the URL's password.
func TestBinariesBadInput(t *testing.T) {
	b := setup(t)
	cli, workerBin, plannerBin := buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-worker"), buildBinary(t, "cmd/taskino-planner")
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "version: 1\ntasks:\n  - name: known\n    every: 1h\n    exec: [\"true\"]\n")
	bad := writeFile(t, dir, "bad.yaml", "version: 1\ntasks:\n  - name: ok\n    every: 1m\n  - name: broken\n    every: five\n")
	up := []string{"--redis", "redis://" + b.srv.Addr + "/0", "--namespace", ns}
	mustCLI(t, cli, append([]string{"apply", good}, up...)...)

	for _, c := range []struct {
		bin  string
		args []string
		want []string // all in the one line
		code int
	}{
		{cli, append([]string{"apply", bad}, up...), []string{"bad.yaml:6:", `task "broken"`, "every"}, 1},
		{workerBin, append([]string{"--tasks", bad}, up...), []string{"bad.yaml:6:", `task "broken"`, "every"}, 1},
		{plannerBin, append([]string{"--tasks", bad}, up...), []string{"bad.yaml:6:", `task "broken"`}, 1},
		{cli, append([]string{"apply", filepath.Join(dir, "missing.yaml")}, up...), []string{"missing.yaml", "no such file"}, 1},
		{cli, append([]string{"trigger", "nope"}, up...), []string{`unknown task "nope"`, "known"}, 1},
		{cli, append([]string{"pause", "nope"}, up...), []string{`unknown task "nope"`}, 1},
		{cli, append([]string{"resume", "known"}, up...), []string{"known is not paused"}, 1},
		{cli, append([]string{"dead", "replay", "1-1"}, up...), []string{`no dead letter "1-1"`}, 1},
		{cli, []string{"ls", "--redis", "redis://127.0.0.1:1/0"}, []string{"cannot reach Redis at 127.0.0.1:1"}, 1},
		{workerBin, []string{"--tasks", good, "--redis", "redis://127.0.0.1:1/0"}, []string{"cannot reach Redis at 127.0.0.1:1"}, 1},
		{cli, []string{"ls", "--redis", "redis://user:sekret@127.0.0.1:1/0"}, []string{"cannot reach Redis"}, 1},
		{cli, []string{"ls", "--redis", "ftp://user:sekret@example"}, []string{"--redis", `unknown scheme "ftp"`}, 1},
		{workerBin, []string{"--tasks", good, "--redis", "redis+sentinel://h:1"}, []string{"--redis", "master"}, 1},
		{cli, []string{"frobnicate"}, []string{`unknown command "frobnicate"`}, 2},
		{cli, []string{"trigger"}, []string{"trigger: want one task name"}, 2},
		{cli, []string{"tail", "--since", "yesterday"}, []string{`--since "yesterday"`}, 2},
		{cli, []string{"tail", "--type", "exploded"}, []string{`--type "exploded"`}, 2},
		{workerBin, []string{"--concurrency", "0", "--tasks", good}, []string{"--concurrency 0"}, 2},
		{workerBin, []string{"--visibility", "1000h", "--tasks", good}, []string{"--visibility 1000h0m0s: want a duration from 300ms to 1h0m0s"}, 2},
		{workerBin, []string{"--early-limit", "0", "--tasks", good}, []string{"--early-limit 0", "1 or more"}, 2},
		{plannerBin, []string{"--events-max-len", "0"}, []string{"--events-max-len 0", "1 or more"}, 2},
		{cli, []string{"dev", "--events-max-len", "0"}, []string{"--events-max-len 0", "1 or more"}, 2},
		{workerBin, []string{"--history-len", "0", "--tasks", good}, []string{"--history-len 0", "1 or more"}, 2},
		{cli, append([]string{"history", "nope"}, up...), []string{`unknown task "nope"`, "known"}, 1},
		{cli, append([]string{"explain", "known", "--at", "tuesday"}, up...), []string{`--at: time "tuesday"`, "RFC 3339"}, 2},
		{cli, append([]string{"history", "known", "--limit", "-1"}, up...), []string{"--limit -1"}, 2},
		{workerBin, []string{"--events-max-age", "10s", "--tasks", good}, []string{"--events-max-age 10s", "1m or more"}, 2},
		{workerBin, up, []string{"--tasks FILE is required"}, 2},
		{workerBin, []string{"--grace", "abc", "--tasks", good}, []string{`invalid value "abc" for flag -grace`}, 2},
		{plannerBin, []string{"--bogus"}, []string{"-bogus"}, 2},
	} {
		stdout, stderr, code := runCLI(t, c.bin, c.args...)
		name := filepath.Base(c.bin) + " " + strings.Join(c.args, " ")
		if code != c.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", name, code, c.code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(lines) != 1 || stdout != "" {
			t.Errorf("%s: stderr %q, stdout %q: want one line on stderr and nothing on stdout", name, stderr, stdout)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(lines[0], w) {
				t.Errorf("%s: %q does not name %q", name, lines[0], w)
			}
		}
		if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "sekret") {
			t.Errorf("%s: %q holds a stack trace or the password", name, stderr)
		}
	}
}

// README's dev command shows events within seconds: the web console's
// address first (serving the example's tasks), an embedded Redis, the
// example tasks, completions on stdout, and a clean exit 0 on SIGINT.
func TestDevShowsEvents(t *testing.T) {
	t.Parallel()
	cli := buildBinary(t, "cmd/taskino")
	dev := startProc(t, "taskino dev", cli, "dev")
	dev.awaitLine(t, 60*time.Second, func(line string) bool { return strings.Contains(line, " completed ") })
	first, _, _ := strings.Cut(dev.stderr(), "\n")
	consoleURL, ok := strings.CutPrefix(first, "taskino dev: web console at ")
	if !ok {
		t.Fatalf("dev's first line %q, want the web console's address", first)
	}
	resp, err := http.Get(consoleURL + "n/default/tasks")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "hello") {
		t.Errorf("the console's tasks page from dev: %d, want 200 listing the example's hello:\n%s", resp.StatusCode, page)
	}
	dev.awaitLine(t, 60*time.Second, func(line string) bool {
		return strings.Contains(line, " failed ") || strings.Contains(line, " retried ")
	})
	dev.stop(t, syscall.SIGINT)
	if err := dev.stderr(); !strings.Contains(err, "embedded in-memory Redis") || !strings.Contains(err, "taskino dev: stopped") {
		t.Errorf("dev stderr %q: want the embedded Redis announced and the stop", err)
	}
	out := dev.stdout()
	if last := out[len(out)-1]; !strings.Contains(last, "node_down") {
		t.Errorf("dev's last line %q, want the worker's node_down (the tail drains before exit)", last)
	}
}

// The operator commands against running binaries: ls, last-run, pause and
// resume, dead list and replay.
func TestCLIOperatorCommands(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "healthy")
	tasks := writeFile(t, dir, "tasks.yaml", fmt.Sprintf(`version: 4
tasks:
  - name: tick
    every: 200ms
    exec: ["true"]
  - name: gated
    once: 2099-01-01T00:00:00Z
    attempts: 1
    exec: [sh, -c, 'test -e %s || { echo gate closed >&2; exit 7; }']
`, gate))
	up := []string{"--redis", "redis://" + b.srv.Addr + "/0", "--namespace", ns}
	pl := startProc(t, "planner", plannerBin, append([]string{"--tasks", tasks, "--node", "p"}, up...)...)
	wk := startProc(t, "worker", workerBin, append([]string{"--tasks", tasks, "--node", "w"}, up...)...)
	awaitEvent(t, b, 60*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Task == "tick" })

	ls := mustCLI(t, cli, append([]string{"ls"}, up...)...)
	for _, w := range []string{"version 4, 2 tasks", "TASK", "tick", "every 200ms", "idle", "gated", "never"} {
		if !strings.Contains(ls, w) {
			t.Errorf("ls output lacks %q:\n%s", w, ls)
		}
	}

	out := mustCLI(t, cli, append([]string{"pause", "tick"}, up...)...)
	if !strings.HasPrefix(out, "paused tick") {
		t.Errorf("pause printed %q", out)
	}
	if ls := mustCLI(t, cli, append([]string{"ls"}, up...)...); !strings.Contains(ls, "paused since") {
		t.Errorf("ls after pause does not say paused:\n%s", ls)
	}
	if out := mustCLI(t, cli, append([]string{"resume", "tick"}, up...)...); !strings.HasPrefix(out, "resumed tick: planned again from now on") {
		t.Errorf("resume printed %q", out)
	}
	all := awaitEvent(t, b, 60*time.Second, events.TypeResumed, func(e events.Event) bool { return e.Task == "tick" })
	resumedAt := ofType(all, events.TypeResumed)[0].ID
	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		for _, e := range all {
			if e.Type == events.TypeCompleted && e.Task == "tick" && e.ID > resumedAt {
				return true
			}
		}
		return false
	})

	mustCLI(t, cli, append([]string{"trigger", "gated", "--id", "g-1"}, up...)...)
	awaitEvent(t, b, 60*time.Second, events.TypeDead, func(e events.Event) bool { return e.Fire == "g-1" })
	dead := mustCLI(t, cli, append([]string{"dead"}, up...)...)
	if !strings.Contains(dead, "gated") || !strings.Contains(dead, "g-1") || !strings.Contains(dead, "exit status 7: gate closed") {
		t.Errorf("dead list lacks the dead fire and its error:\n%s", dead)
	}
	writeFile(t, dir, "healthy", "")
	if out := mustCLI(t, cli, append([]string{"dead", "replay", "--all"}, up...)...); !strings.Contains(out, "1 replayed") {
		t.Errorf("dead replay --all printed %q", out)
	}
	awaitEvent(t, b, 60*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "g-1" })
	if out := mustCLI(t, cli, append([]string{"last-run", "gated"}, up...)...); !strings.Contains(out, "gated") || !strings.Contains(out, "completed") || !strings.Contains(out, "g-1") {
		t.Errorf("last-run gated after the replay:\n%s", out)
	}
	if out := mustCLI(t, cli, append([]string{"dead"}, up...)...); !strings.Contains(out, "no dead letters") {
		t.Errorf("dead after the replay:\n%s", out)
	}

	// A dead letter that cannot go back does not stop the others: it is
	// named, the exit is 1, and dead delete drops it.
	foreign, err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Dead(), Values: []any{
		"reason", "test", "source", "taskino:{elsewhere}:fires:default", "entry", "1-1", "f:task", "gated"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "healthy", "") // still healthy
	mustCLI(t, cli, append([]string{"trigger", "gated", "--id", "g-2"}, up...)...)
	awaitEvent(t, b, 60*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "g-2" })
	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, cli, append([]string{"trigger", "gated", "--id", "g-3"}, up...)...)
	awaitEvent(t, b, 60*time.Second, events.TypeDead, func(e events.Event) bool { return e.Fire == "g-3" })
	writeFile(t, dir, "healthy", "")
	stdout, stderr, code := runCLI(t, cli, append([]string{"dead", "replay", "--all"}, up...)...)
	if code != 1 || !strings.Contains(stdout, "1 replayed") || !strings.Contains(stderr, foreign) || !strings.Contains(stderr, "elsewhere") {
		t.Errorf("dead replay --all with a foreign letter: exit %d, stdout %q, stderr %q; want 1 replayed, the foreign one named, exit 1", code, stdout, stderr)
	}
	awaitEvent(t, b, 60*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "g-3" })
	if out := mustCLI(t, cli, append([]string{"dead", "delete", foreign}, up...)...); !strings.Contains(out, "1 deleted") {
		t.Errorf("dead delete printed %q", out)
	}
	if out := mustCLI(t, cli, append([]string{"dead"}, up...)...); !strings.Contains(out, "no dead letters") {
		t.Errorf("dead after the delete:\n%s", out)
	}
	pl.stop(t, syscall.SIGINT)
	wk.stop(t, syscall.SIGINT)
}

// A SIGTERM while a planner or worker is still starting (here: waiting on
// a Redis that accepts connections and never answers) is a clean stop too:
// exit 0.
func TestBinariesStopWhileStarting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "version: 1\ntasks:\n  - name: known\n    every: 1h\n    exec: [\"true\"]\n")
	// Both at once: each notices the signal only when its connect timeout
	// (5s) ends, and one after the other would wait that twice.
	type starting struct {
		bin      string
		p        *proc
		accepted chan net.Conn
	}
	var all []starting
	for _, bin := range []string{buildBinary(t, "cmd/taskino-planner"), buildBinary(t, "cmd/taskino-worker")} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				accepted <- c
			}
		}()
		p := startProc(t, filepath.Base(bin), bin, "--redis", "redis://"+ln.Addr().String(), "--tasks", good)
		all = append(all, starting{bin, p, accepted})
	}
	for _, s := range all {
		select {
		case c := <-s.accepted:
			defer c.Close()
		case <-time.After(30 * time.Second):
			t.Fatalf("%s never connected", s.bin)
		}
	}
	for _, s := range all {
		s.p.signal(t, syscall.SIGTERM)
	}
	for _, s := range all {
		s.p.exited(t, syscall.SIGTERM)
	}
}

// A task set whose apply script outlasts the client's read timeout is
// still applied and reported: the apply waits for its reply. Before, the
// CLI said "i/o timeout" while Redis applied the set.
func TestCLIApplyOutlastingTheReadTimeout(t *testing.T) {
	b := setup(t)
	cli := buildBinary(t, "cmd/taskino")
	var sb strings.Builder
	sb.WriteString("version: 1\ntasks:\n")
	const n = 30_000
	for i := range n {
		fmt.Fprintf(&sb, "  - {name: t%05d, every: 1h, exec: [\"true\"]}\n", i)
	}
	file := writeFile(t, t.TempDir(), "big.yaml", sb.String())
	url := "redis://" + b.srv.Addr + "/0?read_timeout=20ms"
	out, errOut, code := runCLI(t, cli, "--redis", url, "--namespace", ns, "apply", file)
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("applied version 1 (%d tasks)", n)) {
		t.Fatalf("apply of %d tasks with a 20ms read timeout: exit %d, stdout %.200q, stderr %q; want it applied and reported", n, code, out, errOut)
	}
	// The script did outlast the timeout, or this test proves nothing.
	if slow, err := b.rdb.SlowLogGet(b.ctx, 10).Result(); err != nil || len(slow) == 0 || slow[0].Duration < 20*time.Millisecond {
		t.Fatalf("slowest call %v (%v): the apply took less than the 20ms read timeout", slow, err)
	}
}

// planner.Apply from Go waits for a long apply too: on a client with a
// 20 ms read timeout, 30,000 tasks (a script of tens of ms at least) are
// applied and reported, not an i/o timeout.
func TestGoApplyOutlastingTheReadTimeout(t *testing.T) {
	b := setup(t)
	rdb := redis.NewClient(&redis.Options{Addr: b.srv.Addr, ReadTimeout: 20 * time.Millisecond})
	defer rdb.Close()
	st, err := store.New(rdb, ns, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30_000
	specs := make([]events.Spec, n)
	for i := range specs {
		specs[i] = events.Spec{Name: fmt.Sprintf("t%05d", i), Trigger: events.Every(time.Hour)}
	}
	res, err := planner.Apply(b.ctx, st, 1, specs)
	if err != nil || res.Outcome != store.Applied || len(res.Added) != n {
		t.Fatalf("apply of %d tasks on a client with a 20ms read timeout: %v (outcome %q, %d added); want it applied", n, err, res.Outcome, len(res.Added))
	}
	if slow, err := b.rdb.SlowLogGet(b.ctx, 10).Result(); err != nil || len(slow) == 0 || slow[0].Duration < 20*time.Millisecond {
		t.Fatalf("slowest call %v (%v): the apply took less than the 20ms read timeout", slow, err)
	}
}

// --events-max-len bounds the events stream: a planner given 100 stores it
// as the namespace's bound and trims a stream of 1,000 old entries to about
// 100 (whole stream nodes: at least 100, far below 1,000). The CLI's commands append
// without trimming, whatever TASKINO_EVENTS_MAX_LEN says, so an admin
// command run without the namespace's setting never cuts its history. An
// invalid TASKINO_EVENTS_MAX_LEN is refused by name.
func TestEventsMaxLenBoundsTheStream(t *testing.T) {
	b := setup(t)
	cli, plannerBin := buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-planner")
	up := []string{"--redis", "redis://" + b.srv.Addr + "/0", "--namespace", ns}
	file := writeFile(t, t.TempDir(), "tasks.yaml", "version: 1\ntasks:\n  - {name: by-hand, every: 1h, exec: [\"true\"]}\n")
	mustCLI(t, cli, append([]string{"apply", file}, up...)...)
	stream := b.st.Keys().Events()
	old := make([]events.Event, 1000)
	for i := range old {
		old[i] = events.Event{Type: events.TypeNodeUp, Worker: fmt.Sprintf("filler-%d", i), Status: "planner"}
	}
	if err := store.WorkerProtocol(b.st).AppendEvents(b.ctx, old); err != nil {
		t.Fatal(err)
	}
	before := b.rdb.XLen(b.ctx, stream).Val()
	if _, errOut, code := runCLIEnv(t, cli, []string{"TASKINO_EVENTS_MAX_LEN=100"}, append([]string{"pause", "by-hand"}, up...)...); code != 0 {
		t.Fatalf("pause: exit %d, stderr %q", code, errOut)
	}
	if n := b.rdb.XLen(b.ctx, stream).Val(); n != before+1 {
		t.Fatalf("events stream %d entries after a CLI pause, %d before: want its event added and nothing trimmed", n, before)
	}
	p := startProc(t, "planner", plannerBin, append([]string{"--events-max-len", "100"}, up...)...)
	awaitEvent(t, b, 30*time.Second, events.TypeNodeUp, func(e events.Event) bool { return !strings.HasPrefix(e.Worker, "filler-") })
	// It stores 100 as the namespace's bound, and trims to it every second.
	deadline := time.Now().Add(30 * time.Second)
	for n := b.rdb.XLen(b.ctx, stream).Val(); n < 100 || n > 300; n = b.rdb.XLen(b.ctx, stream).Val() {
		if time.Now().After(deadline) {
			t.Fatalf("events stream %d entries 30s after a planner with --events-max-len 100 started; want about 100 (100 to 300)", n)
		}
		time.Sleep(50 * time.Millisecond) // a poll: the condition decides
	}
	if st, err := b.st.Settings(b.ctx); err != nil || st.EventsMaxLen != 100 {
		t.Errorf("namespace settings %+v (%v): want events max len 100, stored by the planner", st, err)
	}
	p.stop(t, syscall.SIGTERM)
	_, errOut, code := runCLIEnv(t, cli, []string{"TASKINO_EVENTS_MAX_LEN=lots"}, append([]string{"dev"}, up...)...)
	if code == 0 || !strings.Contains(errOut, `TASKINO_EVENTS_MAX_LEN "lots"`) {
		t.Errorf("TASKINO_EVENTS_MAX_LEN=lots: exit %d, stderr %q; want it refused by name", code, errOut)
	}
}
