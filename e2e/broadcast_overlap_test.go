package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// TestBroadcastBufferOne: on one worker, a broadcast fire that comes while
// the task runs waits and runs after it, and the task keeps running later
// fires.
func TestBroadcastBufferOne(t *testing.T) {
	b := setup(t)
	runs := newRunLog()
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	w := startWorker(t, b, consumer.Config{Node: "w0"}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
		"bsync": func(ctx context.Context, f events.Fire) error {
			runs.add("w0", f)
			if f.ID == "first" {
				<-release
			}
			return nil
		},
	})
	awaitNodesUp(t, b, w)
	manualTasks(t, b, events.Spec{Name: "bsync", Mode: events.ModeBroadcast, Overlap: events.OverlapBufferOne})
	if _, err := b.st.Trigger(b.ctx, "bsync", "", "first"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool { return e.Fire == "first" })
	for _, id := range []string{"during", "dropped"} {
		if _, err := b.st.Trigger(b.ctx, "bsync", "", id); err != nil {
			t.Fatal(err)
		}
	}
	awaitEvent(t, b, 30*time.Second, events.TypeMissed, func(e events.Event) bool { return e.Fire == "dropped" })
	once.Do(func() { close(release) })
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "during" })
	if _, err := b.st.Trigger(b.ctx, "bsync", "", "after"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "after" })
	w.stop(t)
	got, _ := runs.snapshot()
	if len(got) != 3 || got["first"] != 1 || got["during"] != 1 || got["after"] != 1 {
		t.Errorf("runs %v, want first, during and after once each", got)
	}
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

// TestHugeMalformedEntry: an entry with 4,000 fields is dead-lettered (its
// first fields copied, the rest counted), and the entry after it runs.
func TestHugeMalformedEntry(t *testing.T) {
	b := setup(t)
	w := startWorker(t, b, consumer.Config{}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
		"good": func(ctx context.Context, f events.Fire) error { return nil },
	})
	awaitNodesUp(t, b, w)
	manualTasks(t, b, events.Spec{Name: "good"})
	stream := b.st.Keys().Fires("default")
	vals := []any{"task", "good"}
	for i := range 4000 {
		vals = append(vals, fmt.Sprintf("junk%d", i), "v")
	}
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: vals}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"task", "good", "id", "after"}}).Err(); err != nil {
		t.Fatal(err)
	}
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		return len(ofType(all, events.TypeDead)) == 1 && countEvents(all, events.TypeCompleted)["after"] == 1
	})
	w.stop(t)
	letters, err := b.rdb.XRange(b.ctx, b.st.Keys().Dead(), "-", "+").Result()
	if err != nil || len(letters) != 1 {
		t.Fatalf("%d dead letters (err %v), want 1", len(letters), err)
	}
	if got := letters[0].Values[store.DeadTruncated]; got != fmt.Sprint(4001-store.MaxDeadFields) {
		t.Errorf("dead letter says %v fields were not copied, want %d", got, 4001-store.MaxDeadFields)
	}
	assertNothingPending(t, b, "default")
}
