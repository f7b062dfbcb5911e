package planner

import (
	"fmt"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// planTask decides, for one claimed task at server time now, which slots
// fire, which are recorded missed, and the next slot. It is pure: the store
// records the result atomically, refusing any slot at or before the task's
// watermark.
//
// Slots up to lookahead after now are planned too (their fires wait in the
// stream, and workers hold them until due): a slot is on time when
// now - slot <= MisfireGrace (so every slot ahead of now is), late
// otherwise. On-time
// slots always fire. Late slots follow the misfire policy: fire-once fires
// the latest late slot when no on-time slot is due (else none), fire-all
// fires the latest MisfireLimit late slots, skip fires none; every late slot
// not fired gets a missed event.
//
// A once task whose instant is before ct.Since is handled by onceBefore's
// rule: its instant is its slot when within the grace of ct.Since, and is
// recorded missed otherwise.
//
// A pass handles at most chunk+limit slots (limit: 1 for fire-once,
// MisfireLimit for fire-all, 0 for skip). When more are due (a long outage
// of a frequent task), the oldest chunk slots are recorded as one missed
// event covering the range (they cannot be among the latest limit), and the
// task stays due for the next pass.
func planTask(ct store.ClaimedTask, sched Schedule, now time.Time, lookahead time.Duration, node string, chunk int) store.TaskPlan {
	horizon := now.Add(max(lookahead, 0))
	spec := ct.Spec.WithDefaults()
	plan := store.TaskPlan{Name: ct.Name, Gen: ct.Gen, Queue: spec.Queue, Mode: spec.Mode}

	next, ok := ct.Next, !ct.Next.IsZero()
	if !ok || !ct.Planned.Before(next) {
		after := ct.Since.Add(-time.Millisecond)
		if !ct.Planned.IsZero() && ct.Planned.After(after) {
			after = ct.Planned
		}
		if at, late := onceBefore(spec, ct); late {
			if ct.Since.Sub(at) > spec.MisfireGrace {
				plan.Ops = append(plan.Ops, store.Op{Slot: at, Event: events.Event{
					Type: events.TypeMissed, Task: ct.Name, At: at, Count: 1, Policy: spec.Misfire, Worker: node,
					Reason: fmt.Sprintf("its time was %s before the task was registered, rescheduled or resumed, past the %s grace",
						ct.Since.Sub(at).Round(time.Millisecond), spec.MisfireGrace),
				}})
				return plan
			}
			after = at.Add(-time.Millisecond)
		}
		next, ok = sched.Next(after)
	}
	limit := 0
	switch spec.Misfire {
	case events.MisfireFireOnce:
		limit = 1
	case events.MisfireFireAll:
		limit = spec.MisfireLimit
	}

	var slots []time.Time
	for ok && !next.After(horizon) && len(slots) < chunk+limit {
		slots = append(slots, next)
		next, ok = sched.Next(next)
	}
	more := ok && !next.After(horizon)
	late := 0
	for late < len(slots) && now.Sub(slots[late]) > spec.MisfireGrace {
		late++
	}

	miss := func(s []time.Time, reason string) {
		for _, slot := range s {
			plan.Ops = append(plan.Ops, store.Op{Slot: slot, Event: events.Event{
				Type: events.TypeMissed, Task: ct.Name, At: slot, Count: 1, Policy: spec.Misfire,
				Reason: reason, Worker: node,
			}})
		}
	}
	fire := func(s []time.Time) {
		for _, slot := range s {
			f := events.Fire{ID: events.FireID(ct.Name, slot), Task: ct.Name, At: slot, Payload: spec.Payload, Attempt: 1}
			plan.Ops = append(plan.Ops, store.Op{Slot: slot, Fire: &f, Event: events.Event{
				Type: events.TypeFired, Task: ct.Name, Fire: f.ID, At: slot, Queue: spec.Queue, Mode: spec.Mode, Worker: node,
			}})
			plan.LastRun = &events.LastRun{Task: ct.Name, Fire: f.ID, Scheduled: slot, Fired: now, Status: events.StatusFired}
		}
	}
	lateReason := func(s []time.Time) string {
		if len(s) == 0 {
			return ""
		}
		return fmt.Sprintf("planned %s late, past the %s grace", now.Sub(s[len(s)-1]).Round(time.Millisecond), spec.MisfireGrace)
	}

	switch {
	case more && late == len(slots):
		// All collected slots are late and more are due: the oldest ones
		// cannot be among the latest `limit`; record them as one range.
		n := len(slots) - limit
		if n < 1 {
			n = len(slots)
		}
		first, last := slots[0], slots[n-1]
		ev := events.Event{Type: events.TypeMissed, Task: ct.Name, At: first, Count: int64(n), Policy: spec.Misfire,
			Reason: lateReason(slots[:n]), Worker: node}
		if n > 1 {
			ev.Until = last
		}
		plan.Ops = append(plan.Ops, store.Op{Slot: last, Event: ev})
		if n < len(slots) {
			next = slots[n]
		}
		plan.Next = next
		return plan
	case spec.Misfire == events.MisfireFireAll:
		keep := late - limit
		if keep < 0 {
			keep = 0
		}
		miss(slots[:keep], lateReason(slots[:keep]))
		fire(slots[keep:late])
	case spec.Misfire == events.MisfireFireOnce && late == len(slots) && late > 0:
		miss(slots[:late-1], lateReason(slots[:late-1]))
		fire(slots[late-1 : late])
	default: // skip, or fire-once with an on-time slot due
		miss(slots[:late], lateReason(slots[:late]))
	}
	fire(slots[late:])
	if ok {
		plan.Next = next
	}
	return plan
}

// onceBefore reports whether spec is a once task whose instant, at, is
// before the time it was registered, rescheduled or resumed (ct.Since), and
// neither fired nor recorded missed yet. Within the misfire grace of Since
// the instant is its slot all the same: Once(time.Now()) reaches Redis a
// moment after its instant, and from a host whose clock may be behind
// Redis's. Later than that it is not owed, and is recorded missed once, so
// that it does not pass in silence.
func onceBefore(spec events.Spec, ct store.ClaimedTask) (at time.Time, late bool) {
	if spec.Trigger.Kind != events.KindOnce {
		return time.Time{}, false
	}
	at = spec.Trigger.At.UTC().Truncate(time.Millisecond)
	return at, at.Before(ct.Since) && ct.Planned.Before(at)
}
