package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// TestFlushOfStartedEventsAloneWakesDrain: a flush that writes only
// started events (no outcome queued: runs handed back at a stop) still
// wakes drain, which would otherwise wait out its limit and report
// outcomes lost; and it writes them all, in order, in batches.
func TestFlushOfStartedEventsAloneWakesDrain(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	c, err := New(rdb, Config{Node: "w1", Namespace: "flush", FlushBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_000).UTC()
	for i := range 10 {
		c.Start(&store.Delivery{Queue: "default", Fire: events.Fire{ID: events.FireID("a", at.Add(time.Duration(i)*time.Second)), Task: "a", At: at, Attempt: 1}})
	}
	c.outbox.mu.Lock()
	sig := c.outbox.flushedSig
	c.outbox.mu.Unlock()
	n, err := c.outbox.flushOnce(context.Background())
	if err != nil || n != 10 {
		t.Fatalf("flush took %d (err %v), want the 10 started events", n, err)
	}
	select {
	case <-sig:
	default:
		t.Fatal("a flush of started events alone did not signal drain")
	}
	if len(c.outbox.started) != 0 || c.outbox.startedOff != 0 {
		t.Errorf("queue after the flush: %d events, offset %d; want empty, from the head", len(c.outbox.started), c.outbox.startedOff)
	}
	got, err := c.st.RangeEvents(context.Background(), "-", "+")
	if err != nil || len(got) != 10 {
		t.Fatalf("%d events in the stream (err %v), want 10", len(got), err)
	}
	for i, e := range got {
		if want := events.FireID("a", at.Add(time.Duration(i)*time.Second)); e.Type != events.TypeStarted || e.Fire != want {
			t.Errorf("event %d: %s %s, want started %s", i, e.Type, e.Fire, want)
		}
	}
}

// newTestOutbox returns an outbox over a Redis server of its own, n fires
// read by w1 on it, and the batches it reports recorded.
func newTestOutbox(t *testing.T, n, batch int) (*outbox, *redis.Client, []store.Delivery, chan []*store.Outcome) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	st, ds := readTestFires(t, rdb, "outbox", n)
	recorded := make(chan []*store.Outcome, 100)
	ob := newOutbox(st, testLog(t), "w1", batch, time.Hour, func(b []*store.Outcome) {
		recorded <- append([]*store.Outcome(nil), b...)
	})
	return ob, rdb, ds, recorded
}

func completed(d store.Delivery) *store.Outcome {
	return &store.Outcome{Delivery: d, Events: []events.Event{{Type: events.TypeCompleted, Task: d.Fire.Task, Fire: d.Fire.ID,
		At: d.Fire.At, Attempt: 1, Worker: "w1", Queue: d.Queue, Status: events.StatusCompleted}}}
}

// TestOutboxWritesStartsBeforeOutcomes: a flush writes the started events
// queued, then up to a batch of outcomes, acking their entries, and tells
// the claims which were recorded; a failed flush keeps both queues whole.
func TestOutboxWritesStartsBeforeOutcomes(t *testing.T) {
	ctx := context.Background()
	ob, rdb, ds, recorded := newTestOutbox(t, 3, 2)
	for _, d := range ds {
		ob.start(startRec{task: d.Fire.Task, fire: d.Fire.ID, queue: d.Queue, at: d.Fire.At, attempt: 1})
		ob.add(completed(d))
	}
	dead, cancel := context.WithCancel(ctx)
	cancel()
	if n, err := ob.flushOnce(dead); err == nil || n != 0 {
		t.Fatalf("a flush that could not reach Redis took %d (err %v), want an error and nothing", n, err)
	}
	if len(ob.outcomes) != 3 || len(ob.started)-ob.startedOff != 3 {
		t.Fatalf("after a failed flush: %d outcomes, %d started events queued; want all 3 of each", len(ob.outcomes), len(ob.started)-ob.startedOff)
	}
	if n, err := ob.flushOnce(ctx); err != nil || n != 5 {
		t.Fatalf("flush took %d (err %v), want 3 started events and a batch of 2 outcomes", n, err)
	}
	if n, err := ob.flushOnce(ctx); err != nil || n != 1 {
		t.Fatalf("second flush took %d (err %v), want the last outcome", n, err)
	}
	if n, err := ob.flushOnce(ctx); err != nil || n != 0 {
		t.Fatalf("third flush took %d (err %v), want nothing", n, err)
	}
	var got []string
	for range 2 {
		for _, o := range <-recorded {
			got = append(got, o.Delivery.EntryID)
		}
	}
	if len(got) != 3 || got[0] != ds[0].EntryID || got[2] != ds[2].EntryID {
		t.Errorf("recorded %v, want the 3 entries in order", got)
	}
	evs, err := ob.st.RangeEvents(ctx, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	var types []events.Type
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if len(types) != 6 || types[2] != events.TypeStarted || types[3] != events.TypeCompleted {
		t.Errorf("events %v, want the 3 started events, then the 3 completed", types)
	}
	if p, err := rdb.XPending(ctx, ds[0].Stream, store.WorkerGroup).Result(); err != nil || p.Count != 0 {
		t.Errorf("pending after the flushes: %+v (err %v), want every entry acked", p, err)
	}
}

// TestOutboxWaitsForARelease: while early fires are being released, the
// flush waits, until the release ends or for at most releaseHold; with no
// release under way it does not wait.
func TestOutboxWaitsForARelease(t *testing.T) {
	ctx := context.Background()
	ob, _, _, _ := newTestOutbox(t, 0, 10)
	wait := func() chan struct{} {
		done := make(chan struct{})
		go func() { defer close(done); ob.waitRelease(ctx) }()
		return done
	}
	await(t, wait(), "a flush with no release under way waits")

	ob.setReleasing(true)
	done := wait()
	ob.signal() // more outcomes: it waits on
	ob.setReleasing(false)
	await(t, done, "the end of the release did not end the wait (the hold is an hour)")

	ob.releaseHold = time.Millisecond
	ob.setReleasing(true)
	await(t, wait(), "the wait went on past releaseHold")
	ob.endRelease()
	if ob.releasing.Load() {
		t.Error("the release goes on after endRelease")
	}
}

// TestOutboxDrain: drain returns once the flush loop has written what is
// queued, and at its limit when Redis cannot be reached, the outcomes
// still queued.
func TestOutboxDrain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ob, rdb, ds, _ := newTestOutbox(t, 2, 10)
	done := make(chan struct{})
	go func() { defer close(done); ob.run(ctx) }()
	ob.add(completed(ds[0]))
	drained := make(chan struct{})
	go func() { defer close(drained); ob.drain(time.Hour) }()
	await(t, drained, "drain did not return when the flush loop wrote the outcome")
	if len(ob.outcomes) != 0 {
		t.Errorf("%d outcomes queued after drain, want none", len(ob.outcomes))
	}
	cancel()
	<-done
	// Redis gone: the loop is stopped, and nothing is written.
	_ = rdb.Close()
	ob.add(completed(ds[1]))
	ob.drain(time.Millisecond)
	if len(ob.outcomes) != 1 {
		t.Errorf("%d outcomes queued after a drain that could not write, want 1", len(ob.outcomes))
	}
}
