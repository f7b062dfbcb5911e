package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

// runScript is the sh script of a test task that leaves its own evidence
// in dir/ev: "overlap FIRE" when it starts while another run of its fire
// still holds the fire's lock (flock, which the kernel releases only when
// every process of a run holding it is gone), "start TASK FIRE NODE PID",
// "child FIRE PID" for the process it leaves running in the background,
// and "end TASK FIRE NODE" when it exits by itself. On worker w2 it ends
// at once; elsewhere it runs until stopped, with onTerm as its SIGTERM
// trap ("" ignores SIGTERM, in its child too).
func runScript(dir, onTerm string) string {
	ev := filepath.Join(dir, "ev")
	return fmt.Sprintf(`exec 9>"%[1]s/$TASKINO_FIRE_ID.lock"
flock -n 9 || echo "overlap $TASKINO_FIRE_ID" >> %[2]s
echo "start $TASKINO_TASK $TASKINO_FIRE_ID $TASKINO_NODE $$" >> %[2]s
if [ "$TASKINO_NODE" = w2 ]; then echo "end $TASKINO_TASK $TASKINO_FIRE_ID $TASKINO_NODE" >> %[2]s; exit 0; fi
trap '%[3]s' TERM
sleep 60 &
echo "child $TASKINO_FIRE_ID $!" >> %[2]s
wait
`, dir, ev, onTerm)
}

// evLines returns dir/ev's lines, split into fields.
func evLines(t *testing.T, dir string) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "ev"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l != "" {
			out = append(out, strings.Fields(l))
		}
	}
	return out
}

// awaitEv polls dir/ev (a file the test's commands append to: no event
// to wait on) until cond holds for its lines, failing the test after limit.
func awaitEv(t *testing.T, dir string, limit time.Duration, what string, cond func(lines [][]string) bool) [][]string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		lines := evLines(t, dir)
		if cond(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen after %s; evidence:\n%v", what, limit, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// living reports whether pid is a process that has not ended (a zombie,
// dead but not yet reaped by whoever inherited it, has ended).
func living(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) state ...": the state follows the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// Promise 8 (a clean stop runs no fire twice): a task that ignores SIGTERM
// and one that takes 2s to clean up are running when their worker gets
// SIGTERM with --grace 1s. The worker exits 0 with no process of either
// run left; each run has a cancelled event; each fire is handed back, not
// reclaimed as a dead worker's, and runs again on the other worker only
// once its first run is gone (the commands' own flock evidence).
func TestWorkerStopLeavesNoRunBehind(t *testing.T) {
	b := setup(t)
	cli, workerBin := buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-worker")
	dir := t.TempDir()
	task := func(name, script string) string {
		return fmt.Sprintf("  - name: %s\n    once: 2099-01-01T00:00:00Z\n    exec:\n      - sh\n      - -c\n      - |\n%s", name,
			"        "+strings.ReplaceAll(strings.TrimSpace(script), "\n", "\n        ")+"\n")
	}
	tidy := `sleep 2; echo "end $TASKINO_TASK $TASKINO_FIRE_ID $TASKINO_NODE" >> ` + filepath.Join(dir, "ev") + `; exit 0`
	tasks := writeFile(t, dir, "tasks.yaml", "version: 1\ntasks:\n"+task("deaf", runScript(dir, ""))+task("tidy", runScript(dir, tidy)))
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)

	w1 := startProc(t, "w1", workerBin, append([]string{"--node", "w1", "--tasks", tasks, "--grace", "1s", "--kill-grace", "3s", "--concurrency", "2"}, common...)...)
	awaitEvent(t, b, 30*time.Second, events.TypeNodeUp, func(e events.Event) bool { return e.Worker == "w1" })
	mustCLI(t, cli, append([]string{"trigger", "deaf"}, common...)...)
	mustCLI(t, cli, append([]string{"trigger", "tidy"}, common...)...)
	lines := awaitEv(t, dir, 30*time.Second, "both runs started on w1, with their children", func(lines [][]string) bool {
		n := 0
		for _, l := range lines {
			if l[0] == "child" {
				n++
			}
		}
		return n == 2
	})
	var pids []int
	fires := map[string]string{} // task -> fire
	for _, l := range lines {
		switch l[0] {
		case "start":
			fires[l[1]] = l[2]
			pid, _ := strconv.Atoi(l[4])
			pids = append(pids, pid)
		case "child":
			pid, _ := strconv.Atoi(l[2])
			pids = append(pids, pid)
		}
	}
	w2 := startProc(t, "w2", workerBin, append([]string{"--node", "w2", "--tasks", tasks}, common...)...)
	awaitEvent(t, b, 30*time.Second, events.TypeNodeUp, func(e events.Event) bool { return e.Worker == "w2" })

	w1.stop(t, syscall.SIGTERM)
	for _, pid := range pids {
		if living(pid) {
			t.Errorf("process %d of a run of w1 outlived w1", pid)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("w1:\n%s\nw2:\n%s\nevidence: %v", w1.stderr(), w2.stderr(), evLines(t, dir))
			evs, _ := b.st.RangeEvents(b.ctx, "-", "+")
			for _, e := range evs {
				t.Logf("%+v", e)
			}
		}
	})
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		done := 0
		for _, e := range all {
			if e.Type == events.TypeCompleted && e.Worker == "w2" {
				done++
			}
		}
		return done == 2
	})
	for task, fire := range fires {
		var cancelled *events.Event
		for i, e := range all {
			if e.Type == events.TypeCancelled && e.Fire == fire {
				cancelled = &all[i]
			}
		}
		if cancelled == nil || cancelled.Worker != "w1" || !strings.Contains(cancelled.Reason, "1s grace") || cancelled.CostMs < 1000 {
			t.Errorf("%s: cancelled event %+v; want one from w1 naming the 1s grace, with the cost so far", task, cancelled)
		}
	}
	ev := evLines(t, dir)
	tidied := false
	for _, l := range ev {
		if l[0] == "overlap" {
			t.Errorf("fire %s started while an earlier run of it was alive; evidence:\n%v", l[1], ev)
		}
		tidied = tidied || (l[0] == "end" && l[1] == "tidy" && l[3] == "w1")
	}
	if !tidied {
		t.Errorf("tidy's SIGTERM clean-up did not finish on w1; evidence:\n%v", ev)
	}
	w2.stop(t, syscall.SIGTERM)
	if log := w2.stderr(); !strings.Contains(log, "took fires handed back by a stopping worker") || strings.Contains(log, "stopped answering") {
		t.Errorf("w2's log does not say it took a hand-back (or says a worker stopped answering):\n%s", log)
	}
}

// Promise 4 (fires run on time): a worker stopping while a long run
// finishes hands back at once the fires it read but did not start (here
// fires read ahead of their slot, then due while its one run slot was
// busy). They start on the other worker within 1s of the stop, and that
// worker logs a hand-back, not a worker that stopped answering. The
// stopping worker lets the long run finish and exits 0.
func TestStoppingWorkerHandsBackUnstartedFires(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	tasks := writeFile(t, dir, "tasks.yaml", `version: 1
tasks:
  - name: tick
    every: 1s
    exec: [sh, -c, "exit 0"]
  - name: long
    once: 2099-01-01T00:00:00Z
    exec: [sleep, "5"]
`)
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	// A long visibility: w2's periodic reclaim (every quarter of it) comes
	// too late to take the hand-back within the second.
	w1 := startProc(t, "w1", workerBin, append([]string{"--node", "w1", "--tasks", tasks, "--concurrency", "1", "--visibility", "60s"}, common...)...)
	pl := startProc(t, "planner", plannerBin, append([]string{"--node", "p1", "--lookahead", "6s"}, common...)...)
	// w1 runs ticks, and reads them up to 6s ahead of their slots.
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Task == "tick" && e.Worker == "w1" })
	mustCLI(t, cli, append([]string{"trigger", "long"}, common...)...)
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool { return e.Task == "long" && e.Worker == "w1" })
	w2 := startProc(t, "w2", workerBin, append([]string{"--node", "w2", "--tasks", tasks, "--concurrency", "4", "--visibility", "60s"}, common...)...)
	// w1 reads ticks up to 6s ahead while its one run slot is busy: those
	// that come due are handed back after a second (a worker whose runs
	// are busy keeps no due fire), the ones not yet due it holds. Once w2
	// has started a tick w1 gave back, w1 is stopped: it hands back at once
	// what it holds, and the ticks fired before the stop start on w2 by
	// their slot.
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool { return e.Task == "tick" && e.Worker == "w2" })
	stopAt := time.Now()
	w1.signal(t, syscall.SIGTERM)
	all := awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool {
		return e.Task == "tick" && e.At.After(stopAt.Add(3*time.Second))
	})
	firedAt := map[string]time.Time{}
	for _, e := range all {
		if e.Type == events.TypeFired {
			firedAt[e.Fire] = entryTime(t, e.ID)
		}
	}
	for _, e := range all {
		if e.Type != events.TypeStarted || e.Task != "tick" || !e.At.After(stopAt) || !firedAt[e.Fire].Before(stopAt) {
			continue
		}
		// A tick fired before the stop, due after it: held by w1 or w2.
		if e.Worker != "w2" {
			t.Errorf("tick %s, due after w1's stop, started on %s; want w2", e.Fire, e.Worker)
		}
		if late := entryTime(t, e.ID).Sub(e.At); late > time.Second {
			t.Errorf("tick %s started %s after its slot; want it on time, handed back at w1's stop", e.Fire, late)
		}
	}
	w1.exited(t, syscall.SIGTERM)
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Task == "long" && e.Worker == "w1" })
	pl.stop(t, syscall.SIGTERM)
	w2.stop(t, syscall.SIGTERM)
	if log := w1.stderr(); !strings.Contains(log, "handed back the fires read but not started") {
		t.Errorf("w1's log does not say it handed back unstarted fires:\n%s", log)
	}
	if log := w2.stderr(); !strings.Contains(log, "took fires handed back by a stopping worker") || strings.Contains(log, "stopped answering") {
		t.Errorf("w2's log does not say it took a hand-back (or says a worker stopped answering):\n%s", log)
	}
}
