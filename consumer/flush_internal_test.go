package consumer

import (
	"context"
	"testing"
	"time"

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
	c.mu.Lock()
	sig := c.flushedSig
	c.mu.Unlock()
	n, err := c.flushOnce(context.Background())
	if err != nil || n != 10 {
		t.Fatalf("flush took %d (err %v), want the 10 started events", n, err)
	}
	select {
	case <-sig:
	default:
		t.Fatal("a flush of started events alone did not signal drain")
	}
	if len(c.started) != 0 || c.startedOff != 0 {
		t.Errorf("queue after the flush: %d events, offset %d; want empty, from the head", len(c.started), c.startedOff)
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
