package consumer

import (
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

func lateFire(task string, at time.Time, misfire events.Misfire) store.Delivery {
	spec := events.Spec{Name: task, Misfire: misfire, MisfireGrace: 10 * time.Second}.WithDefaults()
	return store.Delivery{Queue: "default", Deliveries: 1, Spec: spec,
		Fire: events.Fire{ID: events.FireID(task, at), Task: task, At: at, Attempt: 1}}
}

// A planned fire read for the first time past its misfire grace, under
// misfire skip, is recorded missed with the reason; a manual trigger, a
// retry, a fire taken over from a stopped worker, handed back or routed,
// one within its grace and one under fire-all run. Under fire-once, a late
// fire is missed only when a newer slot of its task is due already.
func TestLateRead(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_100_000).UTC()
	late := now.Add(-31 * time.Second)
	none := func() (time.Time, bool) { return time.Time{}, false }
	o, missed := lateRead("w1", lateFire("t", late, events.MisfireSkip), now, none)
	if !missed || len(o.Events) != 1 || o.Events[0].Type != events.TypeMissed || o.Events[0].Policy != events.MisfireSkip ||
		!strings.Contains(o.Events[0].Reason, "read 31s after its slot, past its 10s misfire grace") {
		t.Fatalf("late skip fire: %v %+v; want it missed, the lateness and the grace in the reason", missed, o)
	}
	manual := lateFire("t", late, events.MisfireSkip)
	manual.Fire.ID = "m-1"
	retry := lateFire("t", late, events.MisfireSkip)
	retry.Fire.Attempt = 2
	reclaimed := lateFire("t", late, events.MisfireSkip)
	reclaimed.Deliveries = 2
	broadcast := lateFire("t", late, events.MisfireSkip)
	broadcast.Broadcast = true
	handedBack := lateFire("t", late, events.MisfireSkip)
	handedBack.HandedBackBy = "w0"
	routed := lateFire("t", late, events.MisfireSkip)
	routed.Routed = true
	for name, d := range map[string]store.Delivery{
		"manual": manual, "retry": retry, "reclaimed": reclaimed, "broadcast": broadcast, "handed back": handedBack, "routed": routed,
		"within its grace": lateFire("t", now.Add(-9*time.Second), events.MisfireSkip),
		"fire-all":         lateFire("t", late, events.MisfireFireAll),
	} {
		if _, missed := lateRead("w1", d, now, none); missed {
			t.Errorf("%s: recorded missed, want it run", name)
		}
	}
	once := lateFire("t", late, events.MisfireFireOnce)
	for _, c := range []struct {
		latest time.Time
		known  bool
		missed bool
	}{
		{now.Add(-time.Second), true, true},   // a newer slot is due: this one goes
		{late, true, false},                   // it is the newest
		{now.Add(time.Second), true, false},   // the newer slot is not due yet (planned ahead)
		{now.Add(-time.Second), false, false}, // unknown: it runs
	} {
		o, missed := lateRead("w1", once, now, func() (time.Time, bool) { return c.latest, c.known })
		if missed != c.missed {
			t.Errorf("fire-once, latest slot %s (known %v): missed %v, want %v", c.latest, c.known, missed, c.missed)
		}
		if missed && !strings.Contains(o.Events[0].Reason, "a newer slot") {
			t.Errorf("fire-once reason %q", o.Events[0].Reason)
		}
	}
}

// While fires wait for a worker that can run them, past their grace skip
// drops each, fire-once all but the newest, fire-all none.
func TestWaitRoomMisfire(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_100_000).UTC()
	var queued []*store.Outcome
	w := &waitRoom{node: "w1", queue: func(o *store.Outcome) { queued = append(queued, o) }}
	older, newer := now.Add(-40*time.Second), now.Add(-20*time.Second)
	for _, c := range []struct {
		d      store.Delivery
		newest time.Time
		missed bool
	}{
		{lateFire("s", older, events.MisfireSkip), newer, true},
		{lateFire("s", now.Add(-5*time.Second), events.MisfireSkip), newer, false},
		{lateFire("o", older, events.MisfireFireOnce), newer, true},
		{lateFire("o", newer, events.MisfireFireOnce), newer, false},
		{lateFire("a", older, events.MisfireFireAll), newer, false},
	} {
		queued = nil
		if got := w.misfired(c.d, now, c.newest); got != c.missed || (len(queued) == 1) != c.missed {
			t.Errorf("%s at %s (newest waiting %s): missed %v, queued %d; want %v", c.d.Spec.Misfire, c.d.Fire.At, c.newest, got, len(queued), c.missed)
		}
		if c.missed && !strings.Contains(queued[0].Events[0].Reason, "past its 10s misfire grace") {
			t.Errorf("%s: reason %q", c.d.Spec.Misfire, queued[0].Events[0].Reason)
		}
	}
}
