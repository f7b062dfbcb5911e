package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// TestStopDuringLoad: a worker stopped while busy finishes the runs it has
// under way (each of its started fires completes on it), hands back what
// it read but did not start, and its Run returns nil; the other worker runs
// the rest; every fire completes once and nothing stays pending.
func TestStopDuringLoad(t *testing.T) {
	b := setup(t)
	const n = 300
	runs := newRunLog()
	var ws []*runningWorker
	for w := range 2 {
		node := fmt.Sprintf("w%d", w)
		handlers := map[string]dispatcher.HandlerFunc{}
		for i := range n {
			handlers[fmt.Sprintf("t-%d", i)] = func(ctx context.Context, f events.Fire) error {
				runs.add(node, f)
				time.Sleep(50 * time.Millisecond) // the work
				return nil
			}
		}
		ws = append(ws, startWorker(t, b, consumer.Config{Node: node, VisibilityTimeout: 4 * time.Second}, dispatcher.Config{Concurrency: 10}, handlers))
	}
	awaitNodesUp(t, b, ws...)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	specs := onceTasks(t, b, "t", n, now.Add(300*time.Millisecond), 1)
	startPlanner(t, b, planner.Config{}, nil)

	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		k := 0
		for _, e := range all {
			if e.Type == events.TypeCompleted && e.Worker == "w0" {
				k++
			}
		}
		return k >= 20
	})
	ws[0].stop(t) // checks Run returned nil
	all := awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		return len(countEvents(all, events.TypeCompleted)) == n
	})
	ws[1].stop(t)
	all = append(all, mustRange(t, b, nextID(all))...)

	completedBy := map[string]string{}
	for _, e := range all {
		if e.Type == events.TypeCompleted {
			completedBy[e.Fire] = e.Worker
		}
	}
	stoppedAt := -1
	for i, e := range all {
		if e.Type == events.TypeNodeDown && e.Worker == "w0" {
			stoppedAt = i
		}
		if e.Type == events.TypeStarted && e.Worker == "w0" && completedBy[e.Fire] != "w0" {
			t.Errorf("fire %s started on the stopped worker but completed on %q: its run was not finished", e.Fire, completedBy[e.Fire])
		}
	}
	if stoppedAt < 0 {
		t.Fatal("no node_down event of the stopped worker")
	}
	for _, e := range all[stoppedAt:] {
		if e.Worker == "w0" && e.Type != events.TypeNodeDown {
			t.Errorf("event %s of fire %s by the stopped worker after its node_down", e.Type, e.Fire)
		}
	}
	got, by := runs.snapshot()
	for _, sp := range specs {
		id := events.FireID(sp.Name, sp.Trigger.At)
		if got[id] != 1 {
			t.Errorf("fire %s ran %d times (%v), want once", id, got[id], by[id])
		}
	}
	assertNothingPending(t, b, "default")
}
