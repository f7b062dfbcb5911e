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
// one within its grace and one under another policy run.
func TestLateSkip(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_100_000).UTC()
	late := now.Add(-31 * time.Second)
	o, missed := lateSkip("w1", lateFire("t", late, events.MisfireSkip), now)
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
		"fire-once":        lateFire("t", late, events.MisfireFireOnce),
	} {
		if _, missed := lateSkip("w1", d, now); missed {
			t.Errorf("%s: recorded missed, want it run", name)
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
