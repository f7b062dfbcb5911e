package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// Promise 2 at the worker: fires of a misfire skip task queued while their
// queue had no worker are not replayed late when one comes back: those
// read past their misfire grace are recorded missed with the reason and
// never run; the task runs again from its fires on time. No slot is both
// missed and run. A fire-once task's late fires run (a fire read late
// because Redis was frozen looks the same, and the chaos suite expects it
// to run).
func TestLateFiresAreNotReplayed(t *testing.T) {
	b := setup(t)
	// A grace well above a loaded machine's planning delays: the misses
	// checked here are the worker's, of fires queued while it was away.
	const grace = time.Second
	specs := []events.Spec{
		{Name: "skip", Trigger: events.Every(200 * time.Millisecond), Misfire: events.MisfireSkip, MisfireGrace: grace},
		{Name: "once", Trigger: events.Every(200 * time.Millisecond), Misfire: events.MisfireFireOnce, MisfireGrace: grace},
	}
	if _, err := planner.Apply(b.ctx, b.st, 1, specs); err != nil {
		t.Fatal(err)
	}
	startPlanner(t, b, planner.Config{Node: "p1"}, nil)
	// The queue has no worker while 30 slots of each task are fired (up
	// to 8 of them appended ahead of their slot by the lookahead).
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		n := 0
		for _, e := range all {
			if e.Type == events.TypeFired && e.Task == "once" {
				n++
			}
		}
		return n >= 30
	})
	workerAt := time.Now()
	noop := func(context.Context, events.Fire) error { return nil }
	cc := consumer.Config{}
	cc.Node = "w1"
	startWorker(t, b, cc, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{"skip": noop, "once": noop})
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		n := map[string]int{}
		for _, e := range all {
			if e.Type == events.TypeCompleted && e.At.After(workerAt) {
				n[e.Task]++
			}
		}
		return n["skip"] >= 3 && n["once"] >= 3
	})
	for _, task := range []string{"skip", "once"} {
		missed, ran := map[string]events.Event{}, map[string]bool{}
		for _, e := range all {
			switch {
			case e.Task == task && e.Type == events.TypeMissed && e.Worker == "w1":
				missed[e.Fire] = e // the worker's (a loaded planner may miss slots too)
			case e.Task == task && e.Type == events.TypeStarted:
				ran[e.Fire] = true
			}
		}
		stale := 0
		for _, e := range all {
			// Fired a second past the grace before the worker came: past
			// the grace when it read them, whatever the machine's pace.
			if e.Task == task && e.Type == events.TypeFired && e.At.Before(workerAt.Add(-grace-time.Second)) {
				stale++
				_, isMissed := missed[e.Fire]
				switch {
				case task == "skip" && (ran[e.Fire] || !isMissed):
					t.Errorf("skip: fire %s, due %s before the worker started: ran %v, missed %v; want it missed, not run", e.Fire, workerAt.Sub(e.At), ran[e.Fire], isMissed)
				case task == "once" && (!ran[e.Fire] || isMissed):
					t.Errorf("once: fire %s, due %s before the worker started: ran %v, missed %v; want it run", e.Fire, workerAt.Sub(e.At), ran[e.Fire], isMissed)
				}
			}
		}
		if stale < 3 {
			t.Fatalf("%s: %d fires queued two seconds before the worker came; want at least 3", task, stale)
		}
		for f, e := range missed {
			if ran[f] {
				t.Errorf("%s: fire %s both missed and run", task, f)
			}
			if e.Policy != events.MisfireSkip {
				t.Errorf("%s: missed event %+v, want policy %s", task, e, task)
			}
			if !strings.Contains(e.Reason, "misfire grace") {
				t.Errorf("%s: missed reason %q", task, e.Reason)
			}
		}
	}
}
