package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// The hot paths of a fire, one benchmark each, against a redis-server of
// their own on this machine. Redis's single thread is what a burst waits
// on, so besides the wall time per task (ns/op, an op being one task or
// fire) each reports the time Redis spent in the scripts themselves
// ("redis-ns/op", from INFO commandstats): the figure to cut.
//
//	go test ./store -run '^$' -bench . -benchtime 50000x

// scriptTime is the time Redis has spent running scripts (EVAL and
// EVALSHA, the commands they call included) since its stats were reset.
func scriptTime(b *testing.B, rdb *redis.Client) time.Duration {
	b.Helper()
	us := redistest.CommandStat(b, rdb, "eval", "usec") + redistest.CommandStat(b, rdb, "evalsha", "usec")
	return time.Duration(us) * time.Microsecond
}

// freshStore is a store on a server of its own (under callgrind when
// redistest.CallgrindEnv is set).
func freshStore(b *testing.B) (*store.Store, *redis.Client, *redistest.Server) {
	b.Helper()
	srv := redistest.StartCounted(b)
	rdb := srv.Client(b)
	st, err := store.New(rdb, "bench", store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return st, rdb, srv
}

// measure resets Redis's command stats and the benchmark timer, and
// returns the function that stops the timer and reports Redis's time in
// scripts per op (when it ran any) and, under callgrind, its instructions
// per op.
func measure(b *testing.B, rdb *redis.Client, srv *redistest.Server) (stop func()) {
	b.Helper()
	rdb.ConfigResetStat(context.Background())
	count := srv.Count(b)
	b.ResetTimer()
	return func() {
		b.StopTimer()
		if n, ok := count(); ok {
			b.ReportMetric(float64(n)/float64(b.N), "redis-instr/op")
		}
		if t := scriptTime(b, rdb); t > 0 {
			b.ReportMetric(float64(t.Nanoseconds())/float64(b.N), "redis-ns/op")
		}
	}
}

// benchStore is a store on a fresh server with b.N one-shot tasks, all due.
func benchStore(b *testing.B) (*store.Store, *redis.Client, *redistest.Server) {
	b.Helper()
	st, rdb, srv := freshStore(b)
	ctx := context.Background()
	now, err := st.Time(ctx)
	if err != nil {
		b.Fatal(err)
	}
	specs := make([]events.Spec, b.N)
	for i := range specs {
		specs[i] = events.Spec{Name: fmt.Sprintf("task-%07d", i), Trigger: events.Once(now)}
	}
	if _, err := st.Apply(ctx, 1, specs); err != nil {
		b.Fatal(err)
	}
	return st, rdb, srv
}

// onePlan is what a planner decides for a due one-shot task: one fire, its
// fired event, no next slot, and the last-run record.
func onePlan(ct store.ClaimedTask, now time.Time) store.TaskPlan {
	slot := ct.Spec.Trigger.At
	f := events.Fire{ID: events.FireID(ct.Name, slot), Task: ct.Name, At: slot, Attempt: 1}
	return store.TaskPlan{Name: ct.Name, Gen: ct.Gen, Queue: events.DefaultQueue, Mode: events.ModeSingle,
		Ops: []store.Op{{Slot: slot, Fire: &f, Event: events.Event{Type: events.TypeFired, Task: ct.Name, Fire: f.ID,
			At: slot, Queue: events.DefaultQueue, Mode: events.ModeSingle, Worker: "bench"}}},
		LastRun: &events.LastRun{Task: ct.Name, Fire: f.ID, Scheduled: slot, Fired: now, Status: events.StatusFired}}
}

// BenchmarkClaim leases due tasks to a planner, 256 a call (the planner's
// batch): an op is one task claimed.
func BenchmarkClaim(b *testing.B) {
	st, rdb, srv := benchStore(b)
	ctx := context.Background()
	stop := measure(b, rdb, srv)
	for got := 0; got < b.N; {
		c, err := store.PlanningProtocol(st).Claim(ctx, "bench", time.Minute, 256, time.Time{}, 0)
		if err != nil || len(c.Tasks) == 0 {
			b.Fatalf("claimed %d of %d: %v", got, b.N, err)
		}
		got += len(c.Tasks)
	}
	stop()
}

// BenchmarkPlan records the plans of claimed one-shot tasks, 256 a call: an
// op is one fire appended with its event, watermark and last-run record.
func BenchmarkPlan(b *testing.B) {
	st, rdb, srv := benchStore(b)
	ctx := context.Background()
	var claims []store.Claim
	for got := 0; got < b.N; {
		c, err := store.PlanningProtocol(st).Claim(ctx, "bench", time.Hour, 256, time.Time{}, 0)
		if err != nil || len(c.Tasks) == 0 {
			b.Fatalf("claimed %d of %d: %v", got, b.N, err)
		}
		got += len(c.Tasks)
		claims = append(claims, c)
	}
	stop := measure(b, rdb, srv)
	fires := 0
	for _, c := range claims {
		plans := make([]store.TaskPlan, len(c.Tasks))
		for i, ct := range c.Tasks {
			plans[i] = onePlan(ct, c.Now)
		}
		res, err := store.PlanningProtocol(st).Plan(ctx, "bench", plans, 0)
		if err != nil || res.Lost > 0 || res.Dropped > 0 {
			b.Fatalf("plan: %+v, %v", res, err)
		}
		fires += res.Fires
	}
	stop()
	if fires != b.N {
		b.Fatalf("%d fires appended, want %d", fires, b.N)
	}
}

// BenchmarkFinish reads fires in the worker group, 100 a call, and records
// each one's started event (and running record) and then its completion
// (event, history entry, last success and ack), batched as a worker does:
// an op is one fire run.
func BenchmarkFinish(b *testing.B) { benchFinish(b, 0) }

// BenchmarkFinishRecurring is BenchmarkFinish with the fires of 100 tasks,
// each firing b.N/100 times, as recurring tasks do: their state and history
// keys exist after the first fires (BenchmarkFinish's one-shot tasks each
// create theirs).
func BenchmarkFinishRecurring(b *testing.B) { benchFinish(b, 100) }

func benchFinish(b *testing.B, tasks int) {
	st, rdb, srv, stream, at := fireStore(b, tasks)
	ctx := context.Background()
	stop := measure(b, rdb, srv)
	done := 0
	for done < b.N {
		ds, err := store.WorkerProtocol(st).ReadFires(ctx, "w1", []string{stream}, 100, time.Second)
		if err != nil || len(ds) == 0 {
			b.Fatalf("read %d of %d: %v", done, b.N, err)
		}
		started := make([]events.Event, len(ds))
		runs := make([]events.LastRun, len(ds))
		outs := make([]*store.Outcome, len(ds))
		for i, d := range ds {
			started[i] = events.Event{Type: events.TypeStarted, Task: d.Fire.Task,
				Fire: d.Fire.ID, At: d.Fire.At, Attempt: 1, Worker: "w1", Queue: d.Queue}
			runs[i] = events.LastRun{Task: d.Fire.Task, Fire: d.Fire.ID, Scheduled: at, Started: at,
				Status: events.StatusRunning, Attempt: 1, Worker: "w1"}
			fin := at.Add(time.Millisecond)
			fired, _ := events.EntryTime(d.EntryID)
			outs[i] = &store.Outcome{Delivery: d,
				Events: []events.Event{{Type: events.TypeCompleted, Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At,
					Attempt: 1, Worker: "w1", Status: events.StatusCompleted, CostMs: 1, Queue: d.Queue, Fired: fired, Started: at}},
				LastRun: &events.LastRun{Task: d.Fire.Task, Fire: d.Fire.ID, Scheduled: at, Started: at,
					Finished: fin, Status: events.StatusCompleted, Attempt: 1, Worker: "w1"}}
		}
		if err := store.WorkerProtocol(st).AppendStarted(ctx, started, runs); err != nil {
			b.Fatal(err)
		}
		n, err := store.WorkerProtocol(st).Finish(ctx, "w1", outs)
		if err != nil || n != len(ds) {
			b.Fatalf("finish: %d of %d recorded, %v", n, len(ds), err)
		}
		done += n
	}
	stop()
	if p, err := rdb.XPending(ctx, stream, store.WorkerGroup).Result(); err != nil || p.Count != 0 {
		b.Fatalf("pending after finishing all: %+v, %v", p, err)
	}
}

// fireStore is a store on a fresh server whose single-mode fire stream of
// the default queue has the worker group and b.N fires, all at the same
// instant, which it returns with the stream: of b.N one-shot tasks, or of
// tasks tasks in turn when tasks > 0.
func fireStore(b *testing.B, tasks int) (*store.Store, *redis.Client, *redistest.Server, string, time.Time) {
	b.Helper()
	st, rdb, srv := freshStore(b)
	ctx := context.Background()
	stream := st.Keys().FireStream(events.DefaultQueue, events.ModeSingle)
	if err := store.WorkerProtocol(st).EnsureGroup(ctx, stream); err != nil {
		b.Fatal(err)
	}
	at := time.UnixMilli(1_800_000_000_000).UTC()
	for i := 0; i < b.N; i += 1000 {
		pipe := rdb.Pipeline()
		for j := i; j < min(b.N, i+1000); j++ {
			name, slot := fmt.Sprintf("task-%07d", j), at
			if tasks > 0 {
				name, slot = fmt.Sprintf("task-%07d", j%tasks), at.Add(time.Duration(j/tasks)*time.Second)
			}
			f := events.Fire{ID: events.FireID(name, slot), Task: name, At: slot, Attempt: 1}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: f.Fields()})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return st, rdb, srv, stream, at
}

// BenchmarkContractFloor is what the events contract alone asks of Redis
// for one fire of a one-shot task, as plain pipelined commands, 256 fires a
// pipeline, without a script and without the planner's state (due index,
// leases, watermarks): the fire appended with its fired event, read in the
// worker group, its started and completed events, its ack and its last-run
// record. No implementation of this contract costs Redis less per fire;
// the bare ceiling loop (one entry appended, read and acked) is a fraction
// of it.
func BenchmarkContractFloor(b *testing.B) {
	st, rdb, srv := freshStore(b)
	ctx := context.Background()
	k := st.Keys()
	stream := k.FireStream(events.DefaultQueue, events.ModeSingle)
	if err := store.WorkerProtocol(st).EnsureGroup(ctx, stream); err != nil {
		b.Fatal(err)
	}
	at := time.UnixMilli(1_800_000_000_000).UTC()
	xadd := func(pipe redis.Pipeliner, key string, fields []any) {
		pipe.Do(ctx, append([]any{"XADD", key, "MAXLEN", "~", 1_000_000, "*"}, fields...)...)
	}
	event := func(e events.Event) []any {
		args, err := e.AppendArgs(nil)
		if err != nil {
			b.Fatal(err)
		}
		return args
	}
	stop := measure(b, rdb, srv)
	for i := 0; i < b.N; i += 256 {
		n := min(256, b.N-i)
		pipe := rdb.Pipeline()
		for j := i; j < i+n; j++ {
			name := fmt.Sprintf("task-%07d", j)
			f := events.Fire{ID: events.FireID(name, at), Task: name, At: at, Attempt: 1}
			pipe.Do(ctx, append([]any{"XADD", stream, "*"}, f.AppendArgs(nil)...)...)
			xadd(pipe, k.Events(), event(events.Event{Type: events.TypeFired, Task: name, Fire: f.ID, At: at,
				Queue: events.DefaultQueue, Mode: events.ModeSingle, Worker: "bench"}))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		xs, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: store.WorkerGroup, Consumer: "w1",
			Streams: []string{stream, ">"}, Count: int64(n)}).Result()
		if err != nil || len(xs[0].Messages) != n {
			b.Fatalf("read %v, want %d entries: %v", xs, n, err)
		}
		pipe = rdb.Pipeline()
		for _, m := range xs[0].Messages {
			name, id := m.Values[events.FieldTask].(string), m.Values[events.FieldID].(string)
			xadd(pipe, k.Events(), event(events.Event{Type: events.TypeStarted, Task: name, Fire: id, At: at,
				Attempt: 1, Worker: "w1", Queue: events.DefaultQueue}))
		}
		for _, m := range xs[0].Messages {
			name, id := m.Values[events.FieldTask].(string), m.Values[events.FieldID].(string)
			xadd(pipe, k.Events(), event(events.Event{Type: events.TypeCompleted, Task: name, Fire: id, At: at,
				Attempt: 1, Worker: "w1", Status: events.StatusCompleted, CostMs: 1, Queue: events.DefaultQueue}))
			rec, err := events.MarshalLastRun(events.LastRun{Task: name, Fire: id, Scheduled: at, Started: at,
				Finished: at.Add(time.Millisecond), Status: events.StatusCompleted})
			if err != nil {
				b.Fatal(err)
			}
			pipe.HSet(ctx, k.LastRun(), name, rec)
			pipe.XAck(ctx, stream, store.WorkerGroup, m.ID)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	stop()
}

// BenchmarkCeiling is the bench command's ceiling loop as Redis sees it:
// entries of two short fields appended in pipelines of 100, read 100 at a
// time in a group and acked: an op is one entry.
func BenchmarkCeiling(b *testing.B) {
	_, rdb, srv := freshStore(b)
	ctx := context.Background()
	const stream = "ceiling"
	if err := rdb.XGroupCreateMkStream(ctx, stream, "g", "$").Err(); err != nil {
		b.Fatal(err)
	}
	stop := measure(b, rdb, srv)
	for i := 0; i < b.N; i += 100 {
		n := min(100, b.N-i)
		pipe := rdb.Pipeline()
		for range n {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"task", "t", "at", "1"}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		xs, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 100}).Result()
		if err != nil || len(xs[0].Messages) != n {
			b.Fatalf("read %v, want %d entries: %v", xs, n, err)
		}
		ids := make([]string, 0, n)
		for _, m := range xs[0].Messages {
			ids = append(ids, m.ID)
		}
		if err := rdb.XAck(ctx, stream, "g", ids...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	stop()
}

// BenchmarkHeartbeat extends the claims of fires a worker holds (read in
// the group, not finished yet), as its heartbeat does for the claims that
// were not reset for a while: an op is one held fire extended. A worker
// with a lookahead holds a second or more of fires; a heartbeat that
// extended them all ran on tens of thousands at once.
func BenchmarkHeartbeat(b *testing.B) {
	st, rdb, srv, stream, _ := fireStore(b, 0)
	ctx := context.Background()
	var held []store.Held
	for len(held) < b.N {
		ds, err := store.WorkerProtocol(st).ReadFires(ctx, "w1", []string{stream}, 1000, time.Second)
		if err != nil || len(ds) == 0 {
			b.Fatalf("read %d after %d: %v", len(ds), len(held), err)
		}
		for _, d := range ds {
			held = append(held, store.Held{Stream: d.Stream, EntryID: d.EntryID, Task: d.Fire.Task, FireID: d.Fire.ID})
		}
	}
	if len(held) != b.N {
		b.Fatalf("holding %d fires, want %d", len(held), b.N)
	}
	stop := measure(b, rdb, srv)
	hb, err := store.WorkerProtocol(st).Heartbeat(ctx, "w1", 30*time.Second, held, store.Self{})
	stop()
	if err != nil || len(hb.Lost) != 0 {
		b.Fatalf("heartbeat: %d lost, %v", len(hb.Lost), err)
	}
}
