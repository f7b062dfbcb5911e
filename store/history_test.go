package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// runFires appends a fire of task for each slot to the default queue's
// stream and reads them in the worker group as worker w.
func runFires(t *testing.T, b testBundle, task string, slots ...time.Time) []store.Delivery {
	t.Helper()
	rdb := b.srv.Client(t)
	stream := b.st.Keys().Fires(events.DefaultQueue)
	if err := b.worker.EnsureGroup(b.ctx, stream); err != nil {
		t.Fatal(err)
	}
	for _, at := range slots {
		f := events.Fire{ID: events.FireID(task, at), Task: task, At: at, Attempt: 1}
		if err := rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: f.Fields()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := b.worker.ReadFires(b.ctx, "w", []string{stream}, len(slots), 0)
	if err != nil || len(ds) != len(slots) {
		t.Fatalf("read %d fires (err %v), want %d", len(ds), err, len(slots))
	}
	return ds
}

// outcome is what a worker records of d: completed when errText is "",
// else failed (and dead-lettered when dead).
func outcome(d store.Delivery, started time.Time, errText string, dead bool) *store.Outcome {
	fin := started.Add(1500 * time.Millisecond)
	fired, _ := events.EntryTime(d.EntryID)
	e := events.Event{Type: events.TypeCompleted, Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At, Attempt: d.Fire.Attempt,
		Worker: "w", CostMs: 1500, Status: events.StatusCompleted, Queue: d.Queue, Fired: fired, Started: started}
	lr := &events.LastRun{Task: d.Fire.Task, Fire: d.Fire.ID, Scheduled: d.Fire.At, Started: started, Finished: fin,
		Status: events.StatusCompleted, Attempt: d.Fire.Attempt, Worker: "w"}
	o := &store.Outcome{Delivery: d, LastRun: lr}
	if errText != "" {
		e.Type, e.Status, e.Error = events.TypeFailed, events.StatusFailed, errText
		lr.Status, lr.Error = events.StatusFailed, errText
	}
	o.Events = []events.Event{e}
	if dead {
		o.Events = append(o.Events, events.Event{Type: events.TypeDead, Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At,
			Attempt: d.Fire.Attempt, Worker: "w", Reason: "gave up after 1 attempt", Error: errText})
		o.Dead, o.DeadError, lr.Status = "gave up after 1 attempt", errText, events.StatusDead
	}
	return o
}

// TestStateAndHistoryFollowOutcomes: the per-task state says running while
// a started run has no outcome, keeps the last outcome and the last
// success apart (an older slot finishing late changes neither, and its
// event is not marked lastrun), counts failures since the last success;
// the history lists every slot, newest first, with the running one.
func TestStateAndHistoryFollowOutcomes(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Minute)}); err != nil {
		t.Fatal(err)
	}
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	slot := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	ds := runFires(t, b, "a", slot(0), slot(1), slot(2), slot(3), slot(4))
	started := func(ds ...store.Delivery) {
		var evs []events.Event
		var runs []events.LastRun
		for _, d := range ds {
			evs = append(evs, events.Event{Type: events.TypeStarted, Task: "a", Fire: d.Fire.ID, At: d.Fire.At, Attempt: 1, Worker: "w"})
			runs = append(runs, events.LastRun{Task: "a", Fire: d.Fire.ID, Scheduled: d.Fire.At, Started: d.Fire.At.Add(time.Second),
				Status: events.StatusRunning, Attempt: 1, Worker: "w"})
		}
		if err := b.worker.AppendStarted(b.ctx, evs, runs); err != nil {
			t.Fatal(err)
		}
	}
	state := func() store.TaskState {
		t.Helper()
		ts, err := b.st.State(b.ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	finish := func(outs ...*store.Outcome) {
		t.Helper()
		if n, err := b.worker.Finish(b.ctx, "w", outs); err != nil || n != len(outs) {
			t.Fatalf("finish: %d of %d, %v", n, len(outs), err)
		}
	}
	started(ds[1])
	if ts := state(); ts.Running == nil || ts.Running.Fire != ds[1].Fire.ID || ts.Running.Worker != "w" || ts.Outcome != nil {
		t.Fatalf("after start: running %+v, outcome %+v; want fire 1 running on w, no outcome", ts.Running, ts.Outcome)
	}
	finish(outcome(ds[1], slot(1).Add(time.Second), "", false))
	ts := state()
	if ts.Running != nil || ts.Outcome == nil || ts.Outcome.Fire != ds[1].Fire.ID || ts.Success == nil || ts.Success.Fire != ds[1].Fire.ID || ts.Outcome.Fails != 0 {
		t.Fatalf("after completing 1: running %+v, outcome %+v, success %+v", ts.Running, ts.Outcome, ts.Success)
	}
	if ts.Outcome.Fired.IsZero() || ts.Outcome.Attempt != 1 || ts.Outcome.Worker != "w" {
		t.Errorf("outcome %+v: want fired (the entry's time), attempt 1, worker w", ts.Outcome)
	}
	started(ds[2], ds[3])
	finish(outcome(ds[2], slot(2).Add(time.Second), "exit status 3", false), outcome(ds[3], slot(3).Add(time.Second), "exit status 4", true))
	ts = state()
	if ts.Outcome.Fire != ds[3].Fire.ID || ts.Outcome.Status != events.StatusDead || ts.Outcome.Fails != 2 || ts.Success.Fire != ds[1].Fire.ID {
		t.Fatalf("after two failures: outcome %+v, success %+v; want fire 3 dead, 2 fails, success still fire 1", ts.Outcome, ts.Success)
	}
	// Slot 0 finishes late: recorded in the history, not the last outcome.
	finish(outcome(ds[0], slot(0).Add(time.Second), "", false))
	if ts = state(); ts.Outcome.Fire != ds[3].Fire.ID || ts.Success.Fire != ds[1].Fire.ID || ts.Outcome.Fails != 2 {
		t.Fatalf("a late outcome of slot 0 changed the state: outcome %+v, success %+v", ts.Outcome, ts.Success)
	}
	evs, err := rdb.XRange(b.ctx, b.st.Keys().Events(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	marked := map[string]bool{}
	for _, m := range evs {
		if m.Values[events.FieldType] == string(events.TypeCompleted) || m.Values[events.FieldType] == string(events.TypeFailed) {
			marked[m.Values[events.FieldFire].(string)] = m.Values[events.FieldLastRun] == "1"
		}
	}
	if !marked[ds[1].Fire.ID] || !marked[ds[3].Fire.ID] || marked[ds[0].Fire.ID] {
		t.Errorf("lastrun marks by fire: %v; want slots 1 and 3 marked, slot 0 (late) not", marked)
	}
	// A retry of slot 2 runs: the task is running, and the slot's row says so.
	retry := ds[2]
	retry.Fire.Attempt = 2
	sevs := []events.Event{{Type: events.TypeStarted, Task: "a", Fire: retry.Fire.ID, At: retry.Fire.At, Attempt: 2, Worker: "w"}}
	runs := []events.LastRun{{Task: "a", Fire: retry.Fire.ID, Scheduled: retry.Fire.At, Started: slot(5), Status: events.StatusRunning, Attempt: 2, Worker: "w"}}
	if err := b.worker.AppendStarted(b.ctx, sevs, runs); err != nil {
		t.Fatal(err)
	}
	if ts := state(); ts.Running == nil || ts.Running.Attempt != 2 {
		t.Errorf("a retry running: running record %+v; want attempt 2 (the slot's earlier failure does not end it)", ts.Running)
	}
	hist, err := b.st.History(b.ctx, "a", 10, slot(5))
	if err != nil {
		t.Fatal(err)
	}
	for _, sl := range hist {
		if sl.Fire == ds[2].Fire.ID && (sl.Outcome != "running" || sl.Attempt != 2 || sl.Error != "exit status 3") {
			t.Errorf("a retry running: slot 2 is %+v; want running, attempt 2, with its last error", sl)
		}
	}
	started(ds[4])
	hist, err = b.st.History(b.ctx, "a", 10, slot(5))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sl := range hist {
		got = append(got, fmt.Sprintf("%s:%s", sl.Fire, sl.Outcome))
	}
	// (One run is recorded in progress per task: slot 4's start replaced
	// the retry's.)
	want := []string{ds[4].Fire.ID + ":running", ds[3].Fire.ID + ":dead", ds[2].Fire.ID + ":failed", ds[1].Fire.ID + ":completed", ds[0].Fire.ID + ":completed"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	if d := hist[2]; d.Error != "exit status 3" || d.Late != time.Second || d.CostMs != 1500 || d.Fired.IsZero() {
		t.Errorf("failed slot %+v: want its error, late 1s, cost 1500 ms, fired time", d)
	}
	if d := hist[1]; d.Reason == "" || d.Error != "exit status 4" || d.Started.IsZero() {
		t.Errorf("dead slot %+v: want the reason, the last error and when the run started", d)
	}
	if hist, err = b.st.History(b.ctx, "a", 2, slot(5)); err != nil || len(hist) != 2 {
		t.Errorf("history limit 2: %d slots, %v", len(hist), err)
	}
}

// TestHistoryOutlivesABurstOfAnotherTask: a 100,000-fire burst of one task
// does not remove any of another task's last 100 history entries (each
// task's history is its own, bounded alone), while the burst's own history
// stays bounded.
func TestHistoryOutlivesABurstOfAnotherTask(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 outcomes")
	}
	b := setup(t)
	rdb := b.srv.Client(t)
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	day := func(i int) time.Time { return t0.Add(time.Duration(i) * 24 * time.Hour) }
	var slots []time.Time
	for i := range 100 {
		slots = append(slots, day(i))
	}
	var outs []*store.Outcome
	for _, d := range runFires(t, b, "daily", slots...) {
		outs = append(outs, outcome(d, d.Fire.At, "", false))
	}
	if _, err := b.worker.Finish(b.ctx, "w", outs); err != nil {
		t.Fatal(err)
	}
	stream := b.st.Keys().Fires(events.DefaultQueue)
	const burst, batch = 100_000, 1000
	for i := 0; i < burst; i += batch {
		pipe := rdb.Pipeline()
		for j := i; j < i+batch; j++ {
			at := t0.Add(time.Duration(j) * time.Millisecond)
			f := events.Fire{ID: events.FireID("busy", at), Task: "busy", At: at, Attempt: 1}
			pipe.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: f.Fields()})
		}
		if _, err := pipe.Exec(b.ctx); err != nil {
			t.Fatal(err)
		}
		ds, err := b.worker.ReadFires(b.ctx, "w", []string{stream}, batch, 0)
		if err != nil || len(ds) != batch {
			t.Fatalf("read %d, %v", len(ds), err)
		}
		outs = outs[:0]
		for _, d := range ds {
			outs = append(outs, outcome(d, d.Fire.At, "", false))
		}
		if n, err := b.worker.Finish(b.ctx, "w", outs); err != nil || n != batch {
			t.Fatalf("finish: %d, %v", n, err)
		}
	}
	hist, err := b.st.History(b.ctx, "daily", 100, day(100))
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 100 || !hist[0].Scheduled.Equal(day(99)) || !hist[99].Scheduled.Equal(day(0)) {
		t.Fatalf("daily history after the burst: %d slots; want all 100, day 99 first and day 0 last", len(hist))
	}
	n, err := rdb.XLen(b.ctx, b.st.Keys().History("busy")).Result()
	if err != nil || n < store.DefaultHistoryLen || n > 3*store.DefaultHistoryLen {
		t.Errorf("busy task's history holds %d entries (%v); want its bound, %d, to about twice that", n, err, store.DefaultHistoryLen)
	}
}

// TestFinishChecksPendingPastALongGap: a batch whose entries lie far apart
// in a pending list held mostly by another worker (an old reclaimed fire
// among new ones) is still checked entry by entry past the ranges read at
// once: each pending one is recorded once, one acked elsewhere is not.
func TestFinishChecksPendingPastALongGap(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	first := runFires(t, b, "gap", t0)
	stream := b.st.Keys().Fires(events.DefaultQueue)
	pipe := rdb.Pipeline()
	for i := range 600 {
		f := events.Fire{ID: fmt.Sprintf("other@%d", i), Task: "other", At: t0, Attempt: 1}
		pipe.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: f.Fields()})
	}
	if _, err := pipe.Exec(b.ctx); err != nil {
		t.Fatal(err)
	}
	if ds, err := b.worker.ReadFires(b.ctx, "someone-else", []string{stream}, 600, 0); err != nil || len(ds) != 600 {
		t.Fatalf("the other worker read %d, %v", len(ds), err)
	}
	last := runFires(t, b, "gap", t0.Add(time.Minute), t0.Add(2*time.Minute))
	if err := rdb.XAck(b.ctx, stream, store.WorkerGroup, last[1].EntryID).Err(); err != nil {
		t.Fatal(err)
	}
	outs := []*store.Outcome{outcome(first[0], t0, "", false), outcome(last[0], t0, "", false), outcome(last[1], t0, "", false)}
	n, err := b.worker.Finish(b.ctx, "w", outs)
	if err != nil || n != 2 {
		t.Fatalf("finish recorded %d (%v); want 2: the two pending, not the one acked elsewhere", n, err)
	}
	hist, err := b.st.History(b.ctx, "gap", 0, t0)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history %+v (%v); want the two recorded slots", hist, err)
	}
	if p, err := rdb.XPendingExt(b.ctx, &redis.XPendingExtArgs{Stream: stream, Group: store.WorkerGroup, Start: "-", End: "+", Count: 1000, Consumer: "w"}).Result(); err != nil || len(p) != 0 {
		t.Errorf("w still holds %d entries (%v); want its two acked", len(p), err)
	}
}
