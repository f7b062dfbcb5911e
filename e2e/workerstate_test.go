package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
)

// awaitStderr waits until a line of p's stderr satisfies match, polling
// what the process wrote so far, and returns it; it fails the test after
// limit.
func (p *proc) awaitStderr(t *testing.T, limit time.Duration, what string, match func(line string) bool) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, line := range strings.Split(p.stderr(), "\n") {
			if match(line) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no stderr line %s after %s; stderr:\n%s", p.name, what, limit, p.stderr())
		}
		time.Sleep(20 * time.Millisecond) // a poll: the condition decides
	}
}

// awaitFile waits until the lines of the file at path satisfy cond, and
// returns them.
func awaitFile(t *testing.T, path string, limit time.Duration, what string, cond func(lines []string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		data, _ := os.ReadFile(path)
		lines := strings.Fields(string(data))
		if cond(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines, want %s: %v", path, len(lines), what, lines)
		}
		time.Sleep(20 * time.Millisecond) // a poll: the condition decides
	}
}

// awaitCLI runs the CLI until its stdout satisfies cond, and returns it.
func awaitCLI(t *testing.T, limit time.Duration, what string, cond func(out string) bool, bin string, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		out := mustCLI(t, bin, args...)
		if cond(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("taskino %v printed, after %s:\n%s\nwant %s", args, limit, out, what)
		}
		time.Sleep(50 * time.Millisecond) // a poll: the condition decides
	}
}

// workerRow is the line of node in `taskino workers` output, split into
// its columns' words.
func workerRow(out, node string) []string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == node {
			return f
		}
	}
	return nil
}

// The worker binary's state and SIGHUP, as an operator sees them: `taskino
// workers` lists it live with its file's version; SIGHUP with a changed
// command makes the following fires run the new one, with a broken file it
// logs one line and the new command keeps running; `taskino apply` of
// a newer version with a task no worker runs warns, naming it; the worker
// then warns that it is stale, naming both versions and the tasks that
// differ, and is listed stale; stopped, it leaves the list.
func TestWorkerBinaryStateAndSIGHUP(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs.log")
	file := func(version int, marker string, extra string) string {
		return fmt.Sprintf(`version: %d
tasks:
  - name: tick
    every: 200ms
    exec: [sh, -c, 'echo %s >> %s']
%s`, version, marker, runs, extra)
	}
	tasks := writeFile(t, dir, "tasks.yaml", file(1, "old", ""))
	common := redisFlags(b)
	worker := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks, "--visibility", "1s"}, common...)...)
	planner := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	worker.awaitStderr(t, 30*time.Second, "saying it runs", func(l string) bool { return strings.Contains(l, "worker running") })
	awaitFile(t, runs, 30*time.Second, "an old run", func(ls []string) bool { return slices.Contains(ls, "old") })

	out := awaitCLI(t, 30*time.Second, "w1 live at version 1", func(out string) bool {
		r := workerRow(out, "w1")
		return len(r) > 5 && r[1] == "yes" && slices.Contains(r, "1")
	}, cli, append([]string{"workers"}, common...)...)
	if !strings.Contains(out, "1 workers (1 live)") || !strings.Contains(out, "1: tick") {
		t.Errorf("taskino workers printed\n%s\nwant w1 live, running tick", out)
	}
	var reg struct {
		Version int64
		Workers []struct {
			Node         string
			Live         bool
			Tasks        []string
			VisibilityMs int64 `json:"visibility_ms"`
		}
	}
	js := mustCLI(t, cli, append([]string{"workers", "--json"}, common...)...)
	if err := json.Unmarshal([]byte(js), &reg); err != nil || reg.Version != 1 || len(reg.Workers) != 1 || reg.Workers[0].Node != "w1" ||
		!reg.Workers[0].Live || !slices.Equal(reg.Workers[0].Tasks, []string{"tick"}) || reg.Workers[0].VisibilityMs != 1000 {
		t.Errorf("taskino workers --json printed %s (%v); want version 1, w1 live with tick and a 1s visibility", js, err)
	}

	// SIGHUP with a new command (and version): the fires after it run it.
	writeFile(t, dir, "tasks.yaml", file(2, "new", ""))
	worker.signal(t, syscall.SIGHUP)
	worker.awaitStderr(t, 30*time.Second, "of the reload", func(l string) bool { return strings.Contains(l, "tasks file reloaded") })
	lines := awaitFile(t, runs, 30*time.Second, "3 new runs", func(ls []string) bool { return count(ls, "new") >= 3 })
	// A run started before the swap may write after the first new one;
	// no later one runs the old command.
	if first := slices.Index(lines, "new"); count(lines[first:], "old") > 1 {
		t.Errorf("old runs after the new command ran: %v", lines)
	}

	// SIGHUP with a broken file: one line logged, the new command goes on.
	writeFile(t, dir, "tasks.yaml", "version: 3\ntasks: [\n")
	worker.signal(t, syscall.SIGHUP)
	line := worker.awaitStderr(t, 30*time.Second, "refusing the broken file", func(l string) bool { return strings.Contains(l, "not reloaded") })
	var logged map[string]any
	if err := json.Unmarshal([]byte(line), &logged); err != nil || !strings.Contains(fmt.Sprint(logged["error"]), "tasks.yaml") {
		t.Errorf("refusal logged as %q (%v): want a JSON line whose error names the file", line, err)
	}
	n := count(awaitFile(t, runs, time.Minute, "", func([]string) bool { return true }), "new")
	awaitFile(t, runs, 30*time.Second, "new runs after the broken file", func(ls []string) bool { return count(ls, "new") >= n+3 })

	// A newer version applied elsewhere, with a task no worker runs and
	// tick changed: apply warns of orphan alone; the worker is stale.
	v3 := writeFile(t, dir, "v3.yaml", file(3, "new", "    payload: changed\n  - name: orphan\n    every: 1h\n"))
	stdout, stderr, code := runCLI(t, cli, append([]string{"apply", v3}, common...)...)
	if code != 0 || !strings.Contains(stderr, "no live worker advertises task orphan") || strings.Contains(stderr, "task tick") {
		t.Errorf("apply of v3: exit %d, stdout %q, stderr %q; want exit 0 and a warning for orphan alone", code, stdout, stderr)
	}
	line = worker.awaitStderr(t, 30*time.Second, "saying it is stale", func(l string) bool { return strings.Contains(l, "stale") })
	if err := json.Unmarshal([]byte(line), &logged); err != nil || logged["version"] != 2.0 || logged["stored_version"] != 3.0 ||
		fmt.Sprint(logged["differing_tasks"]) != "[orphan tick]" {
		t.Errorf("stale warning %q; want version 2, stored_version 3, differing_tasks orphan and tick", line)
	}
	awaitCLI(t, 30*time.Second, "w1 stale", func(out string) bool {
		r := workerRow(out, "w1")
		return len(r) > 5 && r[1] == "yes" && slices.Contains(r, "(stale)")
	}, cli, append([]string{"workers"}, common...)...)

	worker.stop(t, syscall.SIGTERM)
	if out := mustCLI(t, cli, append([]string{"workers"}, common...)...); !strings.Contains(out, "no workers") {
		t.Errorf("taskino workers after w1 stopped:\n%s\nwant none", out)
	}
	planner.stop(t, syscall.SIGTERM)
}

func count(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// A forged entry in the namespace's visibility set (a huge timeout, one
// dated in the future) does not hold off the reclaim of a dead worker's
// fire: of two worker binaries with a 1s visibility timeout, the one
// running a fire is killed (SIGKILL) and the entries forged; the other
// starts the fire again well before the forged timeouts (50 minutes and
// more) would let it. `taskino workers` shows the killed one not live.
func TestForgedVisibilityDoesNotDelayReclaim(t *testing.T) {
	b := setup(t)
	cli, workerBin := buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-worker")
	dir := t.TempDir()
	tasks := writeFile(t, dir, "tasks.yaml", `version: 1
tasks:
  - name: slow
    once: 2099-01-01T00:00:00Z
    exec: [sleep, "20"]
`)
	common := redisFlags(b)
	procs := map[string]*proc{}
	for _, node := range []string{"w1", "w2"} {
		procs[node] = startProc(t, node, workerBin, append([]string{"--node", node, "--tasks", tasks, "--visibility", "1s", "--grace", "200ms"}, common...)...)
	}
	awaitCLI(t, 30*time.Second, "both workers live", func(out string) bool { return strings.Contains(out, "2 workers (2 live)") },
		cli, append([]string{"workers"}, common...)...)
	mustCLI(t, cli, append([]string{"trigger", "slow"}, common...)...)
	isStart := func(e events.Event) bool { return e.Type == events.TypeStarted && e.Task == "slow" }
	all := awaitEvent(t, b, 30*time.Second, events.TypeStarted, isStart)
	started := all[slices.IndexFunc(all, isStart)]
	victim, other := started.Worker, "w1"
	if victim == "w1" {
		other = "w2"
	}
	p := procs[victim]
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for range p.lines {
	}
	_ = p.cmd.Wait()

	now, err := b.rdb.Time(b.ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	forged := []redis.Z{
		{Score: float64(now.UnixMilli()), Member: (1000 * time.Hour).Milliseconds()},
		{Score: float64(now.Add(time.Hour).UnixMilli()), Member: (50 * time.Minute).Milliseconds()},
	}
	if err := b.rdb.ZAdd(b.ctx, b.st.Keys().Visibility(), forged...).Err(); err != nil {
		t.Fatal(err)
	}
	// 30s: the forged 50 minutes would hold the reclaim for that long.
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool {
		return e.Fire == started.Fire && e.Worker == other
	})
	awaitCLI(t, 30*time.Second, victim+" not live, "+other+" live", func(out string) bool {
		v, o := workerRow(out, victim), workerRow(out, other)
		return len(v) > 1 && v[1] == "no" && len(o) > 1 && o[1] == "yes"
	}, cli, append([]string{"workers"}, common...)...)
	procs[other].stop(t, syscall.SIGTERM)
}
