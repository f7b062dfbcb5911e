package planner

import (
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// A jittered task fires a slot only once its due time (slot plus delay) is
// within the horizon, carries that due time, and its next due time is the
// task's due score; a cron jitter longer than the gap to the next slot is
// kept below it; lateness (for the misfire grace) counts from the due time.
func TestPlanTaskJitter(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 12, 24, 9, 0, 0, 0, time.UTC)
	spec := events.Spec{Name: "j", Trigger: events.Cron("*/10 * * * * *").Jittered(time.Hour)}.WithDefaults()
	sched, err := Compile(spec.Trigger)
	if err != nil {
		t.Fatal(err)
	}
	delay := events.JitterDelay("j", base, time.Hour, 10*time.Second)
	if delay >= 10*time.Second {
		t.Fatalf("delay %s not kept below the 10s gap", delay)
	}
	ct := store.ClaimedTask{Name: "j", Spec: spec, Since: base.Add(-time.Millisecond), Gen: "1", Next: base}
	// Before the due time: nothing fires, and the task is due again then.
	if delay > 0 {
		p := planTask(ct, sched, base.Add(delay-time.Millisecond), 0, "n", 1000)
		if len(p.Ops) != 0 || !p.Next.Equal(base) || !p.NextDue.Equal(base.Add(delay)) {
			t.Fatalf("before its due time: ops %v, next %s due %s; want none, next %s due %s", p.Ops, p.Next, p.NextDue, base, base.Add(delay))
		}
	}
	// At the due time: the slot fires, with its due time, on time.
	p := planTask(ct, sched, base.Add(delay), 0, "n", 1000)
	if len(p.Ops) != 1 || p.Ops[0].Fire == nil || !p.Ops[0].Fire.DueAt().Equal(base.Add(delay)) || !p.Ops[0].Event.DueAt().Equal(base.Add(delay)) {
		t.Fatalf("at its due time: ops %+v; want one fire due at %s", p.Ops, base.Add(delay))
	}
	nextSlot := base.Add(10 * time.Second)
	if want := nextSlot.Add(events.JitterDelay("j", nextSlot, time.Hour, 10*time.Second)); !p.Next.Equal(nextSlot) || !p.NextDue.Equal(want) {
		t.Fatalf("next %s due %s; want %s due %s", p.Next, p.NextDue, nextSlot, want)
	}
	// Planned a grace after the due time (not after the slot): still on time.
	p = planTask(ct, sched, base.Add(delay+spec.MisfireGrace), 0, "n", 1)
	if len(p.Ops) == 0 || p.Ops[0].Fire == nil {
		t.Fatalf("a grace after its due time: ops %+v; want the slot fired", p.Ops)
	}
}
