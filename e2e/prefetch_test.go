package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// pendingOf is how many fires of the default queue the group holds for
// one worker.
func pendingOf(t *testing.T, b testBundle, node string) int64 {
	t.Helper()
	p, err := b.rdb.XPending(b.ctx, b.st.Keys().Fires(events.DefaultQueue), store.WorkerGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Consumers[node]
}

// awaitPending polls (reads and hand-backs have no event) until the fires
// node holds satisfy ok.
func awaitPending(t *testing.T, b testBundle, node string, ok func(int64) bool, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n := pendingOf(t, b, node); !ok(n); n = pendingOf(t, b, node) {
		if time.Now().After(deadline) {
			t.Fatalf("worker %s holds %d fires, want %s", node, n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// handedBack is how many fires node handed back that no worker has taken
// yet: held by node~handback, their idle time set past any visibility
// timeout.
func handedBack(t *testing.T, b testBundle, node string) int {
	t.Helper()
	ps, err := b.rdb.XPendingExt(b.ctx, &redis.XPendingExtArgs{Stream: b.st.Keys().Fires(events.DefaultQueue),
		Group: store.WorkerGroup, Start: "-", End: "+", Count: 10_000, Consumer: node + "~handback"}).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range ps {
		if p.Idle > 2*time.Hour {
			n++
		}
	}
	return n
}

// trigger appends n manual fires of task.
func trigger(t *testing.T, b testBundle, task string, n int) {
	t.Helper()
	for i := range n {
		if _, err := b.st.Trigger(b.ctx, task, "", fmt.Sprintf("%s-%d", task, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadAheadBehindLongRunsIsHandedBack: a worker whose runs were short
// reads fires beyond its free runs (it holds more than its concurrency).
// When its runs then turn long, what it read ahead is handed back once it
// has waited dispatcher.ReadAheadWait, and another worker runs it while
// the first one's runs still go on, although the visibility timeout (an
// hour) would otherwise keep it for an hour. Every fire runs once.
func TestReadAheadBehindLongRunsIsHandedBack(t *testing.T) {
	b := setup(t)
	const quick, slow = 300, 100
	runs, slowRuns := newRunLog(), newRunLog()
	gate := make(chan struct{})
	var gateOnce sync.Once
	open := func() { gateOnce.Do(func() { close(gate) }) }
	t.Cleanup(open)
	handlers := func(node string) map[string]dispatcher.HandlerFunc {
		return map[string]dispatcher.HandlerFunc{
			"quick": func(ctx context.Context, f events.Fire) error { runs.add(node, f); return nil },
			"slow": func(ctx context.Context, f events.Fire) error {
				runs.add(node, f)
				slowRuns.add(node, f)
				if node == "w0" {
					<-gate // a long run
				}
				return nil
			},
		}
	}
	cc := consumer.Config{VisibilityTimeout: time.Hour}
	cc.Node = "w0"
	w0 := startWorker(t, b, cc, dispatcher.Config{Concurrency: 2}, handlers("w0"))
	awaitNodesUp(t, b, w0)
	manualTasks(t, b, events.Spec{Name: "quick"}, events.Spec{Name: "slow"})

	// Short runs first, so the worker reads ahead.
	trigger(t, b, "quick", quick)
	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		return len(countEvents(all, events.TypeCompleted)) == quick
	})
	// The slow fires arrive at once (plain XADDs in one transaction, as a
	// reader sees them): it reads them all, beyond its two runs.
	if _, err := b.rdb.TxPipelined(b.ctx, func(p redis.Pipeliner) error {
		for range slow {
			p.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Fires(events.DefaultQueue), Values: []any{events.FieldTask, "slow"}})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	awaitPending(t, b, "w0", func(n int64) bool { return n == slow }, "all the slow fires: its runs and the rest read ahead")
	running := func() int { _, by := slowRuns.snapshot(); return len(by) }
	for deadline := time.Now().Add(30 * time.Second); running() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no slow fire started on w0")
		}
		time.Sleep(10 * time.Millisecond) // the handler's start has no event here
	}
	// Its runs (one or two: the slow fires may reach it while a run slot
	// is still being freed) block on the gate; the others, read ahead,
	// are handed back.
	deadline := time.Now().Add(30 * time.Second)
	for handedBack(t, b, "w0") != slow-running() {
		if time.Now().After(deadline) {
			t.Fatalf("worker w0 handed back %d fires, want the %d it read ahead", handedBack(t, b, "w0"), slow-running())
		}
		time.Sleep(10 * time.Millisecond) // polling Redis: a hand-back has no event
	}
	ranOnW0 := running()
	if ranOnW0 < 1 || ranOnW0 > 2 {
		t.Fatalf("%d slow fires started on w0, want 1 or 2 (its runs)", ranOnW0)
	}

	// A namespace's first worker starts a quiet period of one visibility
	// timeout (it cannot tell a new namespace from Redis back after an
	// outage), in which nothing is reclaimed. End it, as an hour of life
	// would: what w1 takes now was handed back, not timed out.
	if err := b.rdb.HDel(b.ctx, b.st.Keys().Pulse(), "quiet").Err(); err != nil {
		t.Fatal(err)
	}
	cc.Node = "w1"
	w1 := startWorker(t, b, cc, dispatcher.Config{Concurrency: 10}, handlers("w1"))
	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		return len(countEvents(all, events.TypeCompleted)) == quick+slow-ranOnW0
	})
	if n := running(); n != slow {
		t.Fatalf("%d slow fires started, want all %d", n, slow)
	}
	open() // w0's long runs end
	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		return len(countEvents(all, events.TypeCompleted)) == quick+slow
	})
	w0.stop(t)
	w1.stop(t)
	count, by := runs.snapshot()
	if len(count) != quick+slow {
		t.Fatalf("%d fires ran, want %d", len(count), quick+slow)
	}
	for id, k := range count {
		if k != 1 {
			t.Errorf("fire %s ran %d times (on %v)", id, k, by[id])
		}
	}
	slowOn := map[string]int{}
	_, slowBy := slowRuns.snapshot()
	for _, nodes := range slowBy {
		slowOn[nodes[0]]++
	}
	if slowOn["w0"] != ranOnW0 || slowOn["w1"] != slow-ranOnW0 {
		t.Errorf("slow fires ran %v, want %d on w0 (its runs) and %d on w1 (handed back)", slowOn, ranOnW0, slow-ranOnW0)
	}
}

// TestNoPrefetchForLongRuns: a worker whose runs are long reads no more
// than its free runs, so a second worker shares the backlog instead of
// finding it all held by the first.
func TestNoPrefetchForLongRuns(t *testing.T) {
	b := setup(t)
	const n = 60
	runs := newRunLog()
	handlers := func(node string) map[string]dispatcher.HandlerFunc {
		return map[string]dispatcher.HandlerFunc{"long": func(ctx context.Context, f events.Fire) error {
			runs.add(node, f)
			time.Sleep(3 * consumer.PrefetchRunLimit) // the work: longer than the read-ahead limit
			return nil
		}}
	}
	w0 := startWorker(t, b, consumer.Config{Node: "w0"}, dispatcher.Config{Concurrency: 1}, handlers("w0"))
	awaitNodesUp(t, b, w0)
	manualTasks(t, b, events.Spec{Name: "long"})
	trigger(t, b, "long", n)
	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		return len(countEvents(all, events.TypeCompleted)) >= 5
	})
	if held := pendingOf(t, b, "w0"); held > 1 {
		t.Errorf("w0 (one run, long runs) holds %d fires, want at most 1", held)
	}
	w1 := startWorker(t, b, consumer.Config{Node: "w1"}, dispatcher.Config{Concurrency: 1}, handlers("w1"))
	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		return len(countEvents(all, events.TypeCompleted)) == n
	})
	w0.stop(t)
	w1.stop(t)
	_, by := runs.snapshot()
	onW1 := 0
	for _, nodes := range by {
		if nodes[0] == "w1" {
			onW1++
		}
	}
	if onW1 < 10 {
		t.Errorf("the second worker ran %d of the %d fires, want a share (at least 10): the first held the backlog", onW1, n)
	}
}
