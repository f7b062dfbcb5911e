package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// waitRedisTime waits until the Redis server's clock reaches t. Waiting for
// time to pass is the point here (planners down for a number of slots); it
// is measured on the clock planners use.
func waitRedisTime(t *testing.T, b testBundle, at time.Time) {
	t.Helper()
	for {
		now, err := b.st.Time(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !now.Before(at) {
			return
		}
		time.Sleep(at.Sub(now))
	}
}

// Promise 2 (no silent miss): all planners down for 10 slots, then one
// starts. Each policy gives what it says, every slot not fired has a missed
// event, and the fire-all bound is respected.
func TestCatchUpAfterAllPlannersWereDown(t *testing.T) {
	b := setup(t)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := now.Truncate(time.Second).Add(2 * time.Second)
	end := start.Add(9 * time.Second) // ten slots, start .. end
	const grace = 500 * time.Millisecond
	every := events.Every(time.Second).From(start).Until(end)
	cron := events.Cron("* * * * * *").From(start).Until(end)
	type want struct {
		fired, missed int
	}
	cases := map[string]struct {
		spec events.Spec
		want want
	}{
		"fire-once":     {events.Spec{Trigger: every, Misfire: events.MisfireFireOnce}, want{1, 9}},
		"fire-all":      {events.Spec{Trigger: every, Misfire: events.MisfireFireAll}, want{10, 0}},
		"fire-all-4":    {events.Spec{Trigger: every, Misfire: events.MisfireFireAll, MisfireLimit: 4}, want{4, 6}},
		"skip":          {events.Spec{Trigger: every, Misfire: events.MisfireSkip}, want{0, 10}},
		"cron-fire-all": {events.Spec{Trigger: cron, Misfire: events.MisfireFireAll}, want{10, 0}},
		"cron-skip":     {events.Spec{Trigger: cron, Misfire: events.MisfireSkip}, want{0, 10}},
	}
	var specs []events.Spec
	for name, c := range cases {
		c.spec.Name = name
		c.spec.MisfireGrace = grace
		specs = append(specs, c.spec)
	}
	if _, err := planner.Apply(b.ctx, b.st, 1, specs); err != nil {
		t.Fatal(err)
	}

	// No planner runs while the ten slots pass and fall out of their grace.
	waitRedisTime(t, b, end.Add(grace+100*time.Millisecond))
	startPlanner(t, b, planner.Config{Node: "late"}, nil)

	awaitEvents(t, b, time.Minute, func(all []events.Event) bool {
		n := map[string]int{}
		for _, e := range all {
			if e.Type == events.TypeFired || e.Type == events.TypeMissed {
				n[e.Task] += max(1, int(e.Count))
			}
		}
		for name := range cases {
			if n[name] < 10 {
				return false
			}
		}
		return true
	})

	l := readLedger(t, b)
	for name, c := range cases {
		var fired, missed []int64
		for i := 0; i < 10; i++ {
			k := slotKey{name, start.Add(time.Duration(i) * time.Second).UnixMilli()}
			if l.fires[k]+l.missed[k] != 1 || l.fired[k] != l.fires[k] {
				t.Errorf("%s: slot %d has %d fires, %d fired events and %d missed events; want exactly one fire or one miss",
					name, i, l.fires[k], l.fired[k], l.missed[k])
			}
			if l.fires[k] == 1 {
				fired = append(fired, k.at)
			} else {
				missed = append(missed, k.at)
			}
		}
		if len(fired) != c.want.fired || len(missed) != c.want.missed {
			t.Errorf("%s: %d fired, %d missed; want %d and %d", name, len(fired), len(missed), c.want.fired, c.want.missed)
			continue
		}
		// What fires is the latest slots; what is missed, the oldest.
		if len(fired) > 0 && len(missed) > 0 && missed[len(missed)-1] > fired[0] {
			t.Errorf("%s: missed slot %d is later than fired slot %d; the latest slots should fire", name, missed[len(missed)-1], fired[0])
		}
		st, err := b.st.State(b.ctx, name)
		if err != nil || !st.Done {
			t.Errorf("%s: state %+v, %v; want done (the trigger ended)", name, st, err)
		}
		if st.Planned.UnixMilli() != end.UnixMilli() {
			t.Errorf("%s: watermark %s, want the last slot %s", name, st.Planned, end)
		}
	}
	// Nothing outside the ten slots.
	for k := range l.fires {
		if k.at < start.UnixMilli() || k.at > end.UnixMilli() {
			t.Errorf("fire outside the trigger's window: %s", k)
		}
	}
}

// A once task whose instant is already past when it is registered: within
// the misfire grace (Once(time.Now()) reaches Redis a moment after its
// instant, from a host whose clock may be behind) it fires; an hour late it
// never fires, and one missed event says why. A once task paused before
// its instant and resumed just after it is recorded missed by the resume,
// and only there: the planner does not fire it as well.
func TestOnceRegisteredAfterItsTime(t *testing.T) {
	b := setup(t)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	soon := now.Add(300 * time.Millisecond)
	specs := []events.Spec{
		{Name: "just-now", Trigger: events.Once(now.Add(-50 * time.Millisecond))},
		{Name: "an-hour-ago", Trigger: events.Once(now.Add(-time.Hour))},
		{Name: "resumed", Trigger: events.Once(soon)},
	}
	if _, err := planner.Apply(b.ctx, b.st, 1, specs); err != nil {
		t.Fatal(err)
	}
	if _, err := planner.Pause(b.ctx, b.st, "resumed", "test"); err != nil {
		t.Fatal(err)
	}
	waitRedisTime(t, b, soon.Add(100*time.Millisecond))
	if done, err := planner.Resume(b.ctx, b.st, "resumed", "test"); err != nil || !done {
		t.Fatalf("resume: done %v, %v; want the once task done (its instant passed while paused)", done, err)
	}
	startPlanner(t, b, planner.Config{Node: "p"}, nil)
	// The three are due at once and planned in one claim and one plan call.
	all := awaitEvents(t, b, time.Minute, func(all []events.Event) bool {
		var fired, old bool
		for _, e := range all {
			fired = fired || (e.Type == events.TypeFired && e.Task == "just-now")
			old = old || (e.Type == events.TypeMissed && e.Task == "an-hour-ago")
		}
		return fired && old
	})
	l := readLedger(t, b)
	for _, c := range []struct {
		task          string
		fires, missed int
	}{{"just-now", 1, 0}, {"an-hour-ago", 0, 1}, {"resumed", 0, 1}} {
		var at time.Time
		for _, s := range specs {
			if s.Name == c.task {
				at = s.Trigger.At
			}
		}
		k := slotKey{c.task, at.UnixMilli()}
		if l.fires[k] != c.fires || l.fired[k] != c.fires || l.missed[k] != c.missed {
			t.Errorf("%s: %d fires, %d fired and %d missed events; want %d fires and %d missed",
				c.task, l.fires[k], l.fired[k], l.missed[k], c.fires, c.missed)
		}
	}
	for _, e := range ofType(all, events.TypeMissed) {
		if e.Task == "an-hour-ago" && (!strings.HasPrefix(e.Reason, "its time was 1h0m0") || !strings.Contains(e.Reason, "before the task was registered")) {
			t.Errorf("missed event of an-hour-ago says %q; want how long before its registration its time was", e.Reason)
		}
	}
}

// An every task registered after its window ended never fires, and is
// recorded missed once, saying why, instead of being done in silence. Put
// back in the due index, as if a second planner raced the first, it adds
// nothing: a task applied after it, due at once, fires, and the first is
// still recorded once.
func TestWindowOverBeforeRegistration(t *testing.T) {
	b := setup(t)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	end := now.Add(-time.Hour).Truncate(time.Millisecond)
	over := events.Spec{Name: "window-over", Trigger: events.Every(time.Minute).Until(end)}
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{over}); err != nil {
		t.Fatal(err)
	}
	first := startPlanner(t, b, planner.Config{Node: "p1"}, nil)
	all := awaitEvent(t, b, time.Minute, events.TypeMissed, func(e events.Event) bool { return e.Task == over.Name })
	first.stop(t)
	for _, e := range ofType(all, events.TypeMissed) {
		if !e.At.Equal(end) || !strings.Contains(e.Reason, "no slot to fire") || !strings.Contains(e.Reason, "its window ends at "+end.Format(time.RFC3339Nano)) {
			t.Errorf("missed event at %s says %q; want it at the window's end %s, saying the task has no slot and when its window ended", e.At, e.Reason, end)
		}
	}
	if err := b.rdb.ZAdd(b.ctx, b.st.Keys().Due(), redis.Z{Score: 0, Member: over.Name}).Err(); err != nil {
		t.Fatal(err)
	}
	if now, err = b.st.Time(b.ctx); err != nil {
		t.Fatal(err)
	}
	marker := events.Spec{Name: "marker", Trigger: events.Once(now)}
	if _, err := planner.Apply(b.ctx, b.st, 2, []events.Spec{over, marker}); err != nil {
		t.Fatal(err)
	}
	startPlanner(t, b, planner.Config{Node: "p2"}, nil)
	awaitEvent(t, b, time.Minute, events.TypeFired, func(e events.Event) bool { return e.Task == marker.Name })
	l := readLedger(t, b)
	if k := (slotKey{over.Name, end.UnixMilli()}); l.missed[k] != 1 || len(l.fires) != 1 {
		t.Errorf("%d missed events for %s and %d fires in all; want 1 missed event and only the marker's fire", l.missed[k], k, len(l.fires))
	}
}

// A running every task rescheduled onto a window that is already over gets
// one missed event saying so, instead of stopping without a word; with a
// lookahead its watermark is ahead of the reschedule, and the event is
// recorded all the same.
func TestWindowEndedByAReschedule(t *testing.T) {
	b := setup(t)
	beat := events.Spec{Name: "cut", Trigger: events.Every(time.Second)}
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{beat}); err != nil {
		t.Fatal(err)
	}
	p := startPlanner(t, b, planner.Config{Node: "p1", Lookahead: 3 * time.Second}, nil)
	awaitEvent(t, b, time.Minute, events.TypeFired, func(e events.Event) bool { return e.Task == beat.Name })
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	end := now.Add(-time.Hour).Truncate(time.Millisecond)
	cut := events.Spec{Name: beat.Name, Trigger: events.Every(time.Second).Until(end)}
	if _, err := planner.Apply(b.ctx, b.st, 2, []events.Spec{cut}); err != nil {
		t.Fatal(err)
	}
	all := awaitEvent(t, b, time.Minute, events.TypeMissed, func(e events.Event) bool { return e.Task == beat.Name })
	m := ofType(all, events.TypeMissed)
	if len(m) != 1 || !m[0].At.Equal(end) || !strings.Contains(m[0].Reason, "no slot to fire after it was registered, rescheduled or resumed") ||
		!strings.Contains(m[0].Reason, "its window ends at "+end.Format(time.RFC3339Nano)) {
		t.Errorf("missed events %+v; want one at the new window's end %s, saying the task has no slot left", m, end)
	}
	if now, err = b.st.Time(b.ctx); err != nil {
		t.Fatal(err)
	}
	marker := events.Spec{Name: "marker", Trigger: events.Once(now)}
	if _, err := planner.Apply(b.ctx, b.st, 3, []events.Spec{cut, marker}); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, time.Minute, events.TypeFired, func(e events.Event) bool { return e.Task == marker.Name })
	p.stop(t)
	if l := readLedger(t, b); l.missed[slotKey{beat.Name, end.UnixMilli()}] != 1 {
		t.Errorf("%d missed events at the window's end; want exactly 1", l.missed[slotKey{beat.Name, end.UnixMilli()}])
	}
	st, err := b.st.State(b.ctx, beat.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done {
		t.Errorf("state after %+v; want the task done", st)
	}
}

// A once task rescheduled onto an instant at or before a slot its earlier
// schedule already planned (the store refuses a fire there) is recorded
// missed, with the reason, instead of passing in silence.
func TestOnceRescheduledBehindItsWatermark(t *testing.T) {
	b := setup(t)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Truncate(time.Millisecond)
	first, second := now.Add(200*time.Millisecond), now.Add(100*time.Millisecond)
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{{Name: "moved", Trigger: events.Once(first)}}); err != nil {
		t.Fatal(err)
	}
	startPlanner(t, b, planner.Config{Node: "p"}, nil)
	awaitEvent(t, b, 30*time.Second, events.TypeFired, func(e events.Event) bool { return e.Task == "moved" })
	if _, err := planner.Apply(b.ctx, b.st, 2, []events.Spec{{Name: "moved", Trigger: events.Once(second)}}); err != nil {
		t.Fatal(err)
	}
	all := awaitEvent(t, b, 30*time.Second, events.TypeMissed, func(e events.Event) bool { return e.Task == "moved" })
	m := ofType(all, events.TypeMissed)
	if len(m) != 1 || !m[0].At.Equal(second) || !strings.Contains(m[0].Reason, "the latest slot already planned") {
		t.Errorf("missed events %+v; want one for %s saying a later slot was already planned", m, second)
	}
	// Done now: a pause and a resume leave it so, and record nothing
	// again.
	if _, err := planner.Pause(b.ctx, b.st, "moved", "test"); err != nil {
		t.Fatal(err)
	}
	if done, err := planner.Resume(b.ctx, b.st, "moved", "test"); err != nil || !done {
		t.Fatalf("resume: done %v, %v; want the task done still", done, err)
	}
	if now, err = b.st.Time(b.ctx); err != nil {
		t.Fatal(err)
	}
	marker := events.Spec{Name: "marker", Trigger: events.Once(now)}
	if _, err := planner.Apply(b.ctx, b.st, 3, []events.Spec{{Name: "moved", Trigger: events.Once(second)}, marker}); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeFired, func(e events.Event) bool { return e.Task == marker.Name })
	l := readLedger(t, b)
	if l.fires[slotKey{"moved", second.UnixMilli()}] != 0 || l.fires[slotKey{"moved", first.UnixMilli()}] != 1 {
		t.Errorf("fires %v; want the first instant's only", l.fires)
	}
	if n := l.missed[slotKey{"moved", second.UnixMilli()}]; n != 1 {
		t.Errorf("%d missed events for the second instant after a pause and a resume; want 1", n)
	}
	if st, err := b.st.State(b.ctx, "moved"); err != nil || !st.Done {
		t.Errorf("state after the resume %+v (%v); want the task still done", st, err)
	}
}
