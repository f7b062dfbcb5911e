package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

// With the binaries' default settings (a planner lookahead of 1s), a fire
// appended ahead of its slot does not run when its task is paused 100 ms
// before the slot, nor when its definition (here its payload) changes 100
// ms before it: the worker records the slot missed, policy stale, saying
// paused or changed after it was planned. The changed task's next slots
// run the new definition; the paused one fires nothing more.
func TestLookaheadObeysPauseAndChangeWithBinaries(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran.log")
	file := func(version int, payload string) string {
		return writeFile(t, dir, fmt.Sprintf("tasks%d.yaml", version), fmt.Sprintf(`version: %d
tasks:
  - name: pausy
    every: 2s
    exec: [sh, -c, 'echo "$TASKINO_FIRE_ID pausy" >> %[2]s']
  - name: shifty
    every: 2s
    payload: %[3]s
    exec: [sh, -c, 'echo "$TASKINO_FIRE_ID $TASKINO_PAYLOAD" >> %[2]s']
`, version, ran, payload))
	}
	v1 := file(1, "old")
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", v1}, common...)...)
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", v1}, common...)...)

	// aheadOf waits for a fire of task appended ahead of its slot, with a
	// slot at least 300 ms away, and returns it.
	aheadOf := func(task string) events.Event {
		var got events.Event
		awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
			for _, e := range all {
				appended, _ := events.EntryTime(e.ID)
				if e.Type == events.TypeFired && e.Task == task && e.At.Sub(appended) > 300*time.Millisecond && time.Until(e.At) > 200*time.Millisecond {
					got = e
					return true
				}
			}
			return false
		})
		return got
	}
	// Let the first slots run, so the worker is known to run both.
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		n := map[string]bool{}
		for _, e := range all {
			if e.Type == events.TypeCompleted {
				n[e.Task] = true
			}
		}
		return n["pausy"] && n["shifty"]
	})

	// Pause 100 ms before a slot whose fire is appended already.
	f := aheadOf("pausy")
	time.Sleep(time.Until(f.At.Add(-100 * time.Millisecond))) // the scenario's instant, not a wait for an event
	mustCLI(t, cli, append([]string{"pause", "pausy"}, common...)...)
	stale := awaitEvent(t, b, 30*time.Second, events.TypeMissed, func(e events.Event) bool { return e.Fire == f.Fire })
	for _, e := range stale {
		switch {
		case e.Fire == f.Fire && e.Type == events.TypeMissed:
			if e.Policy != "stale" || !strings.HasPrefix(e.Reason, "paused at ") || !strings.Contains(e.Reason, "after its fire was planned ahead") {
				t.Errorf("missed event of %s: policy %q, reason %q; want stale, paused after it was planned", f.Fire, e.Policy, e.Reason)
			}
			if events.MissedKind(e) != "paused" {
				t.Errorf("missed kind %q, want paused", events.MissedKind(e))
			}
		case e.Fire == f.Fire && e.Type == events.TypeStarted:
			t.Errorf("the fire of %s, paused 100 ms before its slot, started", f.Fire)
		}
	}

	// Change shifty's payload 100 ms before a slot whose fire is appended.
	g := aheadOf("shifty")
	v2 := file(2, "new")
	time.Sleep(time.Until(g.At.Add(-100 * time.Millisecond)))
	mustCLI(t, cli, append([]string{"apply", v2}, common...)...)
	awaitEvent(t, b, 30*time.Second, events.TypeMissed, func(e events.Event) bool {
		return e.Fire == g.Fire && e.Policy == "stale" && strings.HasPrefix(e.Reason, "changed at ")
	})
	// Its next slot runs the new payload.
	next := events.FireID("shifty", g.At.Add(2*time.Second))
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == next })

	b2, err := os.ReadFile(ran)
	if err != nil {
		t.Fatal(err)
	}
	lines := string(b2)
	if strings.Contains(lines, f.Fire+" ") || strings.Contains(lines, g.Fire+" ") {
		t.Errorf("a stale fire ran:\n%s", lines)
	}
	if !strings.Contains(lines, next+" new") {
		t.Errorf("the slot after the change did not run the new payload:\n%s", lines)
	}
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		var id, what string
		fmt.Sscan(l, &id, &what)
		if strings.HasPrefix(id, "pausy@") && id > f.Fire {
			t.Errorf("pausy ran %s after its pause", id)
		}
		if strings.HasPrefix(id, "shifty@") && id > g.Fire && what != "new" {
			t.Errorf("shifty ran %s with payload %q after the change, want new", id, what)
		}
	}
	st, err := b.st.State(b.ctx, "pausy")
	if err != nil || st.Paused.IsZero() {
		t.Errorf("pausy state %+v (%v), want paused", st, err)
	}
	for _, pr := range []*proc{w, p} {
		pr.stop(t, syscall.SIGTERM)
	}
}
