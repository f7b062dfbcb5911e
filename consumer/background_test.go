package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// Tests of the background loops: broadcaster, retryMover, trimmer.

func xadd(t *testing.T, rdb *redis.Client, stream, id string, f events.Fire) string {
	t.Helper()
	got, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, ID: id, Values: f.Fields()}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestBroadcasterRunsWhatIsDueFromItsStart: a worker coming up reads the
// broadcast stream from HoldEarly back: of the entries appended before it
// was up it runs those due from then on (early fires), not older slots,
// and every entry appended after.
func TestBroadcasterRunsWhatIsDueFromItsStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := redistest.Start(t).Client(t)
	st, _ := readTestFires(t, rdb, "bcast", 0)
	stream := st.Keys().Broadcast(events.DefaultQueue)
	up, err := st.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fire := func(name string, at time.Time) events.Fire {
		return events.Fire{ID: events.FireID(name, at), Task: name, At: at, Attempt: 1}
	}
	id := func(d time.Duration) string { return fmt.Sprintf("%d-0", up.Add(d).UnixMilli()) }
	xadd(t, rdb, stream, id(-20*time.Second), fire("before-hold", up.Add(time.Second))) // before the cursor
	xadd(t, rdb, stream, id(-5*time.Second), fire("past-slot", up.Add(-5*time.Second))) // its slot before up
	xadd(t, rdb, stream, id(-3*time.Second), fire("early", up.Add(2*time.Second)))      // due after up
	b := newBroadcaster(st, testLog(t), []string{stream}, 10*time.Millisecond, 10*time.Second)
	if err := b.setUp(ctx, up); err != nil {
		t.Fatal(err)
	}
	xadd(t, rdb, stream, "*", fire("after", up.Add(-time.Hour))) // appended after up: runs whatever its slot
	done := make(chan struct{})
	go func() { defer close(done); b.run(ctx) }()
	var got []string
	for len(got) < 2 {
		select {
		case ds := <-b.out:
			for _, d := range ds {
				got = append(got, d.Fire.Task)
			}
		case <-time.After(time.Minute):
			t.Fatalf("read %v in a minute, want early and after", got)
		}
	}
	if len(got) != 2 || got[0] != "early" || got[1] != "after" {
		t.Errorf("read %v, want [early after]", got)
	}
	cancel()
	await(t, done, "the broadcast loop did not end with its context")
	if more := b.take(); len(more) != 0 {
		t.Errorf("read more: %v", more)
	}
}

// TestRetryMoverMovesDueRetries: a retry goes back to its stream when
// due, not after the poll interval; and one scheduled while the loop
// waits out the poll interval goes as soon as the loop is poked.
func TestRetryMoverMovesDueRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := redistest.Start(t).Client(t)
	st, ds := readTestFires(t, rdb, "retry", 2)
	stream := ds[0].Stream
	last := ds[1].EntryID
	retry := func(d store.Delivery, in time.Duration) {
		if _, err := st.Finish(ctx, "w1", []*store.Outcome{{Delivery: d, RetryIn: in}}); err != nil {
			t.Fatal(err)
		}
	}
	// awaitEntry waits for the next entry on the stream (a blocking read:
	// an event, not a sleep) and returns its attempt.
	awaitEntry := func() string {
		t.Helper()
		res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Count: 1, Block: time.Minute}).Result()
		if err != nil {
			t.Fatalf("no retry moved to the stream within a minute: %v", err)
		}
		m := res[0].Messages[0]
		last = m.ID
		return fmt.Sprint(m.Values[events.FieldAttempt])
	}
	m := newRetryMover(st, testLog(t), time.Hour)
	retry(ds[0], 50*time.Millisecond)
	done := make(chan struct{})
	go func() { defer close(done); m.run(ctx) }()
	if a := awaitEntry(); a != "2" {
		t.Errorf("moved entry has attempt %s, want 2", a)
	}
	retry(ds[1], time.Millisecond)
	m.poke()
	if a := awaitEntry(); a != "2" {
		t.Errorf("moved entry has attempt %s, want 2", a)
	}
	cancel()
	await(t, done, "the retry loop did not end with its context")
}

// TestTrimmerPass: a pass trims the acked fire entries older than the
// retention, never a pending one or one after it; removes the group's
// consumers that hold nothing and were idle for pruneIdle, not one that
// holds a fire; and trims the events stream by age when asked.
func TestTrimmerPass(t *testing.T) {
	ctx := context.Background()
	// One entry per stream node, so approximate trims are exact.
	rdb := redistest.Start(t, "--stream-node-max-entries", "1").Client(t)
	st, _ := readTestFires(t, rdb, "trim", 0)
	stream := st.Keys().Fires(events.DefaultQueue)
	var ids []string
	for i := range 4 {
		at := time.UnixMilli(int64(1000 * (i + 1)))
		ids = append(ids, xadd(t, rdb, stream, fmt.Sprintf("%d-0", at.UnixMilli()), events.Fire{ID: events.FireID("t", at), Task: "t", At: at, Attempt: 1}))
	}
	if _, err := st.ReadFires(ctx, "w1", []string{stream}, 4, 0); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAck(ctx, stream, store.WorkerGroup, ids[0], ids[1], ids[3]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XGroupCreateConsumer(ctx, stream, store.WorkerGroup, "gone").Err(); err != nil {
		t.Fatal(err)
	}
	events0 := st.Keys().Events()
	for i := range 3 {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: events0, ID: fmt.Sprintf("%d-0", 1000*(i+1)), Values: []string{"type", "x"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	tr := &trimmer{st: st, log: testLog(t), every: time.Hour, fires: []string{stream}, groups: []string{stream},
		retention: time.Minute, pruneIdle: -1 /* any idle time: "gone" was made a moment ago */, eventsMaxAge: time.Minute}
	tr.pass(ctx)
	left, err := rdb.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0].ID != ids[2] {
		t.Errorf("fire stream after the trim: %v, want the pending entry and the one after it", left)
	}
	cs, err := rdb.XInfoConsumers(ctx, stream, store.WorkerGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Name != "w1" {
		t.Errorf("consumers after the pass: %v, want w1 alone (it holds a fire)", cs)
	}
	if n, err := rdb.XLen(ctx, events0).Result(); err != nil || n != 0 {
		t.Errorf("%d events left (err %v), want the old ones trimmed", n, err)
	}
}
