package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

// Promise 5 (a deploy drops nothing): a task applied by `taskino apply`
// before any worker has it is not dead-lettered. The worker that reads its
// fires keeps them waiting and says why once (a stuck event); under
// misfire skip, the slots that waited past their grace are recorded missed
// with the reason and never run. Once a worker with the new tasks file
// starts, the waiting fires are routed to it and the task runs there; no
// slot is both missed and run.
func TestTaskAppliedBeforeAnyWorkerHasIt(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	v1 := writeFile(t, dir, "v1.yaml", `version: 1
tasks:
  - name: old
    every: 1h
    exec: [sh, -c, "exit 0"]
`)
	v2 := writeFile(t, dir, "v2.yaml", fmt.Sprintf(`version: 2
tasks:
  - name: old
    every: 1h
    exec: [sh, -c, "exit 0"]
  - name: fresh
    every: 500ms
    misfire: skip
    misfire_grace: 1500ms
    exec: [sh, -c, 'echo "$TASKINO_FIRE_ID" >> %s']
`, runs))
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", v1}, common...)...)
	w1 := startProc(t, "w1", workerBin, append([]string{"--node", "w1", "--tasks", v1}, common...)...)
	pl := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	awaitEvent(t, b, 30*time.Second, events.TypeNodeUp, func(e events.Event) bool { return e.Worker == "w1" })

	_, stderr, code := runCLI(t, cli, append([]string{"apply", v2}, common...)...)
	if code != 0 || !strings.Contains(stderr, "fresh") {
		t.Errorf("apply of v2: exit %d, stderr %q; want 0 and a warning that no live worker runs fresh", code, stderr)
	}
	// Waiting: a stuck event, then slots past their grace recorded missed.
	awaitEvent(t, b, 30*time.Second, events.TypeStuck, func(e events.Event) bool {
		return e.Task == "fresh" && e.Worker == "w1" && strings.Contains(e.Reason, "no live worker")
	})
	awaitEvent(t, b, 30*time.Second, events.TypeMissed, func(e events.Event) bool {
		return e.Task == "fresh" && e.Policy == events.MisfireSkip && strings.Contains(e.Reason, "misfire grace")
	})

	w2 := startProc(t, "w2", workerBin, append([]string{"--node", "w2", "--tasks", v2}, common...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("w1:\n%s\nw2:\n%s", w1.stderr(), w2.stderr())
			evs, _ := b.st.RangeEvents(b.ctx, "-", "+")
			for _, e := range evs {
				if e.Type != events.TypeMissed && e.Type != events.TypeFired {
					t.Logf("%s %s %s %s %s", e.Type, e.Task, e.Fire, e.Worker, e.Reason)
				}
			}
		}
	})
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		n := 0
		for _, e := range all {
			if e.Type == events.TypeCompleted && e.Task == "fresh" {
				n++
			}
		}
		return n >= 4
	})
	pl.stop(t, syscall.SIGTERM)
	w1.stop(t, syscall.SIGTERM)
	w2.stop(t, syscall.SIGTERM)

	missed, ran := map[string]bool{}, map[string]bool{}
	stuck := 0
	for _, e := range all {
		if e.Task != "fresh" {
			continue
		}
		switch e.Type {
		case events.TypeDead:
			t.Errorf("fresh dead-lettered: %+v", e)
		case events.TypeStuck:
			stuck++
		case events.TypeMissed:
			missed[e.Fire] = true
		case events.TypeStarted:
			ran[e.Fire] = true
			if e.Worker != "w2" {
				t.Errorf("fresh ran on %s, which has no handler for it", e.Worker)
			}
		}
	}
	if stuck != 1 {
		t.Errorf("%d stuck events for fresh, want one", stuck)
	}
	for f := range missed {
		if ran[f] {
			t.Errorf("fire %s both missed and run", f)
		}
	}
	if log := w1.stderr(); !strings.Contains(log, "routed fires this worker has no handler for") {
		t.Errorf("w1 does not log routing fires to w2:\n%s", log)
	}
}
