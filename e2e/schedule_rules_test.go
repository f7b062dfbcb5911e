package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

// pause_after_failures, end to end with the binaries: a task failing every
// second with pause_after_failures: 3 is paused by the worker once its
// third slot in a row is dead-lettered, with a paused event saying why;
// no slot after the pause is planned; another task goes on; ls and
// explain say paused; resume plans it again.
func TestPauseAfterFailuresWithBinaries(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	tasks := writeFile(t, t.TempDir(), "tasks.yaml", `version: 1
tasks:
  - name: flaky
    every: 1s
    attempts: 1
    pause_after_failures: 3
    exec: [sh, -c, 'echo disk full >&2; exit 3']
  - name: steady
    every: 1s
    exec: ["true"]
  - name: retrying
    every: 1s
    attempts: 3
    pause_after_failures: 2
    exec: [sh, -c, 'exit 4']
`)
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", filepath.Clean(tasks)}, common...)...)

	// Retries that outlast the period: the next slot has failed already
	// when a dead letter lands, and the task is paused all the same.
	awaitEvent(t, b, 60*time.Second, events.TypePaused, func(e events.Event) bool { return e.Task == "retrying" })
	all := awaitEvent(t, b, 60*time.Second, events.TypePaused, func(e events.Event) bool { return e.Task == "flaky" })
	var dead []events.Event
	var paused events.Event
	for _, e := range all {
		switch {
		case e.Task == "flaky" && e.Type == events.TypeDead:
			dead = append(dead, e)
		case e.Task == "flaky" && e.Type == events.TypePaused:
			paused = e
		}
	}
	if len(dead) != 3 {
		t.Errorf("%d dead letters of flaky before its pause, want 3", len(dead))
	}
	if paused.Worker != "w1" || !strings.Contains(paused.Reason, "paused after 3 slots in a row failed, the last dead-lettered (pause_after_failures: 3)") ||
		!strings.Contains(paused.Reason, "exit status 3") {
		t.Errorf("paused event: worker %q, reason %q; want w1 saying why, with the last error", paused.Worker, paused.Reason)
	}
	pausedAt, _ := events.EntryTime(paused.ID)

	// Steady runs 3 more slots after the pause; flaky fires none of its
	// slots after it.
	after := awaitEvents(t, b, 30*time.Second, func(es []events.Event) bool {
		n := 0
		for _, e := range es {
			if at, _ := events.EntryTime(e.ID); e.Task == "steady" && e.Type == events.TypeCompleted && at.After(pausedAt) {
				n++
			}
		}
		return n >= 3
	})
	for _, e := range after {
		appended, _ := events.EntryTime(e.ID)
		if e.Task == "flaky" && e.Type == events.TypeFired && e.At.After(pausedAt) && !appended.Before(pausedAt) {
			t.Errorf("flaky fired slot %s after its pause at %s", e.At, pausedAt)
		}
		// A slot fired ahead of the pause does not run.
		if e.Task == "flaky" && e.Type == events.TypeStarted && e.At.After(pausedAt) {
			t.Errorf("flaky started slot %s after its pause at %s", e.At, pausedAt)
		}
	}
	if out := mustCLI(t, cli, append([]string{"ls"}, common...)...); !strings.Contains(out, "after 3 failed slots in a row (pause_after_failures: 3)") {
		t.Errorf("ls after the pause does not say why:\n%s", out)
	}
	if out := mustCLI(t, cli, append([]string{"explain", "flaky"}, common...)...); !strings.Contains(out, "pause_after_failures: 3 slots in a row") || !strings.Contains(out, "after 3 failed slots in a row") {
		t.Errorf("explain after the pause does not say why:\n%s", out)
	}
	mustCLI(t, cli, append([]string{"resume", "flaky"}, common...)...)
	awaitEvent(t, b, 30*time.Second, events.TypeDead, func(e events.Event) bool {
		at, _ := events.EntryTime(e.ID)
		return e.Task == "flaky" && at.After(pausedAt.Add(time.Second))
	})
	for _, pr := range []*proc{w, p} {
		pr.stop(t, syscall.SIGTERM)
	}
	_ = fmt.Sprint
}

// except, end to end with the binaries: a task every second with a cron
// calendar excluding even seconds runs its odd slots only, and records
// each even one missed with the rule; its history lists them; taskino next
// marks them.
func TestExceptWithBinaries(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran.log")
	tasks := writeFile(t, dir, "tasks.yaml", fmt.Sprintf(`version: 1
tasks:
  - name: ticker
    every: 1s
    except:
      - cron: "*/2 * * * * *"
      - 2020-01-01
    exec: [sh, -c, 'echo "$TASKINO_FIRE_ID" >> %s']
`, ran))
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	if out := mustCLI(t, cli, append([]string{"next", "ticker", "-n", "4"}, common...)...); strings.Count(out, "excluded by except cron: */2 * * * * *: fires nothing") != 2 {
		t.Errorf("next marks %d of 4 slots excluded, want 2:\n%s", strings.Count(out, "excluded by except"), out)
	}
	var nextJSON []struct {
		At       time.Time `json:"at"`
		Excluded string    `json:"excluded"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, cli, append([]string{"next", "ticker", "-n", "4", "--json"}, common...)...)), &nextJSON); err != nil {
		t.Fatal(err)
	}
	for _, n := range nextJSON {
		if even := n.At.Second()%2 == 0; even != (n.Excluded == "cron: */2 * * * * *") {
			t.Errorf("next --json: slot %s excluded by %q", n.At, n.Excluded)
		}
	}
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks}, common...)...)
	all := awaitEvents(t, b, 60*time.Second, func(es []events.Event) bool {
		missed, done := 0, 0
		for _, e := range es {
			switch {
			case e.Task == "ticker" && e.Type == events.TypeMissed:
				missed++
			case e.Task == "ticker" && e.Type == events.TypeCompleted:
				done++
			}
		}
		return missed >= 4 && done >= 4
	})
	for _, pr := range []*proc{w, p} {
		pr.stop(t, syscall.SIGTERM)
	}
	missedAt, ranAt := map[int64]bool{}, map[int64]bool{}
	for _, e := range all {
		if e.Task != "ticker" {
			continue
		}
		switch e.Type {
		case events.TypeMissed:
			if e.Policy != "except" || e.Reason != "excluded by except cron: */2 * * * * *" || e.At.Second()%2 != 0 {
				t.Errorf("missed %s: policy %q, reason %q; want only even seconds, excluded by the rule", e.At, e.Policy, e.Reason)
			}
			missedAt[e.At.UnixMilli()] = true
		case events.TypeFired:
			if e.At.Second()%2 == 0 {
				t.Errorf("fired the excluded slot %s", e.At)
			}
		case events.TypeCompleted:
			ranAt[e.At.UnixMilli()] = true
		}
	}
	for at := range ranAt {
		if missedAt[at] {
			t.Errorf("slot %d both ran and was missed", at)
		}
	}
	data, err := os.ReadFile(ran)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range strings.Fields(string(data)) {
		if ms := slotMs(id); time.UnixMilli(ms).UTC().Second()%2 == 0 {
			t.Errorf("the command ran for the excluded slot %s", id)
		}
	}
	evenFuture := time.Now().Add(time.Hour).UTC().Truncate(2 * time.Second).Format(time.RFC3339)
	if out := mustCLI(t, cli, append([]string{"explain", "ticker", "--at", evenFuture, "--json"}, common...)...); !strings.Contains(out, `"answer": "excluded"`) {
		t.Errorf("explain of an excluded slot ahead:\n%s", out)
	}
	var hist []histSlot
	out := mustCLI(t, cli, append([]string{"history", "ticker", "--json", "--limit", "0"}, common...)...)
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatalf("history --json: %v\n%s", err, out)
	}
	excluded := 0
	for _, h := range hist {
		if h.Outcome == "missed" && h.Reason == "excluded by except cron: */2 * * * * *" && h.Policy == "except" {
			excluded++
		}
	}
	if excluded < 4 {
		t.Errorf("history lists %d excluded slots, want at least 4:\n%s", excluded, out)
	}
}

// limit, end to end with the binaries: a task every second with limit: 3
// fires three slots and is done (ls says so, and no fourth slot fires
// while another task goes on); a manual trigger still runs it; applying a
// new limit counts again from the apply.
func TestLimitWithBinaries(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	file := func(version, limit int) string {
		return writeFile(t, dir, fmt.Sprintf("tasks-%d.yaml", version), fmt.Sprintf(`version: %d
tasks:
  - name: thrice
    every: 1s
    limit: %d
    exec: ["true"]
  - name: clock
    every: 1s
    exec: ["true"]
`, version, limit))
	}
	v1 := file(1, 3)
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", v1}, common...)...)
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", v1}, common...)...)
	count := func(es []events.Event, task string, typ events.Type, after time.Time) int {
		n := 0
		for _, e := range es {
			if at, _ := events.EntryTime(e.ID); e.Task == task && e.Type == typ && at.After(after) {
				n++
			}
		}
		return n
	}
	es := awaitEvents(t, b, 60*time.Second, func(es []events.Event) bool { return count(es, "thrice", events.TypeCompleted, time.Time{}) >= 3 })
	third := time.Time{}
	for _, e := range es {
		if e.Task == "thrice" && e.Type == events.TypeFired {
			third, _ = events.EntryTime(e.ID)
		}
	}
	// Four more seconds of the clock task: thrice fires nothing more.
	es = awaitEvents(t, b, 60*time.Second, func(es []events.Event) bool { return count(es, "clock", events.TypeCompleted, third) >= 4 })
	if n := count(es, "thrice", events.TypeFired, time.Time{}); n != 3 {
		t.Errorf("thrice fired %d slots with limit 3, want 3", n)
	}
	if out := mustCLI(t, cli, append([]string{"ls"}, common...)...); !strings.Contains(out, "done (limit of 3 fires reached)") {
		t.Errorf("ls after the limit:\n%s", out)
	}
	if out := mustCLI(t, cli, append([]string{"next", "thrice"}, common...)...); !strings.Contains(out, "task thrice is done") {
		t.Errorf("next after the limit says nothing of it:\n%s", out)
	}
	future := time.Now().Add(time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	if out := mustCLI(t, cli, append([]string{"explain", "thrice", "--at", future, "--json"}, common...)...); !strings.Contains(out, `"answer": "done"`) || !strings.Contains(out, "limit: 3 fires; 3 fired") {
		t.Errorf("explain of a slot after the limit:\n%s", out)
	}
	mustCLI(t, cli, append([]string{"trigger", "thrice"}, common...)...)
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool {
		at, _ := events.EntryTime(e.ID)
		return e.Task == "thrice" && at.After(third) && e.Fire != events.FireID("thrice", e.At)
	})
	// Paused and resumed once done, it owes no slot: no missed event.
	if out := mustCLI(t, cli, append([]string{"pause", "thrice"}, common...)...); !strings.Contains(out, "it has no slot left (done)") {
		t.Errorf("pause of a task done by its limit printed %q; want it to say the task is done", out)
	}
	mustCLI(t, cli, append([]string{"resume", "thrice"}, common...)...)
	resumed := awaitEvent(t, b, 30*time.Second, events.TypeResumed, func(e events.Event) bool { return e.Task == "thrice" })
	for _, e := range resumed {
		if e.Task == "thrice" && e.Type == events.TypeMissed {
			t.Errorf("a task done by its limit, paused and resumed, recorded missed: %+v", e)
		}
	}
	// A new limit reschedules: two more fires.
	applied := time.Now()
	mustCLI(t, cli, append([]string{"apply", file(2, 2)}, common...)...)
	es = awaitEvents(t, b, 60*time.Second, func(es []events.Event) bool { return count(es, "clock", events.TypeCompleted, applied) >= 5 })
	if n := count(es, "thrice", events.TypeFired, applied.Add(-time.Second)); n != 2 {
		t.Errorf("thrice fired %d slots after its limit became 2, want 2", n)
	}
	for _, pr := range []*proc{w, p} {
		pr.stop(t, syscall.SIGTERM)
	}
}
