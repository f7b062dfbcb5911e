package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/internal/protocol"
	"github.com/taskino/taskino/store/redistest"
)

type testBundle struct {
	srv *redistest.Server
	st  *store.Store
	// The protocol steps on st's namespace.
	planning *protocol.Planning
	worker   *protocol.Worker
	ctx      context.Context
}

func setup(t *testing.T) testBundle {
	t.Helper()
	t.Parallel()
	srv := redistest.Start(t)
	st, err := store.New(srv.Client(t), "test", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return testBundle{srv: srv, st: st, planning: store.PlanningProtocol(st), worker: store.WorkerProtocol(st), ctx: context.Background()}
}

func every(name string, d time.Duration) events.Spec {
	return events.Spec{Name: name, Trigger: events.Every(d)}
}

func TestApplyOutcomes(t *testing.T) {
	b := setup(t)
	v1 := []events.Spec{every("a", time.Hour), every("b", time.Hour)}
	res, err := b.st.Apply(b.ctx, 1, v1)
	if err != nil || res.Outcome != store.Applied || len(res.Added) != 2 || res.Previous != 0 {
		t.Fatalf("first apply: %+v, %v", res, err)
	}
	res, err = b.st.Apply(b.ctx, 1, v1)
	if err != nil || res.Outcome != store.Unchanged || res.Version != 1 {
		t.Fatalf("same version, same set: %+v, %v", res, err)
	}
	_, err = b.st.Apply(b.ctx, 1, v1[:1])
	var conflict *store.VersionConflictError
	if !errors.As(err, &conflict) || conflict.Version != 1 {
		t.Fatalf("same version, other set: %v, want a VersionConflictError", err)
	}
	if _, err := b.st.Apply(b.ctx, 0, v1); err == nil {
		t.Fatal("version 0 accepted")
	}
	if _, err := b.st.Apply(b.ctx, 3, []events.Spec{every("a", time.Hour), every("a", time.Minute)}); err == nil {
		t.Fatal("duplicate names accepted")
	}
	res, err = b.st.Apply(b.ctx, 3, v1[:1])
	if err != nil || res.Outcome != store.Applied || len(res.Removed) != 1 || res.Removed[0] != "b" || res.Previous != 1 {
		t.Fatalf("v3 removing b: %+v, %v", res, err)
	}
	res, err = b.st.Apply(b.ctx, 2, v1)
	if err != nil || res.Outcome != store.Adopted || res.Version != 3 {
		t.Fatalf("older version: %+v, %v, want adopted v3", res, err)
	}
	specs, err := b.st.Specs(b.ctx)
	if err != nil || len(specs) != 1 || specs[0].Name != "a" {
		t.Fatalf("specs after adopting: %+v, %v; the older apply must not write", specs, err)
	}
}

// claimAll claims every due task for token and fails the test on error.
func claimAll(t *testing.T, b testBundle, token string) store.Claim {
	t.Helper()
	c, err := b.planning.Claim(b.ctx, token, 10*time.Second, 100, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func firePlan(ct store.ClaimedTask, slot time.Time) store.TaskPlan {
	f := events.Fire{ID: events.FireID(ct.Name, slot), Task: ct.Name, At: slot, Attempt: 1}
	return store.TaskPlan{
		Name: ct.Name, Gen: ct.Gen, Queue: "default", Mode: events.ModeSingle, Next: slot.Add(time.Hour),
		Ops:     []store.Op{{Slot: slot, Fire: &f, Event: events.Event{Type: events.TypeFired, Task: ct.Name, Fire: f.ID, At: slot}}},
		LastRun: &events.LastRun{Task: ct.Name, Fire: f.ID, Scheduled: slot, Status: events.StatusFired},
	}
}

// The plan script appends a slot only after the watermark: a second plan
// for the same slot, even with a valid lease, appends nothing.
// A task whose stored definition would pass events.MaxReadBytes is refused
// at apply, naming it: processes bounded by BoundReplies could not read it
// back, and would skip the task at run time.
func TestApplyRefusesADefinitionTooLongToRead(t *testing.T) {
	b := setup(t)
	minutes := "0" + strings.Repeat(",0", events.MaxReadBytes/2)
	_, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Hour), {Name: "long", Trigger: events.Cron(minutes + " * * * *")}})
	var se *events.SpecError
	if !errors.As(err, &se) || se.Task != "long" || se.Field != "definition" {
		t.Fatalf("apply of a %d-byte cron: %v; want a SpecError for task long, field definition", len(minutes), err)
	}
	if specs, err := b.st.Specs(b.ctx); err != nil || len(specs) != 0 {
		t.Fatalf("after the refused apply the store holds %d specs (%v); want none", len(specs), err)
	}
}

func TestPlanRefusesASlotTwice(t *testing.T) {
	b := setup(t)
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c := claimAll(t, b, "p1")
	if len(c.Tasks) != 1 {
		t.Fatalf("claimed %d tasks, want 1", len(c.Tasks))
	}
	slot := c.Now.Add(-time.Second).Truncate(time.Millisecond)
	res, err := b.planning.Plan(b.ctx, "p1", []store.TaskPlan{firePlan(c.Tasks[0], slot)}, 0)
	if err != nil || res.Fires != 1 {
		t.Fatalf("first plan: %+v, %v", res, err)
	}
	// The task is no longer due (next is an hour away): reclaim it by
	// making it due again, as a stale planner view would.
	if err := b.srv.Client(t).ZAdd(b.ctx, b.st.Keys().Due(), redisZ(0, "a")).Err(); err != nil {
		t.Fatal(err)
	}
	c2 := claimAll(t, b, "p2")
	res, err = b.planning.Plan(b.ctx, "p2", []store.TaskPlan{firePlan(c2.Tasks[0], slot)}, 0)
	if err != nil || res.Fires != 0 || res.Dropped != 1 {
		t.Fatalf("second plan of the same slot: %+v, %v; want 0 fires, 1 dropped", res, err)
	}
	fires, err := b.st.RangeFires(b.ctx, b.st.Keys().Fires("default"), "-", "+")
	if err != nil || len(fires) != 1 || fires[0].ID != events.FireID("a", slot) {
		t.Fatalf("fires: %+v, %v", fires, err)
	}
	lr, ok, err := b.st.LastRun(b.ctx, "a")
	if err != nil || !ok || !lr.Scheduled.Equal(slot) {
		t.Fatalf("last run: %+v %v %v", lr, ok, err)
	}
	if _, ok, err := b.st.LastRun(b.ctx, "never"); ok || err != nil {
		t.Fatalf("a task that never ran: ok=%v err=%v, want false, nil", ok, err)
	}
}

// A planner whose lease was taken over writes nothing for that task.
func TestPlanWithALostLeaseWritesNothing(t *testing.T) {
	b := setup(t)
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c1, err := b.planning.Claim(b.ctx, "p1", time.Millisecond, 10, time.Time{}, 0)
	if err != nil || len(c1.Tasks) != 1 {
		t.Fatalf("claim: %+v %v", c1, err)
	}
	// Wait for the 1ms lease to end on the server's clock, then p2 takes over.
	var c2 store.Claim
	for len(c2.Tasks) == 0 {
		c2 = claimAll(t, b, "p2")
	}
	slot := c1.Now.Truncate(time.Millisecond)
	res, err := b.planning.Plan(b.ctx, "p1", []store.TaskPlan{firePlan(c1.Tasks[0], slot)}, 0)
	if err != nil || res.Lost != 1 || res.Fires != 0 {
		t.Fatalf("plan with a lost lease: %+v %v, want 1 lost, 0 fires", res, err)
	}
	// Release hands the task back at once, only for its holder.
	if n, err := b.planning.Release(b.ctx, "p1", []string{"a"}); err != nil || n != 0 {
		t.Fatalf("release by a non-holder: %d %v", n, err)
	}
	if n, err := b.planning.Release(b.ctx, "p2", []string{"a"}); err != nil || n != 1 {
		t.Fatalf("release by the holder: %d %v", n, err)
	}
	if c3 := claimAll(t, b, "p3"); len(c3.Tasks) != 1 {
		t.Fatalf("after release, claimed %d tasks, want 1", len(c3.Tasks))
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

// Versions are exact over the whole int64 range (Unix-nanosecond versions
// are a natural choice): a higher one applies, a lower one is adopted.
func TestApplyLargeVersions(t *testing.T) {
	b := setup(t)
	const v = int64(1_700_000_000_000_000_000)
	if _, err := b.st.Apply(b.ctx, v, []events.Spec{every("a", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	res, err := b.st.Apply(b.ctx, v+1, []events.Spec{every("b", time.Hour)})
	if err != nil || res.Outcome != store.Applied || res.Previous != v {
		t.Fatalf("apply v+1: %+v, %v", res, err)
	}
	if got, _ := b.st.Version(b.ctx); got != v+1 {
		t.Fatalf("stored version %d, want %d", got, v+1)
	}
	res, err = b.st.Apply(b.ctx, 9, []events.Spec{every("c", time.Hour)})
	if err != nil || res.Outcome != store.Adopted {
		t.Fatalf("apply 9 after %d: %+v, %v; want adopted (9 has fewer digits, so it is older)", v+1, res, err)
	}
	if _, err := b.st.Apply(b.ctx, 0, nil); !errors.Is(err, store.ErrBadVersion) {
		t.Fatalf("version 0: %v, want ErrBadVersion", err)
	}
}

// A slot after the server's now (its clock went back since the claim) is
// not fired and becomes the next slot, with every op after it dropped.
func TestPlanKeepsAFutureSlotAsNext(t *testing.T) {
	b := setup(t)
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c := claimAll(t, b, "p1")
	past, future := c.Now.Add(-time.Second).Truncate(time.Millisecond), c.Now.Add(time.Hour).Truncate(time.Millisecond)
	plan := firePlan(c.Tasks[0], past)
	later := firePlan(c.Tasks[0], future)
	plan.Ops = append(plan.Ops, later.Ops...)
	plan.Next = future.Add(time.Hour)
	res, err := b.planning.Plan(b.ctx, "p1", []store.TaskPlan{plan}, 0)
	if err != nil || res.Fires != 1 || res.Dropped != 1 {
		t.Fatalf("plan: %+v, %v; want the past slot fired, the future one dropped", res, err)
	}
	st, err := b.st.State(b.ctx, "a")
	if err != nil || !st.Next.Equal(future) || !st.Planned.Equal(past) {
		t.Fatalf("state %+v, %v; want next %s (the dropped slot), watermark %s", st, err, future, past)
	}
}

// A reload that changes a task but not its schedule ends the lease on it,
// so it is planned on time rather than after the lease.
func TestReloadOfASameScheduleTaskEndsItsLease(t *testing.T) {
	b := setup(t)
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if c := claimAll(t, b, "p1"); len(c.Tasks) != 1 {
		t.Fatalf("claimed %d", len(c.Tasks))
	}
	changed := every("a", time.Hour)
	changed.Payload = "new"
	res, err := b.st.Apply(b.ctx, 2, []events.Spec{changed})
	if err != nil || len(res.Changed) != 1 || len(res.Rescheduled) != 0 {
		t.Fatalf("apply v2: %+v, %v", res, err)
	}
	if c := claimAll(t, b, "p2"); len(c.Tasks) != 1 || c.Tasks[0].Spec.Payload != "new" {
		t.Fatalf("after the reload another planner claimed %+v; want the task, with its new payload", c.Tasks)
	}
}

// Missed ops are recorded even past the server's now (the claim's clock
// found them late); only a fire stops at now and becomes the next slot.
func TestPlanRecordsMissesPastNowAndStopsAtAFire(t *testing.T) {
	b := setup(t)
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c := claimAll(t, b, "p1")
	m1, f1 := c.Now.Add(time.Hour).Truncate(time.Millisecond), c.Now.Add(2*time.Hour).Truncate(time.Millisecond)
	plan := firePlan(c.Tasks[0], f1)
	miss := store.Op{Slot: m1, Event: events.Event{Type: events.TypeMissed, Task: "a", At: m1, Count: 1, Policy: events.MisfireSkip}}
	plan.Ops = append([]store.Op{miss}, plan.Ops...)
	res, err := b.planning.Plan(b.ctx, "p1", []store.TaskPlan{plan}, 0)
	if err != nil || res.Events != 1 || res.Fires != 0 || res.Dropped != 1 {
		t.Fatalf("plan: %+v, %v; want the miss recorded and the fire dropped", res, err)
	}
	st, err := b.st.State(b.ctx, "a")
	if err != nil || !st.Next.Equal(f1) || !st.Planned.Equal(m1) {
		t.Fatalf("state %+v, %v; want next %s, watermark %s", st, err, f1, m1)
	}
}

// A claim Redis runs after its deadline (its caller gave up: Redis was
// frozen and ran the queued call once back) takes nothing, so no task
// waits out a lease nobody uses.
func TestClaimAfterDeadlineTakesNothing(t *testing.T) {
	b := setup(t)
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Second)}); err != nil {
		t.Fatal(err)
	}
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The task's first slot is due within a second; claim once it is.
	var late store.Claim
	for {
		late, err = b.planning.Claim(b.ctx, "gave-up", 10*time.Second, 100, now.Add(-time.Second), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !late.Late {
			t.Fatalf("claim past its deadline: %+v, want Late", late)
		}
		if !late.NextDue.IsZero() && !late.NextDue.After(late.Now) {
			break // due now, and still not claimed
		}
		time.Sleep(late.NextDue.Sub(late.Now)) // until the slot is due on Redis's clock
	}
	if len(late.Tasks) != 0 {
		t.Fatalf("late claim took %d tasks", len(late.Tasks))
	}
	c, err := b.planning.Claim(b.ctx, "live", 10*time.Second, 100, late.Now.Add(time.Minute), 0)
	if err != nil || c.Late || len(c.Tasks) != 1 || c.Tasks[0].Name != "a" {
		t.Fatalf("claim within its deadline: %+v, %v; want task a, left free by the late claim", c, err)
	}
}

// TestPlanOfATaskChangedSinceItsClaimIsRefused: a pause, a reload that
// changes the task and a removal each end the hold of the planner that
// claimed it (a new gen, or no state), so its plan, made for the old spec,
// writes nothing for that task while the batch's other tasks are planned.
func TestPlanOfATaskChangedSinceItsClaimIsRefused(t *testing.T) {
	b := setup(t)
	specs := []events.Spec{every("keep", time.Hour), every("paused", time.Hour), every("changed", time.Hour), every("removed", time.Hour)}
	if _, err := b.st.Apply(b.ctx, 1, specs); err != nil {
		t.Fatal(err)
	}
	c := claimAll(t, b, "p1")
	if len(c.Tasks) != 4 {
		t.Fatalf("claimed %d tasks, want 4", len(c.Tasks))
	}
	if _, err := b.st.Pause(b.ctx, "paused", "test"); err != nil {
		t.Fatal(err)
	}
	changed := every("changed", time.Hour)
	changed.Payload = "new"
	if _, err := b.st.Apply(b.ctx, 2, []events.Spec{specs[0], specs[1], changed}); err != nil {
		t.Fatal(err)
	}
	slot := c.Now.Truncate(time.Millisecond)
	plans := make([]store.TaskPlan, len(c.Tasks))
	for i, ct := range c.Tasks {
		plans[i] = firePlan(ct, slot)
	}
	res, err := b.planning.Plan(b.ctx, "p1", plans, 0)
	if err != nil || res.Lost != 3 || res.Fires != 1 {
		t.Fatalf("plan: %+v %v, want 3 lost (paused, changed, removed) and 1 fire (keep)", res, err)
	}
}

// The plan script compares slots and watermarks as decimal text (by
// length, then bytes; negative ones numerically): slots across a change of
// digit count and before 1970 are ordered as numbers.
func TestPlanOrdersSlotsAsNumbers(t *testing.T) {
	b := setup(t)
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	plan := func(token string, slots ...int64) store.PlanResult {
		t.Helper()
		c := claimAll(t, b, token)
		if len(c.Tasks) != 1 {
			t.Fatalf("claimed %d tasks, want 1", len(c.Tasks))
		}
		var p store.TaskPlan
		for _, ms := range slots {
			one := firePlan(c.Tasks[0], time.UnixMilli(ms).UTC())
			p.Name, p.Gen, p.Queue, p.Mode, p.Next = one.Name, one.Gen, one.Queue, one.Mode, one.Next
			p.Ops = append(p.Ops, one.Ops...)
		}
		res, err := b.planning.Plan(b.ctx, token, []store.TaskPlan{p}, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Due again at once, as a stale planner view would have it.
		if err := b.srv.Client(t).ZAdd(b.ctx, b.st.Keys().Due(), redisZ(0, "a")).Err(); err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := plan("p1", -2000, -1000, 999, 1000); res.Fires != 4 || res.Dropped != 0 {
		t.Fatalf("first plan: %+v, want 4 fires (a watermark of none is before every slot)", res)
	}
	if res := plan("p2", -1000, 999, 1000, 1001); res.Fires != 1 || res.Dropped != 3 {
		t.Fatalf("second plan: %+v, want 1 fire (1001) and 3 dropped (at or before the watermark 1000)", res)
	}
	if res := plan("p3", 9999, 10000); res.Fires != 2 {
		t.Fatalf("third plan: %+v, want 2 fires (9999 and 10000 are after 1001)", res)
	}
	st, err := b.st.State(b.ctx, "a")
	if err != nil || !st.Planned.Equal(time.UnixMilli(10000).UTC()) {
		t.Fatalf("state %+v, %v; want watermark 10000", st, err)
	}
}

// A task removed and added again starts afresh: the last run of its former
// self, and with it the failures in a row that pause_after_failures
// counts, is gone; a task that stays keeps its record.
func TestReAddedTaskStartsAfresh(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	both := []events.Spec{every("a", time.Hour), every("b", time.Hour)}
	if _, err := b.st.Apply(b.ctx, 1, both); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_000).UTC()
	for _, name := range []string{"a", "b"} {
		raw, err := events.MarshalLastRun(events.LastRun{Task: name, Fire: name + "@1", Scheduled: at, Finished: at, Status: events.StatusDead, Fails: 3})
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(b.ctx, b.st.Keys().LastRun(), name, raw).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for v, set := range [][]events.Spec{{every("b", time.Hour)}, both} {
		if _, err := b.st.Apply(b.ctx, int64(v+2), set); err != nil {
			t.Fatal(err)
		}
	}
	if r, found, err := b.st.LastRun(b.ctx, "a"); err != nil || found {
		t.Errorf("re-added task a: last run %+v (found %v, %v); want none", r, found, err)
	}
	if r, found, err := b.st.LastRun(b.ctx, "b"); err != nil || !found || r.Fails != 3 {
		t.Errorf("task b, never removed: last run %+v (found %v, %v); want its record, 3 failures in a row", r, found, err)
	}
}
