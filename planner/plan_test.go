package planner

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// summary counts a plan's ops: fired slots, missed slots (ranges counted by
// their size), and the missed events written.
type summary struct {
	fired, missed, missedEvents int
	firstFired, lastFired       time.Time
}

func summarize(p store.TaskPlan) summary {
	var s summary
	for _, op := range p.Ops {
		if op.Fire != nil {
			if s.fired == 0 {
				s.firstFired = op.Slot
			}
			s.fired++
			s.lastFired = op.Slot
			continue
		}
		s.missed += int(op.Event.Count)
		s.missedEvents++
	}
	return s
}

func TestPlanTaskMisfirePolicies(t *testing.T) {
	t.Parallel()
	base := time.UnixMilli(1_800_000_000_000).UTC()
	// Ten slots, base+1s .. base+10s, all due; now is 30s later, far past
	// the 1s grace.
	trig := events.Every(time.Second).From(base.Add(time.Second)).Until(base.Add(10 * time.Second))
	sched, err := Compile(trig)
	if err != nil {
		t.Fatal(err)
	}
	now := base.Add(40 * time.Second)
	for _, c := range []struct {
		policy         events.Misfire
		limit          int
		fired, missed  int
		lastFired      time.Time
		firstFiredWant time.Time
	}{
		{events.MisfireFireOnce, 0, 1, 9, base.Add(10 * time.Second), base.Add(10 * time.Second)},
		{events.MisfireFireAll, 0, 10, 0, base.Add(10 * time.Second), base.Add(time.Second)},
		{events.MisfireFireAll, 4, 4, 6, base.Add(10 * time.Second), base.Add(7 * time.Second)},
		{events.MisfireSkip, 0, 0, 10, time.Time{}, time.Time{}},
	} {
		t.Run(string(c.policy), func(t *testing.T) {
			spec := events.Spec{Name: "t", Trigger: trig, Misfire: c.policy, MisfireLimit: c.limit, MisfireGrace: time.Second}
			p := planTask(store.ClaimedTask{Name: "t", Spec: spec, Since: base, Gen: "1"}, sched, now, 0, "n", 1000)
			s := summarize(p)
			if s.fired != c.fired || s.missed != c.missed || s.missedEvents != c.missed {
				t.Fatalf("fired %d, missed %d in %d events; want %d fired, %d missed in as many events", s.fired, s.missed, s.missedEvents, c.fired, c.missed)
			}
			if !s.lastFired.Equal(c.lastFired) || !s.firstFired.Equal(c.firstFiredWant) {
				t.Fatalf("fired %s..%s, want %s..%s", s.firstFired, s.lastFired, c.firstFiredWant, c.lastFired)
			}
			if !p.Next.IsZero() {
				t.Fatalf("next %s, want none: the trigger ended", p.Next)
			}
			for i := 1; i < len(p.Ops); i++ {
				if !p.Ops[i-1].Slot.Before(p.Ops[i].Slot) {
					t.Fatalf("ops not in ascending slot order at %d", i)
				}
			}
			// Each missed slot's reason gives its own lateness.
			for _, op := range p.Ops {
				if op.Fire != nil {
					continue
				}
				want := fmt.Sprintf("planned %s late, past the 1s grace", now.Sub(op.Slot))
				if op.Event.Reason != want {
					t.Errorf("missed slot %s: reason %q, want %q", op.Slot, op.Event.Reason, want)
				}
			}
		})
	}
}

func TestPlanTaskOnTimeSlotsAlwaysFire(t *testing.T) {
	t.Parallel()
	base := time.UnixMilli(1_800_000_000_000).UTC()
	sched, _ := Compile(events.Every(time.Second))
	// Slots base+1s..base+5s are due at base+5s; with a 2s grace the last
	// three are on time and the first two late.
	now := base.Add(5 * time.Second)
	for _, c := range []struct {
		policy        events.Misfire
		fired, missed int
	}{
		{events.MisfireFireOnce, 3, 2}, // an on-time run is due: late ones are missed
		{events.MisfireFireAll, 5, 0},
		{events.MisfireSkip, 3, 2},
	} {
		spec := events.Spec{Name: "t", Trigger: events.Every(time.Second), Misfire: c.policy, MisfireGrace: 2 * time.Second}
		p := planTask(store.ClaimedTask{Name: "t", Spec: spec, Since: base.Add(time.Millisecond), Gen: "1"}, sched, now, 0, "n", 1000)
		if s := summarize(p); s.fired != c.fired || s.missed != c.missed {
			t.Errorf("%s: fired %d missed %d, want %d and %d", c.policy, s.fired, s.missed, c.fired, c.missed)
		}
		if want := base.Add(6 * time.Second); !p.Next.Equal(want) {
			t.Errorf("%s: next %s, want %s", c.policy, p.Next, want)
		}
	}
}

func TestPlanTaskStartsAfterWatermark(t *testing.T) {
	t.Parallel()
	base := time.UnixMilli(1_800_000_000_000).UTC()
	sched, _ := Compile(events.Every(time.Second))
	spec := events.Spec{Name: "t", Trigger: events.Every(time.Second)}
	// Rescheduled at base (since), but slots up to base+3s were already
	// planned: they must not be offered again.
	ct := store.ClaimedTask{Name: "t", Spec: spec, Since: base, Planned: base.Add(3 * time.Second), Gen: "2"}
	p := planTask(ct, sched, base.Add(5*time.Second), 0, "n", 1000)
	s := summarize(p)
	if s.fired != 2 || !s.firstFired.Equal(base.Add(4*time.Second)) {
		t.Fatalf("fired %d from %s; want 2 from %s", s.fired, s.firstFired, base.Add(4*time.Second))
	}
	// A slot exactly at since is the task's first.
	p = planTask(store.ClaimedTask{Name: "t", Spec: spec, Since: base, Gen: "1"}, sched, base, 0, "n", 1000)
	if s := summarize(p); s.fired != 1 || !s.firstFired.Equal(base) {
		t.Fatalf("slot at since: fired %d at %s, want 1 at %s", s.fired, s.firstFired, base)
	}
}

func TestPlanTaskLongOutageInChunks(t *testing.T) {
	t.Parallel()
	base := time.UnixMilli(1_800_000_000_000).UTC()
	sched, _ := Compile(events.Every(time.Second))
	spec := events.Spec{Name: "t", Trigger: events.Every(time.Second), Misfire: events.MisfireFireAll, MisfireLimit: 5, MisfireGrace: time.Second}
	// At base+2501.5s, slots base+1s .. base+2500s are late (2,500 of them)
	// and base+2501s is on time. With a chunk of 1000, two passes record
	// 1000 missed each as a range, then the third resolves the rest: 495
	// missed, the latest 5 late ones fired, and the on-time one fired.
	now := base.Add(2500*time.Second + 1500*time.Millisecond)
	ct := store.ClaimedTask{Name: "t", Spec: spec, Since: base.Add(time.Millisecond), Gen: "1"}
	total := summary{}
	for pass := 0; pass < 10; pass++ {
		p := planTask(ct, sched, now, 0, "n", 1000)
		s := summarize(p)
		total.fired += s.fired
		total.missed += s.missed
		total.missedEvents += s.missedEvents
		if len(p.Ops) > 0 {
			ct.Planned = p.Ops[len(p.Ops)-1].Slot
		}
		ct.Next = p.Next
		if p.Next.After(now) {
			if pass != 2 {
				t.Fatalf("caught up after %d passes, want 3", pass+1)
			}
			break
		}
	}
	if total.fired != 6 || total.missed != 2495 {
		t.Fatalf("fired %d missed %d, want 6 and 2495", total.fired, total.missed)
	}
	if total.missedEvents != 2+495 {
		t.Fatalf("%d missed events, want 2 range events and 495 single ones", total.missedEvents)
	}
}

// TestPlanTaskOnceBeforeRegistration: a once task registered after its
// instant. Within the grace of its registration the instant is its slot,
// late or not by the time a planner gets to it (then the misfire policy
// decides); an hour before its registration it is one missed event with
// the reason; once fired or recorded (the watermark at it), nothing more.
func TestPlanTaskOnceBeforeRegistration(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_800_000_000_000).UTC()
	for _, c := range []struct {
		name           string
		since, now     time.Time
		planned        time.Time
		policy         events.Misfire
		fired, missed  int
		reasonContains string
	}{
		{"registered 3ms after, planned at once", at.Add(3 * time.Millisecond), at.Add(5 * time.Millisecond), time.Time{}, events.MisfireSkip, 1, 0, ""},
		{"registered 3ms after, planned a minute later, fire-once", at.Add(3 * time.Millisecond), at.Add(time.Minute), time.Time{}, events.MisfireFireOnce, 1, 0, ""},
		{"registered 3ms after, planned a minute later, skip", at.Add(3 * time.Millisecond), at.Add(time.Minute), time.Time{}, events.MisfireSkip, 0, 1, "past the 10s grace"},
		{"registered an hour after", at.Add(time.Hour), at.Add(time.Hour), time.Time{}, events.MisfireFireOnce, 0, 1, "its time was 1h0m0s before the task was registered"},
		{"already recorded", at.Add(time.Hour), at.Add(time.Hour), at, events.MisfireFireOnce, 0, 0, ""},
		{"rescheduled under an earlier schedule's watermark", at.Add(-time.Second), at.Add(-time.Second), at.Add(500 * time.Millisecond), events.MisfireFireOnce, 0, 1, "before 2027-01-15T08:00:00.5Z, the latest slot already planned"},
	} {
		spec := events.Spec{Name: "t", Trigger: events.Once(at), Misfire: c.policy}.WithDefaults()
		sched, _ := Compile(spec.Trigger)
		p := planTask(store.ClaimedTask{Name: "t", Spec: spec, Since: c.since, Planned: c.planned, Gen: "1"}, sched, c.now, 0, "n", 1000)
		if s := summarize(p); s.fired != c.fired || s.missed != c.missed {
			t.Errorf("%s: fired %d, missed %d; want %d and %d", c.name, s.fired, s.missed, c.fired, c.missed)
		}
		for _, op := range p.Ops {
			if !op.Event.At.Equal(at) || (op.Fire != nil && !op.Slot.Equal(at)) ||
				(op.Fire == nil && (!strings.Contains(op.Event.Reason, c.reasonContains) || op.Event.Policy != events.MisfireSkip || !op.Slot.After(c.planned))) {
				t.Errorf("%s: op at %s (event at %s, policy %s) with reason %q; want the instant %s, after the watermark, policy skip, the reason saying %q",
					c.name, op.Slot, op.Event.At, op.Event.Policy, op.Event.Reason, at, c.reasonContains)
			}
		}
		if !p.Next.IsZero() {
			t.Errorf("%s: next %s, want none", c.name, p.Next)
		}
	}
}

// An every or cron task with no slot between its registration and its end
// (its window over before it was registered, or none of its slots left in
// it) is recorded missed once, saying why, instead of ending in silence;
// one that has slots, or has planned before, is not.
func TestPlanTaskWithNoSlotInItsWindow(t *testing.T) {
	t.Parallel()
	end := time.UnixMilli(1_800_000_000_000).UTC()
	for _, c := range []struct {
		name     string
		trigger  events.Trigger
		since    time.Time
		planned  time.Time // the watermark
		next     time.Time // the next slot stored, zero before the first search
		missed   bool
		contains string
		slot     time.Time // the op's, when not since
		ended    bool      // the stored next says no slot was left
	}{
		{"every, window over an hour before", events.Every(time.Minute).Until(end), end.Add(time.Hour), time.Time{}, time.Time{}, true, "its window ends at 2027-01-15T08:00:00Z", time.Time{}, false},
		{"cron, window over a day before", events.Cron("0 0 * * * *").From(end.Add(-48 * time.Hour)).Until(end), end.Add(24 * time.Hour), time.Time{}, time.Time{}, true, "registered, rescheduled or resumed at 2027-01-16T08:00:00Z", time.Time{}, false},
		{"every hour, window ending before the next slot", events.Every(time.Hour).From(end.Add(-3 * time.Hour)).Until(end.Add(30 * time.Minute)), end.Add(time.Minute), time.Time{}, time.Time{}, true, "no slot to fire", time.Time{}, false},
		{"every, a slot left", events.Every(time.Minute).Until(end), end.Add(-90 * time.Second), time.Time{}, time.Time{}, false, "", time.Time{}, false},
		{"every, planned before, rescheduled onto a window over", events.Every(time.Minute).Until(end), end.Add(time.Hour), end, time.Time{}, true, "its window ends at", time.Time{}, false},
		{"every, an earlier schedule planned past the reschedule (a lookahead)", events.Every(time.Minute).Until(end), end.Add(time.Hour), end.Add(time.Hour + 5*time.Second), time.Time{}, true, "its window ends at", end.Add(time.Hour + 5*time.Second + time.Millisecond), false},
		{"every, its last slot planned, then ended (a stored next at the watermark)", events.Every(time.Minute).Until(end), end.Add(-time.Hour), end, end, false, "", time.Time{}, false},
		{"every, recorded already and claimed again", events.Every(time.Minute).Until(end), end.Add(time.Hour), end.Add(time.Hour), time.Time{}, false, "", time.Time{}, true},
	} {
		spec := events.Spec{Name: "t", Trigger: c.trigger}.WithDefaults()
		sched, err := Compile(spec.Trigger)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ct := store.ClaimedTask{Name: "t", Spec: spec, Since: c.since, Planned: c.planned, Next: c.next, Ended: c.ended, Gen: "1"}
		p := planTask(ct, sched, c.since, 0, "n", 1000)
		s := summarize(p)
		if !c.missed {
			if s.missedEvents != 0 {
				t.Errorf("%s: %d missed events (%+v), want none", c.name, s.missedEvents, p.Ops)
			}
			continue
		}
		if s.fired != 0 || s.missedEvents != 1 || len(p.Ops) != 1 || !p.Next.IsZero() {
			t.Fatalf("%s: fired %d, %d missed events, next %s; want one missed event and nothing next", c.name, s.fired, s.missedEvents, p.Next)
		}
		op := p.Ops[0]
		wantAt := c.trigger.End
		if wantAt.After(c.since) {
			wantAt = c.since // the end is still ahead
		}
		wantSlot := c.since
		if !c.slot.IsZero() {
			wantSlot = c.slot // just after the watermark, for the store to take it
		}
		if e := op.Event; !e.At.Equal(wantAt) || e.Count != 1 || e.Policy != events.MisfireSkip ||
			!strings.Contains(e.Reason, c.contains) || !op.Slot.Equal(wantSlot) {
			t.Errorf("%s: op at %s, event at %s count %d policy %s reason %q; want the event at %s, count 1, policy skip, the reason saying %q, the op at %s (the registration, never ahead of now: a watermark ahead would stop a later schedule; or just after the watermark)",
				c.name, op.Slot, e.At, e.Count, e.Policy, e.Reason, wantAt, c.contains, wantSlot)
		}
		if !c.planned.IsZero() && !op.Slot.After(c.planned) {
			t.Errorf("%s: op at %s, not after the watermark %s: the store would refuse it", c.name, op.Slot, c.planned)
		}
		if _, err := op.Event.AppendArgs(nil); err != nil {
			t.Errorf("%s: the event does not encode: %v", c.name, err)
		}
	}
}
