package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// TestHelperDoomedWorker is not a test: run as a child process by
// TestWorkerStoppedDeadIsReclaimed, it is a worker whose handlers never
// return, until the parent kills it with SIGKILL.
func TestHelperDoomedWorker(t *testing.T) {
	addr := os.Getenv("TASKINO_DOOMED_REDIS")
	if addr == "" {
		t.Skip("run by TestWorkerStoppedDeadIsReclaimed")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	hs := dispatcher.Handlers{}
	for i := range 200 {
		hs[fmt.Sprintf("t-%d", i)] = dispatcher.HandlerFunc(func(ctx context.Context, f events.Fire) error { select {} })
	}
	d, err := dispatcher.NewWorker(rdb, dispatcher.WorkerConfig{Namespace: ns, Node: "doomed", Concurrency: 50, Logger: zerolog.New(os.Stderr),
		Stream: consumer.Config{VisibilityTimeout: 2 * time.Second}}, hs)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Run(context.Background())
}

// TestWorkerStoppedDeadIsReclaimed: a worker process killed with SIGKILL
// while holding 50 fires has all 50 reclaimed and completed by the others;
// nothing is lost, and no fire that was not in its hands runs twice.
func TestWorkerStoppedDeadIsReclaimed(t *testing.T) {
	b := setup(t)
	child := exec.Command(os.Args[0], "-test.run=^TestHelperDoomedWorker$", "-test.v")
	child.Env = append(os.Environ(), "TASKINO_DOOMED_REDIS="+b.srv.Addr)
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = child.Process.Kill()
		}
		_ = child.Wait()
	})
	awaitEvent(t, b, 30*time.Second, events.TypeNodeUp, func(e events.Event) bool { return e.Worker == "doomed" })

	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	specs := onceTasks(t, b, "t", 200, now.Add(300*time.Millisecond), 1)
	startPlanner(t, b, planner.Config{}, nil)

	// The doomed worker takes 50 fires and hangs in all of them.
	held := map[string]bool{}
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		for _, e := range all {
			if e.Type == events.TypeStarted && e.Worker == "doomed" {
				held[e.Fire] = true
			}
		}
		return len(held) == 50
	})
	runs := newRunLog()
	handlers := map[string]dispatcher.HandlerFunc{}
	var ws []*runningWorker
	for w := range 2 {
		node := fmt.Sprintf("live%d", w)
		for _, sp := range specs {
			handlers[sp.Name] = func(ctx context.Context, f events.Fire) error { runs.add(node, f); return nil }
		}
		ws = append(ws, startWorker(t, b, consumer.Config{Node: node, VisibilityTimeout: 2 * time.Second}, dispatcher.Config{Concurrency: 10}, handlers))
		handlers = map[string]dispatcher.HandlerFunc{}
	}
	// The live workers run the other 150; then the doomed one dies.
	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		return len(countEvents(all, events.TypeCompleted)) == 150
	})
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	all := awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		return len(countEvents(all, events.TypeCompleted)) == 200
	})
	for _, w := range ws {
		w.stop(t)
	}
	all = append(all, mustRange(t, b, nextID(all))...)

	got, by := runs.snapshot()
	completed := countEvents(all, events.TypeCompleted)
	for _, sp := range specs {
		id := events.FireID(sp.Name, sp.Trigger.At)
		if got[id] != 1 {
			t.Errorf("fire %s ran %d times on live workers (%v), want once", id, got[id], by[id])
		}
		if completed[id] != 1 {
			t.Errorf("fire %s has %d completed events, want 1", id, completed[id])
		}
	}
	// A fire ran twice (once started by the doomed worker, once by a live
	// one) only if the doomed worker held it.
	for id := range countEvents(all, events.TypeStarted) {
		if starts := startsOf(all, id); len(starts) > 1 && !held[id] {
			t.Errorf("fire %s started on %v, but the dead worker never held it", id, starts)
		}
	}
	reclaimed := 0
	for id := range held {
		if s := startsOf(all, id); len(s) == 2 && s[0] == "doomed" {
			reclaimed++
		}
	}
	if reclaimed != 50 {
		t.Errorf("%d of the dead worker's 50 fires were started again by a live worker, want 50", reclaimed)
	}
	assertNothingPending(t, b, "default")
}

func startsOf(all []events.Event, fire string) []string {
	var out []string
	for _, e := range all {
		if e.Type == events.TypeStarted && e.Fire == fire {
			out = append(out, e.Worker)
		}
	}
	return out
}

// TestLongRunOnALiveWorkerIsNotStolen: a handler that runs three times the
// visibility timeout keeps its fire: the other worker, reclaiming all the
// while, never takes it.
func TestLongRunOnALiveWorkerIsNotStolen(t *testing.T) {
	b := setup(t)
	const visibility = time.Second
	var running, runs atomic.Int32
	h := func(ctx context.Context, f events.Fire) error {
		runs.Add(1)
		if running.Add(1) > 1 {
			t.Errorf("fire %s runs twice at once", f.ID)
		}
		defer running.Add(-1)
		time.Sleep(3*visibility + visibility/2) // the long work
		return nil
	}
	var ws []*runningWorker
	for w := range 2 {
		ws = append(ws, startWorker(t, b, consumer.Config{Node: fmt.Sprintf("w%d", w), VisibilityTimeout: visibility},
			dispatcher.Config{}, map[string]dispatcher.HandlerFunc{"long": h}))
	}
	awaitNodesUp(t, b, ws...)
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{{Name: "long", Trigger: events.Once(time.Now().Add(time.Hour))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Trigger(b.ctx, "long", "", ""); err != nil {
		t.Fatal(err)
	}
	all := awaitEvent(t, b, 30*time.Second, events.TypeCompleted, nil)
	if n := runs.Load(); n != 1 {
		t.Errorf("the long handler ran %d times, want 1", n)
	}
	for _, w := range ws {
		w.stop(t)
	}
	all = append(all, mustRange(t, b, nextID(all))...)
	if n := len(ofType(all, events.TypeStarted)); n != 1 {
		t.Errorf("%d started events, want 1", n)
	}
	assertNothingPending(t, b, "default")
}

// TestFireReadWhileSlotsAreBusyRunsOnce: a single fire read while the only
// slot runs a long broadcast fire is held (its claim extended) until it
// runs, so it is not reclaimed, by this worker or another, and runs once.
func TestFireReadWhileSlotsAreBusyRunsOnce(t *testing.T) {
	b := setup(t)
	var jobRuns atomic.Int32
	w := startWorker(t, b, consumer.Config{Node: "a", VisibilityTimeout: time.Second, Block: 10 * time.Second},
		dispatcher.Config{Concurrency: 1}, map[string]dispatcher.HandlerFunc{
			"bc":  func(ctx context.Context, f events.Fire) error { time.Sleep(4 * time.Second); return nil }, // longer than the visibility timeout
			"job": func(ctx context.Context, f events.Fire) error { jobRuns.Add(1); return nil },
		})
	awaitNodesUp(t, b, w)
	manualTasks(t, b, events.Spec{Name: "bc", Mode: events.ModeBroadcast}, events.Spec{Name: "job"})
	if _, err := b.st.Trigger(b.ctx, "bc", "", "bc1"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool { return e.Fire == "bc1" })
	if _, err := b.st.Trigger(b.ctx, "job", "", "j1"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "j1" })
	// A second fire read after j1: a duplicate of j1 would run before it.
	if _, err := b.st.Trigger(b.ctx, "job", "", "j2"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "j2" })
	w.stop(t)
	if n := jobRuns.Load(); n != 2 {
		t.Errorf("the job task ran %d times for 2 fires, want 2", n)
	}
}
