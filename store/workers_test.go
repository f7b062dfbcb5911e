package store_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// TestWorkersRegistry: a heartbeat with a state publishes it, one without
// reports it missing until one has; Workers reads it back live, with the
// namespace's visibility timeout in the heartbeat's result; a worker not
// seen for its visibility timeout is not live, one not seen for Forget is
// removed by the next heartbeat, and Leave removes one at once.
func TestWorkersRegistry(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	hb, err := b.worker.Heartbeat(b.ctx, "w1", 2*time.Second, nil, store.Self{})
	if err != nil || !hb.StateMissing || hb.Visibility != 2*time.Second {
		t.Fatalf("first heartbeat without a state: %+v, %v; want the state missing and visibility 2s", hb, err)
	}
	w1 := events.WorkerState{Node: "w1", Queues: []string{"default"}, Tasks: []string{"a", "b"}, Version: 3, Visibility: 2 * time.Second}
	if _, err := b.worker.Heartbeat(b.ctx, "w1", 2*time.Second, nil, store.Self{State: &w1}); err != nil {
		t.Fatal(err)
	}
	hb, err = b.worker.Heartbeat(b.ctx, "w1", 2*time.Second, nil, store.Self{})
	if err != nil || hb.StateMissing {
		t.Fatalf("heartbeat after the state was sent: %+v, %v; want it not missing", hb, err)
	}
	// A second worker with a longer visibility timeout: the namespace's is its.
	w2 := events.WorkerState{Node: "w2", Queues: []string{"q"}, Tasks: []string{"c"}, Version: 2, Visibility: 5 * time.Second, Stale: true}
	if _, err := b.worker.Heartbeat(b.ctx, "w2", 5*time.Second, nil, store.Self{State: &w2}); err != nil {
		t.Fatal(err)
	}
	if hb, err = b.worker.Heartbeat(b.ctx, "w1", 2*time.Second, nil, store.Self{}); err != nil || hb.Visibility != 5*time.Second {
		t.Fatalf("heartbeat of w1 beside w2: %+v, %v; want the namespace's visibility 5s", hb, err)
	}
	ws, err := b.st.Workers(b.ctx)
	if err != nil || len(ws) != 2 {
		t.Fatalf("workers: %+v, %v; want w1 and w2", ws, err)
	}
	if got := ws[0]; got.Node != "w1" || !got.Live || got.Version != 3 || len(got.Tasks) != 2 || got.Visibility != 2*time.Second || got.Stale || got.Seen.IsZero() {
		t.Errorf("w1 read back as %+v", got)
	}
	if got := ws[1]; got.Node != "w2" || !got.Live || !got.Stale || got.Queues[0] != "q" {
		t.Errorf("w2 read back as %+v", got)
	}

	// w2 seen 10s ago: past its 5s, not live.
	now, err := rdb.Time(b.ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(b.ctx, b.st.Keys().WorkersSeen(), redis.Z{Score: float64(now.Add(-10 * time.Second).UnixMilli()), Member: "w2"}).Err(); err != nil {
		t.Fatal(err)
	}
	ws, err = b.st.Workers(b.ctx)
	if err != nil || len(ws) != 2 || ws[1].Live || !ws[0].Live {
		t.Fatalf("workers with w2 seen 10s ago: %+v, %v; want w2 there, not live", ws, err)
	}
	// A heartbeat forgetting workers unseen for 5s removes it.
	if _, err := b.worker.Heartbeat(b.ctx, "w1", 2*time.Second, nil, store.Self{Forget: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if ws, err = b.st.Workers(b.ctx); err != nil || len(ws) != 1 || ws[0].Node != "w1" {
		t.Fatalf("workers after w2 was forgotten: %+v, %v; want w1 alone", ws, err)
	}
	if err := b.worker.Leave(b.ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if ws, err = b.st.Workers(b.ctx); err != nil || len(ws) != 0 {
		t.Fatalf("workers after w1 left: %+v, %v; want none", ws, err)
	}
	if n, err := rdb.Exists(b.ctx, b.st.Keys().Workers(), b.st.Keys().WorkersSeen()).Result(); err != nil || n != 0 {
		t.Errorf("%d registry keys left (%v), want none", n, err)
	}
}
