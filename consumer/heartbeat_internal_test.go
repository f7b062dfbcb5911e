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
	c.hold([]store.Delivery{ds[0], ds[1], ds[3]}, longAgo)
	c.hold([]store.Delivery{ds[2]}, now)
	// In Redis every claim is an hour idle; "taken" is another worker's.
	ids := []any{ds[0].EntryID, ds[1].EntryID, ds[2].EntryID, ds[3].EntryID}
	if err := rdb.Do(ctx, append(append([]any{"XCLAIM", stream, store.WorkerGroup, "w1", 0}, ids...), "IDLE", time.Hour.Milliseconds(), "JUSTID")...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: stream, Group: store.WorkerGroup, Consumer: "w2", Messages: []string{ds[3].EntryID}}).Err(); err != nil {
		t.Fatal(err)
	}

	n, err := c.heartbeat(ctx, 5*time.Second)
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
	if n, err := c.heartbeat(ctx, 5*time.Second); err != nil || n != 0 {
		t.Errorf("the next heartbeat sent %d fires (err %v), want none", n, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.held[heldKey(stream, ds[3].EntryID)]; !h.lost {
		t.Errorf("the fire another worker took is not marked lost: %+v", h)
	}
	for i, want := range []bool{true, true, false, false} {
		h := c.held[heldKey(stream, ds[i].EntryID)]
		if moved := h.reset.After(now.Add(-time.Second)) && h.reset != now; moved != want {
			t.Errorf("%s: reset time %s (held at %s); want it moved to the heartbeat: %v", ds[i].Fire.Task, h.reset, longAgo, want)
		}
	}
}
