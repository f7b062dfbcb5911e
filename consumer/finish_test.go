package consumer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// newIdleConsumer is a consumer that is not run: what Finish queues stays
// in its outbox.
func newIdleConsumer(t *testing.T) *Consumer {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, Config{Node: "w1", Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *Consumer) queuedOutcomes() []*store.Outcome {
	c.outbox.mu.Lock()
	defer c.outbox.mu.Unlock()
	return append([]*store.Outcome(nil), c.outbox.outcomes...)
}

func eventTypes(o *store.Outcome) []events.Type {
	var ts []events.Type
	for _, e := range o.Events {
		ts = append(ts, e.Type)
	}
	return ts
}

// TestFinishRecordsHowARunEnded: each way a run ends becomes its outcome:
// completed; failed and retried (the retry loop woken); failed and dead;
// dead before it started (ending a single-mode fire's overlap hold); a
// broadcast fire's failure is not retried; output keeps its end.
func TestFinishRecordsHowARunEnded(t *testing.T) {
	c := newIdleConsumer(t)
	start := time.UnixMilli(1_700_000_000_000)
	run := Result{Started: start, Finished: start.Add(1500 * time.Millisecond)}
	d := func(task string) *store.Delivery {
		x := fireAt(task, start)
		x.Stream, x.EntryID, x.Queue, x.Spec = "s", task, "default", events.Spec{Name: task, Attempts: 3}.WithDefaults()
		return x
	}
	ok := run
	ok.Output = strings.Repeat("x", maxText) + "the end"
	c.Finish(d("ok"), ok)
	retried := run
	retried.Next, retried.Err, retried.RetryIn, retried.Reason = Retry, errors.New("boom"), time.Second, "attempt 1 of 3 failed; next in 1s"
	c.Finish(d("retried"), retried)
	dead := run
	dead.Next, dead.Err, dead.Reason = Dead, errors.New("boom"), "out of attempts"
	c.Finish(d("dead"), dead)
	skip := d("never")
	skip.Spec.Overlap = events.OverlapSkip
	c.Finish(skip, Result{Next: Dead, Reason: "no handler"})
	bc := d("bc")
	bc.Broadcast = true
	c.Finish(bc, retried)

	got := c.queuedOutcomes()
	if len(got) != 5 {
		t.Fatalf("%d outcomes queued, want 5", len(got))
	}
	for i, want := range []struct {
		types   []events.Type
		retryIn time.Duration
		dead    string
		endOver bool
	}{
		{[]events.Type{events.TypeCompleted}, 0, "", false},
		{[]events.Type{events.TypeFailed, events.TypeRetried}, time.Second, "", false},
		{[]events.Type{events.TypeFailed, events.TypeDead}, 0, "out of attempts", false},
		{[]events.Type{events.TypeDead}, 0, "no handler", true},
		{[]events.Type{events.TypeFailed}, 0, "", false},
	} {
		o := got[i]
		if ts := eventTypes(o); len(ts) != len(want.types) || ts[0] != want.types[0] || ts[len(ts)-1] != want.types[len(ts)-1] ||
			o.RetryIn != want.retryIn || o.Dead != want.dead || o.EndOverlap != want.endOver {
			t.Errorf("outcome %d (%s): events %v retry %s dead %q end overlap %v; want %v %s %q %v", i, o.Delivery.Fire.Task,
				ts, o.RetryIn, o.Dead, o.EndOverlap, want.types, want.retryIn, want.dead, want.endOver)
		}
	}
	if e := got[0].Events[0]; e.CostMs != 1500 || !strings.HasSuffix(e.Output, "the end") || len(e.Output) > maxText+3 {
		t.Errorf("completed event: cost %dms, output of %d bytes ending %q; want 1500ms and the output's end", e.CostMs, len(e.Output), e.Output[len(e.Output)-7:])
	}
	if r := got[1].Events[1]; r.Attempt != 2 || r.Reason != "attempt 1 of 3 failed; next in 1s" {
		t.Errorf("retried event: attempt %d, reason %q", r.Attempt, r.Reason)
	}
	if len(c.retries.sig) != 1 {
		t.Error("a retry was queued, yet the retry loop was not woken")
	}
}

// TestFinishEndsABroadcastOverlap: the end of a broadcast run, even handed
// back, frees its task here and releases the fire it kept waiting; a
// hand-back queues no outcome.
func TestFinishEndsABroadcastOverlap(t *testing.T) {
	c := newIdleConsumer(t)
	at := time.UnixMilli(1_700_000_000_000)
	first, second := fireAt("b", at), fireAt("b", at.Add(time.Second))
	for _, d := range []*store.Delivery{first, second} {
		d.Broadcast, d.Spec = true, events.Spec{Name: "b", Overlap: events.OverlapBufferOne}.WithDefaults()
	}
	if run, _ := c.local.begin(first, true); !run {
		t.Fatal("the first fire does not run")
	}
	if _, kept := c.local.begin(second, true); !kept {
		t.Fatal("the second fire is not kept")
	}
	c.HandBack([]store.Delivery{*first})
	if later := c.local.takeLater(); len(later) != 1 || later[0].Fire.ID != second.Fire.ID {
		t.Errorf("released %v after the hand-back, want the kept fire", later)
	}
	if n := len(c.queuedOutcomes()); n != 0 {
		t.Errorf("a hand-back queued %d outcomes, want none", n)
	}
}

// TestFinishRecordsAnIncompleteDecision: a Result that says Dead or Retry
// without its reason or error is still recorded as what it says: a dead
// letter with a reason (the store writes none without one) and the error
// given, a failure rather than a completion.
func TestFinishRecordsAnIncompleteDecision(t *testing.T) {
	c := newIdleConsumer(t)
	start := time.UnixMilli(1_700_000_000_000)
	d := func(task string) *store.Delivery {
		x := fireAt(task, start)
		x.Stream, x.EntryID, x.Queue, x.Spec = "s", task, "default", events.Spec{Name: task, Attempts: 3}.WithDefaults()
		return x
	}
	c.Finish(d("unstarted"), Result{Next: Dead, Err: errors.New("cannot run")})
	c.Finish(d("ran"), Result{Next: Dead, Started: start, Finished: start.Add(time.Second)})
	c.Finish(d("retry"), Result{Next: Retry, RetryIn: time.Second, Started: start, Finished: start.Add(time.Second)})
	got := c.queuedOutcomes()
	if len(got) != 3 {
		t.Fatalf("%d outcomes, want 3", len(got))
	}
	if o := got[0]; o.Dead == "" || o.DeadError != "cannot run" {
		t.Errorf("an unstarted dead letter: reason %q, error %q; want a reason and the error given", o.Dead, o.DeadError)
	}
	if o := got[1]; o.Dead == "" || eventTypes(o)[0] != events.TypeFailed {
		t.Errorf("a run dead-lettered with no reason or error: events %v, dead %q; want failed then dead, with a reason", eventTypes(o), o.Dead)
	}
	if o := got[2]; o.RetryIn != time.Second || eventTypes(o)[0] != events.TypeFailed || o.Events[1].Reason == "" {
		t.Errorf("a retry with no error or reason: events %v, retry in %s; want failed then retried, with a reason", eventTypes(o), o.RetryIn)
	}
}
