package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// readTestFires appends n fires of task "t" to the default queue's stream
// of namespace ns and reads them as worker w1.
func readTestFires(t *testing.T, rdb *redis.Client, ns string, n int) (workerStore, []store.Delivery) {
	t.Helper()
	ctx := context.Background()
	pub, err := store.New(rdb, ns, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := newWorkerStore(pub)
	stream := st.Keys().FireStream(events.DefaultQueue, events.ModeSingle)
	if err := st.EnsureGroup(ctx, stream); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_000).UTC()
	for i := range n {
		f := events.Fire{ID: events.FireID("t", at.Add(time.Duration(i)*time.Second)), Task: "t", At: at, Attempt: 1}
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: f.Fields()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 {
		return st, nil
	}
	ds, err := st.ReadFires(ctx, "w1", []string{stream}, n, 0)
	if err != nil || len(ds) != n {
		t.Fatalf("read %d (err %v), want %d", len(ds), err, n)
	}
	return st, ds
}

func testLog(t *testing.T) zerolog.Logger { return zerolog.New(zerolog.NewTestWriter(t)) }

// await waits for done, failing the test with what after a minute (far
// longer than any wait that works: a bound on a hang, not a timing).
func await(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal(what)
	}
}
