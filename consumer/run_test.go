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

// TestRunStopsInOrder: a consumer run and stopped with fires in hand
// records the outcomes it was given, hands back the fires it holds
// without one (another worker takes them at once), and says node_down
// after the rest; Fetch returns nothing once it stops. Every interval is
// short, so nothing waits on a production default.
func TestRunStopsInOrder(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	c, err := New(rdb, Config{Node: "w1", Namespace: "run", Logger: testLog(t), VisibilityTimeout: time.Minute,
		Block: 10 * time.Millisecond, TrimInterval: time.Millisecond,
		SpecCheckInterval: time.Millisecond,
		timing:            timing{heartbeat: time.Millisecond, reclaim: time.Millisecond, retryPoll: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	stream := c.st.Keys().Fires(events.DefaultQueue)
	at := time.UnixMilli(1_700_000_000_000).UTC()
	for _, task := range []string{"done", "held1", "held2"} {
		xadd(t, rdb, stream, "*", events.Fire{ID: events.FireID(task, at), Task: task, At: at, Attempt: 1})
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(runCtx) }()
	var ds []store.Delivery
	for len(ds) < 3 {
		got, err := c.Fetch(ctx, 3-len(ds))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, got...)
	}
	if ds[0].Fire.Task != "done" {
		t.Fatalf("fetched %v first, want done", ds[0].Fire.Task)
	}
	c.Start(&ds[0])
	c.Finish(&ds[0], Result{Started: time.Now(), Finished: time.Now()})
	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of its stop")
	}
	if got, err := c.Fetch(ctx, 1); err != nil || len(got) != 0 {
		t.Errorf("Fetch after the stop: %v (err %v), want nothing", got, err)
	}

	evs, err := c.st.RangeEvents(ctx, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	var types []events.Type
	for _, e := range evs {
		types = append(types, e.Type)
	}
	want := []events.Type{events.TypeNodeUp, events.TypeStarted, events.TypeCompleted, events.TypeNodeDown}
	if len(types) != len(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
	p, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: store.WorkerGroup, Start: "-", End: "+", Count: 10}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || p[0].ID != ds[1].EntryID || p[1].ID != ds[2].EntryID {
		t.Fatalf("pending after the stop: %v, want the two fires not finished", p)
	}
	for _, e := range p {
		if e.Idle < time.Hour {
			t.Errorf("%s: idle %s after the stop, want it handed back (idle 100 visibility timeouts)", e.ID, e.Idle)
		}
	}
}

// TestOffFormsReachTheirTypes: NoHoldEarly leaves the early hold with no
// window (and the broadcast cursors where the streams end), NoPrefetch
// the reader with nothing to read ahead; the defaults give both theirs.
func TestOffFormsReachTheirTypes(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	off, err := New(rdb, Config{NoHoldEarly: true, NoPrefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	if off.early.window != 0 || off.bcast.holdEarly != 0 || off.reader.prefetch != 0 {
		t.Errorf("off: early window %s, broadcast hold %s, prefetch %d; want all 0", off.early.window, off.bcast.holdEarly, off.reader.prefetch)
	}
	on, err := New(rdb, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if on.early.window != 10*time.Second || on.bcast.holdEarly != 10*time.Second || on.reader.prefetch != 200 {
		t.Errorf("defaults: early window %s, broadcast hold %s, prefetch %d; want 10s, 10s, 200", on.early.window, on.bcast.holdEarly, on.reader.prefetch)
	}
}
