package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// A handler removed from a running worker (SetHandlers, as a SIGHUP with a
// file without the task does) while fires of its task are held early is
// not a dead letter for those fires: they wait (a stuck event, no live
// worker has the handler) and run once the handler is back.
func TestRemovedHandlerDoesNotDeadLetterHeldFires(t *testing.T) {
	b := setup(t)
	specs := []events.Spec{{Name: "kept", Trigger: events.Every(time.Hour)}, {Name: "moved", Trigger: events.Every(300 * time.Millisecond)}}
	if _, err := planner.Apply(b.ctx, b.st, 1, specs); err != nil {
		t.Fatal(err)
	}
	noop := func(context.Context, events.Fire) error { return nil }
	both := dispatcher.Handlers{"kept": dispatcher.HandlerFunc(noop), "moved": dispatcher.HandlerFunc(noop)}
	cc := consumer.Config{}
	cc.Node = "w1"
	w := startWorker(t, b, cc, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{"kept": noop, "moved": noop})
	startPlanner(t, b, planner.Config{Node: "p1", Lookahead: 3 * time.Second}, nil)
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Task == "moved" })
	// Fires of moved up to 3s ahead are held by now; its handler goes.
	if err := w.w.SetHandlers(dispatcher.Handlers{"kept": dispatcher.HandlerFunc(noop)}, 0, nil); err != nil {
		t.Fatal(err)
	}
	removedAt := time.Now()
	awaitEvent(t, b, 30*time.Second, events.TypeStuck, func(e events.Event) bool { return e.Task == "moved" && e.Worker == "w1" })
	if err := w.w.SetHandlers(both, 0, nil); err != nil {
		t.Fatal(err)
	}
	all := awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool {
		return e.Task == "moved" && e.At.After(removedAt)
	})
	for _, e := range all {
		if e.Type == events.TypeDead {
			t.Errorf("dead letter %+v; want none", e)
		}
	}
}
