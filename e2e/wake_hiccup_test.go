package e2e

import (
	"sort"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// A planner with nothing to do sleeps up to MaxSleep; a new task set wakes
// it at once. With a ten-minute MaxSleep, the task below fires within the
// test's limit only if the wake-up worked.
func TestNewTaskSetWakesIdlePlanners(t *testing.T) {
	b := setup(t)
	startPlanner(t, b, planner.Config{Node: "idle", MaxSleep: 10 * time.Minute}, nil)
	awaitEvent(t, b, 30*time.Second, events.TypeNodeUp, func(e events.Event) bool { return e.Worker == "idle" }) // subscribed to wake-ups before announcing itself
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{{Name: "now", Trigger: events.Once(now.Add(100 * time.Millisecond))}}); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 2*time.Minute, events.TypeFired, func(e events.Event) bool { return e.Task == "now" })
}

// The seed lost a fire when Redis hiccuped at the fire moment. Here Redis
// freezes for three seconds across several slots of an every-second task;
// the planner retries, and every slot of the freeze fires once, late, with
// nothing missed.
func TestRedisHiccupAtTheFireMoment(t *testing.T) {
	b := setup(t)
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{{Name: "tick", Trigger: events.Every(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	p := startPlanner(t, b, planner.Config{Node: "p", Lease: 2 * time.Second}, nil)
	firedCount := func(all []events.Event) int {
		n := 0
		for _, e := range all {
			if e.Type == events.TypeFired {
				n++
			}
		}
		return n
	}
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return firedCount(all) >= 2 })

	frozeAt, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.srv.Pause()
	time.Sleep(3 * time.Second) // the fault's length, not a synchronisation
	b.srv.Resume()

	// Wait for five slots after the freeze to have fired.
	thawedAt := frozeAt.Add(3 * time.Second)
	awaitEvents(t, b, time.Minute, func(all []events.Event) bool {
		n := 0
		for _, e := range all {
			if e.Type == events.TypeFired && e.At.After(thawedAt) {
				n++
			}
		}
		return n >= 5
	})
	p.stop(t)

	l := readLedger(t, b)
	if len(l.missed) != 0 {
		t.Fatalf("%d slots missed; a hiccup shorter than the grace must lose nothing", len(l.missed))
	}
	var at []int64
	for k, n := range l.fires {
		if n != 1 || l.fired[k] != 1 {
			t.Errorf("slot %s: %d fires, %d fired events; want 1 and 1", k, n, l.fired[k])
		}
		at = append(at, k.at)
	}
	sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
	during := 0
	for i, a := range at {
		if i > 0 && a-at[i-1] != 1000 {
			t.Errorf("gap between slots %d and %d", at[i-1], a)
		}
		if a > frozeAt.UnixMilli() && a <= thawedAt.UnixMilli() {
			during++
		}
	}
	if during < 2 {
		t.Errorf("%d slots fell inside the freeze, want at least 2", during)
	}
}
