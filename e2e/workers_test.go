package e2e

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// onceTasks applies n one-shot tasks named prefix-i, due at at.
func onceTasks(t *testing.T, b testBundle, prefix string, n int, at time.Time, version int64) []events.Spec {
	t.Helper()
	specs := make([]events.Spec, n)
	for i := range specs {
		specs[i] = events.Spec{Name: fmt.Sprintf("%s-%d", prefix, i), Trigger: events.Once(at)}
	}
	if _, err := planner.Apply(b.ctx, b.st, version, specs); err != nil {
		t.Fatal(err)
	}
	return specs
}

// TestFourWorkersRunEachFireOnce: 2,000 fires over 4 workers with no
// faults are each run exactly once, with one started and one completed
// event each, in that order, and every task's last run completed.
func TestFourWorkersRunEachFireOnce(t *testing.T) {
	b := setup(t)
	const n = 2000
	runs := newRunLog()
	handlers := map[string]dispatcher.HandlerFunc{}
	var ws []*runningWorker
	for w := range 4 {
		node := fmt.Sprintf("w%d", w)
		h := func(ctx context.Context, f events.Fire) error {
			runs.add(node, f)
			time.Sleep(time.Millisecond) // the work
			return nil
		}
		for i := range n {
			handlers[fmt.Sprintf("t-%d", i)] = h
		}
		ws = append(ws, startWorker(t, b, consumer.Config{Node: node}, dispatcher.Config{Concurrency: 8}, handlers))
		handlers = map[string]dispatcher.HandlerFunc{}
	}
	awaitNodesUp(t, b, ws...)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	specs := onceTasks(t, b, "t", n, now.Add(500*time.Millisecond), 1)
	startPlanner(t, b, planner.Config{}, nil)

	all := awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		return len(countEvents(all, events.TypeCompleted)) == n
	})
	for _, w := range ws {
		w.stop(t)
	}
	all = append(all, mustRange(t, b, nextID(all))...)

	got, by := runs.snapshot()
	perWorker := map[string]int{}
	for _, sp := range specs {
		id := events.FireID(sp.Name, sp.Trigger.At)
		if got[id] != 1 {
			t.Errorf("fire %s ran %d times (by %v), want once", id, got[id], by[id])
		}
		if len(by[id]) > 0 {
			perWorker[by[id][0]]++
		}
	}
	if len(got) != n {
		t.Errorf("%d distinct fires ran, want %d", len(got), n)
	}
	for _, w := range ws {
		if perWorker[w.w.Node()] == 0 {
			t.Errorf("worker %s ran no fire; runs per worker: %v", w.w.Node(), perWorker)
		}
	}
	for typ, want := range map[events.Type]int{events.TypeStarted: 1, events.TypeCompleted: 1, events.TypeFired: 1} {
		c := countEvents(all, typ)
		if len(c) != n {
			t.Errorf("%d fires have %s events, want %d", len(c), typ, n)
		}
		for id, k := range c {
			if k != want {
				t.Errorf("fire %s has %d %s events, want %d", id, k, typ, want)
			}
		}
	}
	// Started events are written apart from outcomes (plain appends, ahead
	// of the outcome batches): each fire's still comes first.
	startedAt := map[string]int{}
	for i, e := range all {
		switch e.Type {
		case events.TypeStarted:
			startedAt[e.Fire] = i
		case events.TypeCompleted:
			if j, ok := startedAt[e.Fire]; !ok || j > i {
				t.Errorf("fire %s: completed (event %d) before its started event", e.Fire, i)
			}
		}
	}
	for _, e := range all {
		if e.Type == events.TypeFailed || e.Type == events.TypeDead || e.Type == events.TypeRetried {
			t.Errorf("unexpected %s event: %+v", e.Type, e)
		}
	}
	lr, err := b.st.LastRuns(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range specs {
		r, ok := lr[sp.Name]
		switch {
		case !ok:
			t.Errorf("task %s has no last run", sp.Name)
		case r.Status != events.StatusCompleted || r.Fire != events.FireID(sp.Name, sp.Trigger.At) ||
			!r.Scheduled.Equal(sp.Trigger.At.Truncate(time.Millisecond)) || r.Fired.IsZero() || r.Started.IsZero() || r.Finished.Before(r.Started):
			t.Errorf("task %s last run %+v, want completed fire %s with fired, started and finished times", sp.Name, r, events.FireID(sp.Name, sp.Trigger.At))
		}
	}
	assertNothingPending(t, b, "default")
}

// assertNothingPending checks the worker group holds no entry of queue.
func assertNothingPending(t *testing.T, b testBundle, queue string) {
	t.Helper()
	p, err := b.rdb.XPending(b.ctx, b.st.Keys().Fires(queue), store.WorkerGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 0 {
		t.Errorf("%d entries still pending in queue %s, want none", p.Count, queue)
	}
}

// nextID is the id to read the events stream after everything in all.
func nextID(all []events.Event) string {
	if len(all) == 0 {
		return "-"
	}
	return "(" + all[len(all)-1].ID
}

func mustRange(t *testing.T, b testBundle, from string) []events.Event {
	t.Helper()
	evs, err := b.st.RangeEvents(b.ctx, from, "+")
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// A worker given EventsMaxAge trims the events stream by age in its trim
// loop: 500 events two hours old go (but for at most one stream node of
// them), the worker's own node_up event stays.
func TestWorkerTrimsEventsByAge(t *testing.T) {
	b := setup(t)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream := b.st.Keys().Events()
	old := now.Add(-2 * time.Hour).UnixMilli()
	pipe := b.rdb.Pipeline()
	for i := range 500 {
		pipe.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, ID: strconv.FormatInt(old+int64(i), 10) + "-0", Values: []any{"type", "test"}})
	}
	if _, err := pipe.Exec(b.ctx); err != nil {
		t.Fatal(err)
	}
	startWorker(t, b, consumer.Config{EventsMaxAge: time.Hour, TrimInterval: 100 * time.Millisecond}, dispatcher.Config{},
		map[string]dispatcher.HandlerFunc{"idle": func(context.Context, events.Fire) error { return nil }})
	// Trimming has no event of its own: watch the stream, within a bound.
	cut := strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		oldLeft, err := b.rdb.XRange(b.ctx, stream, "-", cut).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(oldLeft) < 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 500 events older than an hour still there after 30s; want them trimmed (EventsMaxAge 1h, trims every 100ms)", len(oldLeft))
		}
	}
	awaitEvent(t, b, 30*time.Second, events.TypeNodeUp, nil)
}
