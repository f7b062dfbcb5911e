package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// TestHeartbeatExtendsOnlyClaimsGrowingOld: a heartbeat sends the held
// fires whose claims were last reset long enough ago, and those only
// (early fires read moments ago cost Redis nothing); it resets their
// claims, and a fire another worker took is marked lost, reported once and
// not sent again.
func TestHeartbeatExtendsOnlyClaimsGrowingOld(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	c, err := New(rdb, Config{Node: "w1", Namespace: "hb"})
	if err != nil {
		t.Fatal(err)
	}
	stream := c.st.Keys().FireStream(events.DefaultQueue, events.ModeSingle)
	if err := c.st.EnsureGroup(ctx, stream); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_000).UTC()
	for _, task := range []string{"old", "old2", "fresh", "taken"} {
		f := events.Fire{ID: events.FireID(task, at), Task: task, At: at, Attempt: 1}
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: f.Fields()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := c.st.ReadFires(ctx, "w1", []string{stream}, 4, 0)
	if err != nil || len(ds) != 4 {
		t.Fatalf("read %d (err %v), want 4", len(ds), err)
	}
	now := time.Now()
	longAgo := now.Add(-time.Minute)
	c.claims.hold([]store.Delivery{ds[0], ds[1], ds[3]}, longAgo)
	c.claims.hold([]store.Delivery{ds[2]}, now)
	// In Redis every claim is an hour idle; "taken" is another worker's.
	ids := []any{ds[0].EntryID, ds[1].EntryID, ds[2].EntryID, ds[3].EntryID}
	if err := rdb.Do(ctx, append(append([]any{"XCLAIM", stream, store.WorkerGroup, "w1", 0}, ids...), "IDLE", time.Hour.Milliseconds(), "JUSTID")...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: stream, Group: store.WorkerGroup, Consumer: "w2", Messages: []string{ds[3].EntryID}}).Err(); err != nil {
		t.Fatal(err)
	}

	n, err := c.claims.heartbeat(ctx, 5*time.Second)
	if err != nil || n != 3 {
		t.Fatalf("heartbeat sent %d fires (err %v), want the 3 not reset for 5s", n, err)
	}
	for i, want := range []time.Duration{0, 0, time.Hour} {
		p, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: store.WorkerGroup,
			Start: ds[i].EntryID, End: ds[i].EntryID, Count: 1}).Result()
		if err != nil || len(p) != 1 {
			t.Fatalf("%s: pending %v (err %v)", ds[i].Fire.Task, p, err)
		}
		if reset := p[0].Idle < time.Minute; reset != (want == 0) {
			t.Errorf("%s: idle %s after the heartbeat; want the claim reset: %v", ds[i].Fire.Task, p[0].Idle, want == 0)
		}
	}
	// Nothing is sent again: the two just reset, the fresh one still
	// fresh, and the one taken over is no longer this worker's to extend.
	if n, err := c.claims.heartbeat(ctx, 5*time.Second); err != nil || n != 0 {
		t.Errorf("the next heartbeat sent %d fires (err %v), want none", n, err)
	}
	c.claims.mu.Lock()
	defer c.claims.mu.Unlock()
	if h := c.claims.held[heldKey(stream, ds[3].EntryID)]; !h.lost {
		t.Errorf("the fire another worker took is not marked lost: %+v", h)
	}
	for i, want := range []bool{true, true, false, false} {
		h := c.claims.held[heldKey(stream, ds[i].EntryID)]
		if moved := h.reset.After(now.Add(-time.Second)) && h.reset != now; moved != want {
			t.Errorf("%s: reset time %s (held at %s); want it moved to the heartbeat: %v", ds[i].Fire.Task, h.reset, longAgo, want)
		}
	}
}

// newTestClaims starts a Redis server and returns claims of worker w1 over
// it, and n fires appended to the default queue's stream and read by w1.
func newTestClaims(t *testing.T, n int) (*claims, *redis.Client, []store.Delivery) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	st, ds := readTestFires(t, rdb, "claims", n)
	return newClaims(st, zerolog.New(zerolog.NewTestWriter(t)), "w1", time.Minute, 10*time.Second, &redisClock{}), rdb, ds
}

// pendingIdle is how long entry id has been idle in the worker group.
func pendingIdle(t *testing.T, rdb *redis.Client, d store.Delivery) time.Duration {
	t.Helper()
	p, err := rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: d.Stream, Group: store.WorkerGroup,
		Start: d.EntryID, End: d.EntryID, Count: 1}).Result()
	if err != nil || len(p) != 1 {
		t.Fatalf("%s: pending %v (err %v)", d.EntryID, p, err)
	}
	return p[0].Idle
}

// TestStopHandsBackAllButQueuedOutcomes: at a stop, every held fire is
// handed back (made idle for 100 visibility timeouts, so any worker's
// next reclaim takes it), except those whose outcome is queued: they are
// acked when it is recorded, and handed back they could run twice.
func TestStopHandsBackAllButQueuedOutcomes(t *testing.T) {
	c, rdb, ds := newTestClaims(t, 3)
	c.hold(ds, time.Now())
	c.markQueued(ds[1])
	c.handBackAll()
	for i, back := range []bool{true, false, true} {
		if idle := pendingIdle(t, rdb, ds[i]); (idle >= 100*c.visibility-time.Minute) != back {
			t.Errorf("fire %d: idle %s after the stop; want handed back (idle 100 visibility timeouts): %v", i, idle, back)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.held[heldKey(ds[1].Stream, ds[1].EntryID)]; !ok || len(c.held) != 1 {
		t.Errorf("held after the stop: %v; want only the fire with a queued outcome", c.held)
	}
}

// TestHandBackGivesUpOnlyWhatIsHeld: a hand-back gives back the fires it
// is given that are held, and forgets them; one released (its outcome
// recorded elsewhere) is not sent.
func TestHandBackGivesUpOnlyWhatIsHeld(t *testing.T) {
	c, rdb, ds := newTestClaims(t, 3)
	c.hold(ds, time.Now())
	c.release(ds[0])
	c.handBack(ds[:2])
	for i, back := range []bool{false, true, false} {
		if idle := pendingIdle(t, rdb, ds[i]); (idle >= 100*c.visibility-time.Minute) != back {
			t.Errorf("fire %d: idle %s; want handed back: %v", i, idle, back)
		}
	}
	if fresh := c.notHeld(append([]store.Delivery(nil), ds...)); len(fresh) != 2 || fresh[0].EntryID != ds[0].EntryID || fresh[1].EntryID != ds[1].EntryID {
		t.Errorf("not held after the hand-back: %v, want the released and the handed-back fires", fresh)
	}
}

// TestRecordedOutcomesAreForgotten: forget drops the entries of recorded
// outcomes, and ignores broadcast ones and outcomes of no entry.
func TestRecordedOutcomesAreForgotten(t *testing.T) {
	c, _, ds := newTestClaims(t, 2)
	c.hold(ds, time.Now())
	c.markOverlap(ds[0])
	c.mu.Lock()
	if !c.held[heldKey(ds[0].Stream, ds[0].EntryID)].Overlap {
		t.Error("markOverlap did not mark the fire: its heartbeats would not extend the task's running key")
	}
	c.mu.Unlock()
	bc := ds[1]
	bc.Broadcast = true
	c.forget([]*store.Outcome{{Delivery: ds[0]}, {Delivery: bc}, {}})
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.held[heldKey(ds[1].Stream, ds[1].EntryID)]; !ok || len(c.held) != 1 {
		t.Errorf("held after forget: %v, want only the second fire (its outcome was a broadcast one's)", c.held)
	}
}
