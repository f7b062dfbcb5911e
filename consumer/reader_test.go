package consumer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// testMetrics counts what a consumer reports.
type testMetrics struct {
	mu        sync.Mutex
	reclaimed map[string]int
	dead      []string
}

func (m *testMetrics) Reclaimed(stream string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reclaimed == nil {
		m.reclaimed = map[string]int{}
	}
	m.reclaimed[stream] += n
}

func (m *testMetrics) DeadLettered(task string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead = append(m.dead, task)
}

// newTestReader returns a reader for worker node over a Redis server of
// its own, with n fires read by w1 there.
func newTestReader(t *testing.T, node string, n int) (*reader, *redis.Client, []store.Delivery, *testMetrics) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	st, ds := readTestFires(t, rdb, "reader", n)
	m := &testMetrics{}
	cfg := Config{Node: node, Block: time.Second, VisibilityTimeout: time.Minute, Prefetch: 100, Metrics: m}
	cl := newClaims(st, testLog(t), node, cfg.VisibilityTimeout, time.Hour, &redisClock{})
	stream := st.Keys().Fires("default")
	return newReader(st, testLog(t), cfg, []string{stream}, time.Hour, cl), rdb, ds, m
}

// TestReaderReadsOneAtATime: a read is asked for only when none is under
// way; its fires are held before Fetch sees them (heartbeats extend them,
// a stop hands them back).
func TestReaderReadsOneAtATime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, rdb, _, _ := newTestReader(t, "w2", 0)
	r.start(5)
	r.start(5) // under way: not asked again (a second send would block: capacity 1)
	if len(r.want) != 1 {
		t.Fatalf("%d reads asked for, want 1", len(r.want))
	}
	for range 3 {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: r.streams[0], Values: map[string]any{"task": "t", "id": "x", "at": "1700000000000"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx) }()
	res := <-r.results
	if res.err != nil || len(res.ds) != 3 {
		t.Fatalf("read %d fires (err %v), want 3", len(res.ds), res.err)
	}
	if fresh := r.claims.notHeld(append([]store.Delivery(nil), res.ds...)); len(fresh) != 0 {
		t.Errorf("%d fires read are not held", len(fresh))
	}
	r.start(5)
	if len(r.want) != 0 {
		t.Error("a read was asked for before the last one's result was taken")
	}
	r.finished(ctx, res)
	r.start(5) // blocks in XREADGROUP until ctx ends
	cancel()
	await(t, done, "the read loop did not end with its context")
	if len(r.results) != 0 {
		if res := <-r.results; res.err != nil || len(res.ds) != 0 {
			t.Errorf("a read cut by the stop returned %d fires, error %v; want none, no error", len(res.ds), res.err)
		}
	}
}

// setPulse makes the namespace's pulse say a worker reached Redis just now
// and no quiet period is on (quiet: how long one is, from now).
func setPulse(t *testing.T, rdb *redis.Client, r *reader, quiet time.Duration) {
	t.Helper()
	ctx := context.Background()
	now, err := r.st.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, r.st.Keys().Pulse(), "last", now.UnixMilli(), "quiet", now.Add(quiet).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
}

// idle makes ds pending with consumer for an hour.
func idle(t *testing.T, rdb *redis.Client, consumer string, ds ...store.Delivery) {
	t.Helper()
	args := []any{"XCLAIM", ds[0].Stream, store.WorkerGroup, consumer, 0}
	for _, d := range ds {
		args = append(args, d.EntryID)
	}
	if err := rdb.Do(context.Background(), append(args, "IDLE", time.Hour.Milliseconds(), "JUSTID")...).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestReaderReclaims: a sweep takes over the idle fires of workers that
// stopped answering, but not one this worker holds already (its
// heartbeats failed: it runs here, and must not run twice), holds them,
// counts them, and paces the sweeps: again at once while the last left
// more, else after reclaimEvery.
func TestReaderReclaims(t *testing.T) {
	ctx := context.Background()
	r, rdb, ds, m := newTestReader(t, "w2", 4)
	idle(t, rdb, "w1", ds[1:]...)
	idle(t, rdb, "w2", ds[0])
	r.claims.hold(ds[:1], time.Now())
	setPulse(t, rdb, r, 0)
	if !r.reclaimDue() {
		t.Fatal("no reclaim due at the first Fetch")
	}
	got, err := r.sweep(ctx, 2)
	if err != nil || len(got) != 1 || got[0].EntryID != ds[1].EntryID {
		t.Fatalf("first sweep took %v (err %v), want the second fire (the first is held here)", got, err)
	}
	if !r.reclaimDue() {
		t.Error("the sweep took some, yet the next waits")
	}
	got, err = r.sweep(ctx, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("second sweep took %d (err %v), want the last 2", len(got), err)
	}
	if got, err = r.sweep(ctx, 10); err != nil || len(got) != 0 {
		t.Fatalf("third sweep took %d (err %v), want none", len(got), err)
	}
	if r.reclaimDue() {
		t.Error("the sweep found nothing, yet the next is due before reclaimEvery")
	}
	if fresh := r.claims.notHeld(append([]store.Delivery(nil), ds...)); len(fresh) != 0 {
		t.Errorf("%d fires reclaimed are not held", len(fresh))
	}
	if n := m.reclaimed[r.streams[0]]; n != 3 {
		t.Errorf("metrics counted %d reclaimed, want 3", n)
	}
	r.reclaimEvery = 0
	if !r.reclaimDue() {
		t.Error("no reclaim due after reclaimEvery")
	}
}

// TestReaderWaitsOutAQuietPeriod: after an outage of every worker, a
// reclaim takes nothing, so the live workers extend their claims first.
func TestReaderWaitsOutAQuietPeriod(t *testing.T) {
	r, rdb, ds, _ := newTestReader(t, "w2", 1)
	idle(t, rdb, "w1", ds...)
	setPulse(t, rdb, r, time.Hour)
	got, more, err := r.reclaim(context.Background(), r.streams[0], 10)
	if err != nil || len(got) != 0 || more {
		t.Fatalf("reclaim in a quiet period took %d (more %v, err %v), want none", len(got), more, err)
	}
	if !r.quietLogged {
		t.Error("the quiet period was not logged")
	}
}

// TestReadAheadOnlyForShortRuns: no fires are read ahead until the recent
// runs average under PrefetchRunLimit, and none with no Prefetch.
func TestReadAheadOnlyForShortRuns(t *testing.T) {
	r, _, _, _ := newTestReader(t, "w2", 0)
	if n := r.readAhead(); n != 0 {
		t.Fatalf("read ahead %d before any run, want 0", n)
	}
	for range 40 {
		r.noteRun(time.Millisecond)
	}
	if n := r.readAhead(); n != 100 {
		t.Errorf("read ahead %d after short runs, want Prefetch (100)", n)
	}
	for range 40 {
		r.noteRun(time.Second)
	}
	if n := r.readAhead(); n != 0 {
		t.Errorf("read ahead %d after long runs, want 0", n)
	}
	r.prefetch = 0
	for range 40 {
		r.noteRun(0)
	}
	if n := r.readAhead(); n != 0 {
		t.Errorf("read ahead %d with no Prefetch, want 0", n)
	}
}
