package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The JSON forms of ls, history and explain, as far as this test reads them.
type lsTask struct {
	Task        string `json:"task"`
	Status      string `json:"status"`
	Why         string `json:"why"`
	LastOutcome *struct {
		Fire   string `json:"fire"`
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"last_outcome"`
	LastSuccess *struct {
		Fire string `json:"fire"`
	} `json:"last_success"`
	Failures int `json:"consecutive_failures"`
}

type histSlot struct {
	Outcome   string `json:"outcome"`
	Fire      string `json:"fire"`
	Scheduled string `json:"scheduled"`
	Until     string `json:"until"`
	Count     int64  `json:"count"`
	LateMs    *int64 `json:"late_ms"`
	Worker    string `json:"worker"`
	Error     string `json:"error"`
	Reason    string `json:"reason"`
	Policy    string `json:"policy"`
}

type explained struct {
	Slot       string   `json:"slot"`
	Answer     string   `json:"answer"`
	Summary    string   `json:"summary"`
	Facts      []string `json:"facts"`
	DeadLetter string   `json:"dead_letter"`
}

// ranFires reads the lines the test's commands wrote, "fire-id attempt",
// as the set of fire ids of each task that ran.
func ranFires(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		task, _, _ := strings.Cut(f[0], "@")
		out[task] = append(out[task], f[0])
	}
	return out
}

// slotMs is the slot of a fire id task@ms.
func slotMs(fire string) int64 {
	_, ms, _ := strings.Cut(fire, "@")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

func isoMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// Five tasks as an operator meets them, with 2 worker binaries and a
// planner: a steady one, an overlap-skip one whose runs outlast its
// period, a failing one, one paused and resumed by hand, and one whose
// only worker is stopped for 40 s. ls --json, last-run --json, history
// --json and explain --json --at give each one's status, outcome and
// reason, slot by slot, checked against the lines the tasks' commands
// wrote when they ran.
func TestStateHistoryAndExplain(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	ev := filepath.Join(dir, "evidence.log")
	write := fmt.Sprintf(`echo "$TASKINO_FIRE_ID $TASKINO_ATTEMPT" >> %s`, ev)
	tasks := writeFile(t, dir, "tasks.yaml", fmt.Sprintf(`version: 1
tasks:
  - name: steady
    every: 1s
    exec: [sh, -c, '%[1]s']
  - name: overlapper
    every: 1s
    overlap: skip
    exec: [sh, -c, '%[1]s; sleep 2.2']
  - name: failing
    every: 2s
    attempts: 1
    exec: [sh, -c, '%[1]s; echo disk full >&2; exit 3']
  - name: pausable
    every: 1s
    exec: [sh, -c, '%[1]s']
  - name: lonely
    every: 1s
    queue: lonely
    exec: [sh, -c, '%[1]s']
`, write))
	common := redisFlags(b)
	cmd := func(args ...string) string { return mustCLI(t, cli, append(args, common...)...) }
	cmd("apply", tasks)
	w1 := startProc(t, "w1", workerBin, append([]string{"--node", "w1", "--tasks", tasks, "--queue", "default", "--visibility", "2s"}, common...)...)
	w2 := startProc(t, "w2", workerBin, append([]string{"--node", "w2", "--tasks", tasks, "--queue", "lonely", "--visibility", "2s"}, common...)...)
	p1 := startProc(t, "p1", plannerBin, append([]string{"--node", "p1"}, common...)...)
	runs := func(task string, n int) []string {
		t.Helper()
		awaitFile(t, ev, time.Minute, fmt.Sprintf("%d runs of %s", n, task), func([]string) bool { return len(ranFires(t, ev)[task]) >= n })
		return ranFires(t, ev)[task]
	}
	ls := func() map[string]lsTask {
		t.Helper()
		var all []lsTask
		if err := json.Unmarshal([]byte(cmd("ls", "--json")), &all); err != nil {
			t.Fatalf("ls --json: %v", err)
		}
		m := map[string]lsTask{}
		for _, x := range all {
			m[x.Task] = x
		}
		return m
	}
	history := func(task string) []histSlot {
		t.Helper()
		var hs []histSlot
		if err := json.Unmarshal([]byte(cmd("history", task, "--json", "--limit", "0")), &hs); err != nil {
			t.Fatalf("history %s --json: %v", task, err)
		}
		return hs
	}
	explain := func(task, at string) explained {
		t.Helper()
		args := []string{"explain", task, "--json"}
		if at != "" {
			args = append(args, "--at", at)
		}
		var e explained
		if err := json.Unmarshal([]byte(cmd(args...)), &e); err != nil {
			t.Fatalf("explain %s --at %s: %v", task, at, err)
		}
		return e
	}

	// The paused task: paused after 2 runs, resumed 3 s later.
	runs("pausable", 2)
	cmd("pause", "pausable")
	pausedRuns := len(runs("pausable", 0))
	time.Sleep(3 * time.Second) // the pause itself: slots pass while it lasts
	cmd("resume", "pausable")

	// The lonely task's one worker stops for 40 s.
	runs("lonely", 2)
	w2.stop(t, syscall.SIGTERM)
	stopped := time.Now()
	st := awaitCLI(t, 30*time.Second, "lonely stuck", func(out string) bool {
		return strings.Contains(out, `"status": "stuck"`)
	}, cli, append([]string{"ls", "--json"}, common...)...)
	var all []lsTask
	if err := json.Unmarshal([]byte(st), &all); err != nil {
		t.Fatal(err)
	}
	for _, x := range all {
		if x.Task == "lonely" && (x.Status != "stuck" || !strings.Contains(x.Why, `no live worker reads queue "lonely"`)) {
			t.Errorf("ls --json while lonely's worker is stopped: %+v; want stuck, no live worker reads queue lonely", x)
		}
		if x.Task != "lonely" && x.Status == "stuck" {
			t.Errorf("ls --json: %s stuck (%s) while its worker runs", x.Task, x.Why)
		}
	}
	// Stuck shows at once (its fires appended ahead have no reader); the
	// latest slot due waits once one came due after the stop.
	e := explain("lonely", "")
	for deadline := time.Now().Add(10 * time.Second); e.Answer == "ran" && time.Now().Before(deadline); e = explain("lonely", "") {
		time.Sleep(200 * time.Millisecond) // polling a CLI: no event says a slot came due
	}
	if e.Answer != "waiting" || !strings.Contains(e.Summary, `no live worker reads queue "lonely"`) ||
		!slices.ContainsFunc(e.Facts, func(f string) bool { return strings.Contains(f, "fires not yet read") }) {
		t.Errorf("explain lonely while its worker is stopped: %+v; want waiting, no live worker, the queue's backlog", e)
	}
	time.Sleep(time.Until(stopped.Add(40 * time.Second))) // the 40 s the issue asks for
	before := len(ranFires(t, ev)["lonely"])
	w2 = startProc(t, "w2", workerBin, append([]string{"--node", "w2", "--tasks", tasks, "--queue", "lonely", "--visibility", "2s"}, common...)...)
	runs("lonely", before+30)
	runs("failing", 4)
	runs("overlapper", 3)
	runs("steady", 5)
	// workers lists the planner, live, and the fires each worker holds:
	// w1 holds the overlapper's 2.2 s runs, one at a time.
	type registry struct {
		Planners []struct {
			Node string
			Live bool
		}
		Workers []struct {
			Node string
			Held int64
		}
	}
	awaitCLI(t, 30*time.Second, "p1 live and w1 holding a fire", func(out string) bool {
		var reg registry
		if json.Unmarshal([]byte(out), &reg) != nil || len(reg.Planners) != 1 || reg.Planners[0].Node != "p1" || !reg.Planners[0].Live {
			return false
		}
		for _, w := range reg.Workers {
			if w.Node == "w1" && w.Held >= 1 {
				return true
			}
		}
		return false
	}, cli, append([]string{"workers", "--json"}, common...)...)
	state := ls()
	for _, task := range []string{"steady", "pausable", "lonely"} {
		if s := state[task].Status; s != "idle" && s != "running" {
			t.Errorf("ls --json with its worker up: %s is %s (%s); want idle or running", task, s, state[task].Why)
		}
	}
	w1.stop(t, syscall.SIGTERM)
	w2.stop(t, syscall.SIGTERM)
	p1.stop(t, syscall.SIGTERM)
	var reg registry
	if err := json.Unmarshal([]byte(cmd("workers", "--json")), &reg); err != nil || len(reg.Planners) != 0 {
		t.Errorf("workers --json after the planner stopped: %+v (%v); want no planner (a clean stop leaves the registry)", reg, err)
	}
	got := ranFires(t, ev)

	// steady: every run it made is a completed slot, and it is idle.
	hs := history("steady")
	completed := map[string]bool{}
	for _, s := range hs {
		if s.Outcome == "completed" {
			completed[s.Fire] = true
		}
	}
	for _, f := range got["steady"] {
		if slotMs(f) >= slotMs(hs[len(hs)-1].Fire) && !completed[f] {
			t.Errorf("steady ran %s; its history has no completed slot for it", f)
		}
	}
	if s := state["steady"]; s.LastOutcome == nil || s.LastOutcome.Status != "completed" || s.LastSuccess == nil {
		t.Errorf("ls --json steady: %+v; want last outcome completed, a last success", s)
	}

	// overlapper: its completions are the slots it ran, each other slot
	// is missed under overlap-skip, and its last outcome is a completion
	// (it was "fired" before: a skipped fire hid it).
	hs = history("overlapper")
	ran := map[string]bool{}
	for _, f := range got["overlapper"] {
		ran[f] = true
	}
	var skipped int
	for _, s := range hs {
		switch s.Outcome {
		case "completed":
			if !ran[s.Fire] {
				t.Errorf("overlapper history: %s completed, but its command did not run", s.Fire)
			}
		case "missed":
			skipped++
			if ran[s.Fire] || s.Policy != "overlap-skip" || !strings.Contains(s.Reason, "still running") {
				t.Errorf("overlapper history: missed slot %+v; want a slot that did not run, policy overlap-skip, reason the run still running", s)
			}
			if e := explain("overlapper", s.Scheduled); e.Answer != "missed" || !strings.Contains(e.Summary, "still running") {
				t.Errorf("explain overlapper --at %s: %+v; want missed, the run still running", s.Scheduled, e)
			}
		}
	}
	if skipped == 0 {
		t.Errorf("overlapper history has no missed slot: %+v", hs)
	}
	if s := state["overlapper"]; s.LastOutcome == nil || s.LastOutcome.Status != "completed" || !ran[s.LastOutcome.Fire] {
		t.Errorf("ls --json overlapper: %+v; want its last outcome a completion of a slot it ran", s)
	}

	// failing: each run is a dead slot with its error, the explanation
	// names the dead letter to replay, and the failures are counted.
	// (The workers are stopped: the latest slots of each task may wait.)
	hs = slices.DeleteFunc(history("failing"), func(s histSlot) bool { return s.Outcome == "waiting" })
	for _, s := range hs {
		if s.Outcome != "dead" || !strings.HasPrefix(s.Error, "exit status 3") || !slices.Contains(got["failing"], s.Fire) {
			t.Errorf("failing history: %+v; want each slot dead with exit status 3, of a run its command made", s)
		}
	}
	if e := explain("failing", hs[0].Scheduled); e.Answer != "dead" || e.DeadLetter == "" || !strings.Contains(cmd("dead"), e.DeadLetter) {
		t.Errorf("explain failing --at %s: %+v; want dead, with a dead letter taskino dead lists", hs[0].Scheduled, e)
	}
	if s := state["failing"]; s.LastOutcome == nil || s.LastOutcome.Status != "dead" || s.LastSuccess != nil || s.Failures < len(hs) {
		t.Errorf("ls --json failing: %+v; want last outcome dead, no success, at least %d failures in a row", s, len(hs))
	}
	var lr lsTask
	if err := json.Unmarshal([]byte(cmd("last-run", "failing", "--json")), &lr); err != nil || lr.LastOutcome == nil || !strings.HasPrefix(lr.LastOutcome.Error, "exit status 3") {
		t.Errorf("last-run failing --json: %+v (%v); want its last outcome with the error", lr, err)
	}

	// pausable: the slots of the pause are one missed range, which its
	// command did not run, and explain says paused for one of them.
	hs = history("pausable")
	var pause *histSlot
	for i := range hs {
		// The range the resume recorded (a slot fired ahead of the pause
		// is a missed slot of its own, policy stale).
		if hs[i].Outcome == "missed" && (pause == nil || hs[i].Count > pause.Count) {
			pause = &hs[i]
		}
	}
	if pause == nil || !strings.HasPrefix(pause.Reason, "paused") || pause.Count < 2 {
		t.Fatalf("pausable history: %+v; want a missed range of at least 2 slots, reason paused", hs)
	}
	from, _ := time.Parse(time.RFC3339Nano, pause.Scheduled)
	until, _ := time.Parse(time.RFC3339Nano, pause.Until)
	for _, f := range got["pausable"] {
		if ms := slotMs(f); ms >= from.UnixMilli() && ms <= until.UnixMilli() {
			t.Errorf("pausable ran %s, inside the paused range %s..%s", f, pause.Scheduled, pause.Until)
		}
	}
	if len(got["pausable"]) <= pausedRuns {
		t.Errorf("pausable did not run after the resume: %v", got["pausable"])
	}
	if e := explain("pausable", isoMs(until.UnixMilli())); e.Answer != "missed" || !strings.Contains(e.Summary, "paused") {
		t.Errorf("explain pausable --at %s: %+v; want missed, paused", pause.Until, e)
	}

	// lonely: the slots fired while its worker was stopped ran once it
	// was back, late by up to its 40 s; explain says so for one of them.
	hs = history("lonely")
	late := 0
	for _, s := range hs {
		if s.Outcome == "completed" && s.LateMs != nil && *s.LateMs >= 20_000 {
			late++
			if !slices.Contains(got["lonely"], s.Fire) {
				t.Errorf("lonely history: %s completed, but its command did not run", s.Fire)
			}
			if e := explain("lonely", s.Scheduled); e.Answer != "ran" || !strings.Contains(e.Summary, "w2") {
				t.Errorf("explain lonely --at %s: %+v; want ran, on w2", s.Scheduled, e)
			}
		}
	}
	if late < 10 {
		t.Errorf("lonely history: %d slots completed 20 s or more late; want the ones fired while its worker was stopped (%v)", late, hs)
	}
}
