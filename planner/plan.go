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
// A once task whose instant is before ct.Since or the watermark follows
// onceAfter's rules.
//
// A pass handles at most chunk+limit slots (limit: 1 for fire-once,
// MisfireLimit for fire-all, 0 for skip). When more are due (a long outage
// of a frequent task), the oldest chunk slots are recorded as one missed
// event covering the range (they cannot be among the latest limit), and the
// task stays due for the next pass.
func planTask(ct store.ClaimedTask, sched Schedule, now time.Time, lookahead time.Duration, node string, chunk int) store.TaskPlan {
	horizon := now.Add(max(lookahead, 0))
	spec := ct.Spec.WithDefaults()
	plan := store.TaskPlan{Name: ct.Name, Gen: ct.Gen, Queue: spec.Queue, Mode: spec.Mode, Limit: spec.Limit}

	next, ok := ct.Next, !ct.Next.IsZero()
	if !ok || !ct.Planned.Before(next) {
		after := ct.Since.Add(-time.Millisecond)
		if !ct.Planned.IsZero() && ct.Planned.After(after) {
			after = ct.Planned
		}
		if spec.Trigger.Kind == events.KindOnce {
			var missed *store.Op
			after, missed = onceAfter(spec, ct, after, node)
			if missed != nil {
				plan.Ops = append(plan.Ops, *missed)
				return plan
			}
		}
		next, ok = sched.Next(after)
		if !ok && ct.Next.IsZero() && !ct.Ended && spec.Trigger.Kind != events.KindOnce {
			// An every or cron task with no slot at all between its
			// registration, reschedule or resume and its end: it would
			// be done without a word.
			plan.Ops = append(plan.Ops, noSlotOp(spec, ct, node))
			return plan
		}
	}
	limit := 0
	switch spec.Misfire {
	case events.MisfireFireOnce:
		limit = 1
	case events.MisfireFireAll:
		limit = spec.MisfireLimit
	}

	// A slot's due time is the slot, or with a jitter the slot plus its
	// delay (kept below the gap to the slot after it): horizon, lateness
	// and the due score go by it.
	jit := spec.Trigger.Jitter
	var slots, dues []time.Time
	nextDue, known := next, jit <= 0 // known: nextDue is next's due time
	for ok && len(slots) < chunk+limit && !next.After(horizon) {
		var following time.Time
		var more bool
		nextDue, following, more = Due(sched, ct.Name, next, jit)
		if nextDue.After(horizon) {
			known = true
			break
		}
		slots, dues = append(slots, next), append(dues, nextDue)
		next, ok = following, more
		nextDue, known = next, jit <= 0
	}
	if ok && !known {
		nextDue, _, _ = Due(sched, ct.Name, next, jit)
	}
	more := ok && !nextDue.After(horizon)
	late := 0
	for late < len(slots) && now.Sub(dues[late]) > spec.MisfireGrace {
		late++
	}

	// A slot an except rule excludes is missed, saying which rule.
	ex, _ := sched.(Excluder)
	excluded := func(slot time.Time) bool {
		if ex == nil {
			return false
		}
		rule := ex.Excluded(slot)
		if rule == "" {
			return false
		}
		plan.Ops = append(plan.Ops, store.Op{Slot: slot, Event: events.Event{
			Type: events.TypeMissed, Task: ct.Name, At: slot, Count: 1, Policy: PolicyExcept,
			Reason: "excluded by except " + rule, Worker: node,
		}})
		return true
	}
	// Each missed slot's reason gives its own lateness.
	// miss and fire take the slots from index i to j.
	miss := func(i, j int) {
		for k := i; k < j; k++ {
			slot := slots[k]
			if excluded(slot) {
				continue
			}
			plan.Ops = append(plan.Ops, store.Op{Slot: slot, Event: events.Event{
				Type: events.TypeMissed, Task: ct.Name, At: slot, Count: 1, Policy: spec.Misfire,
				Reason: fmt.Sprintf("planned %s late, past the %s grace", now.Sub(dues[k]).Round(time.Millisecond), spec.MisfireGrace), Worker: node,
			}})
		}
	}
	fire := func(i, j int) {
		for k := i; k < j; k++ {
			slot := slots[k]
			if excluded(slot) {
				continue
			}
			var due time.Time // none unless jittered
			if dues[k].After(slot) {
				due = dues[k]
			}
			f := events.Fire{ID: events.FireID(ct.Name, slot), Task: ct.Name, At: slot, Payload: spec.Payload, Attempt: 1, Due: due}
			plan.Ops = append(plan.Ops, store.Op{Slot: slot, Fire: &f, Event: events.Event{
				Type: events.TypeFired, Task: ct.Name, Fire: f.ID, At: slot, Queue: spec.Queue, Mode: spec.Mode, Worker: node, Due: due,
			}})
			plan.LastRun = &events.LastRun{Task: ct.Name, Fire: f.ID, Scheduled: slot, Due: due, Fired: now, Status: events.StatusFired}
		}
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
			Reason: fmt.Sprintf("planned %s late, past the %s grace", now.Sub(last).Round(time.Millisecond), spec.MisfireGrace), Worker: node}
		if n > 1 {
			ev.Reason = fmt.Sprintf("planned %s to %s late, past the %s grace", now.Sub(last).Round(time.Millisecond), now.Sub(first).Round(time.Millisecond), spec.MisfireGrace)
		}
		if n > 1 {
			ev.Until = last
		}
		plan.Ops = append(plan.Ops, store.Op{Slot: last, Event: ev})
		if n < len(slots) {
			next, nextDue = slots[n], dues[n]
		}
		plan.Next, plan.NextDue = next, nextDue
		return plan
	case spec.Misfire == events.MisfireFireAll:
		keep := late - limit
		if keep < 0 {
			keep = 0
		}
		miss(0, keep)
		fire(keep, late)
	case spec.Misfire == events.MisfireFireOnce && late == len(slots) && late > 0:
		miss(0, late-1)
		fire(late-1, late)
	default: // skip, or fire-once with an on-time slot due
		miss(0, late)
	}
	fire(late, len(slots))
	if ok {
		plan.Next, plan.NextDue = next, nextDue
	}
	return plan
}

// PolicyExcept is the policy of a missed event for a slot a trigger's
// Except excluded.
const PolicyExcept events.Misfire = "except"

// noSlotOp records an every or cron task that has no slot, because its
// window ended before (or has none left after) the time it was registered,
// rescheduled or resumed: one missed event (count 1: it stands for the
// window, whose slots were never the task's) at the window's end, or at
// the registration when the end is still ahead, saying so. The op's slot
// is the registration, past every slot of the window and never ahead of
// now (a watermark there would stop a later schedule); or just after the
// watermark, when an earlier schedule planned past the registration (a
// lookahead), for the store to take it.
func noSlotOp(spec events.Spec, ct store.ClaimedTask, node string) store.Op {
	since := ct.Since.UTC().Truncate(time.Millisecond)
	slot := since
	if !ct.Planned.Before(slot) {
		slot = ct.Planned.UTC().Add(time.Millisecond)
	}
	reason := "it has no slot to fire after it was registered, rescheduled or resumed at " + since.Format(time.RFC3339Nano) +
		windowEnd(spec.Trigger)
	at := since
	if end := spec.Trigger.End.UTC().Truncate(time.Millisecond); !end.IsZero() && end.Before(since) {
		at = end
	}
	return store.Op{Slot: slot, Event: events.Event{Type: events.TypeMissed, Task: ct.Name, At: at, Count: 1,
		Policy: events.MisfireSkip, Worker: node, Reason: reason}}
}

// windowEnd is ": its window ends at" the trigger's end, for the reason of
// a missed event that says a task has no slot left; "" without an end.
func windowEnd(tr events.Trigger) string {
	if tr.End.IsZero() {
		return ""
	}
	return ": its window ends at " + tr.End.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}

// onceAfter applies the rules of a once task whose instant, at, is not an
// ordinary slot, given the time after which planTask looks for its first
// slot; it returns that time, or the op recording the instant missed.
//
//   - at before the time it was registered, rescheduled or resumed
//     (ct.Since), neither fired nor recorded yet: within the misfire grace
//     of Since the instant is its slot all the same (Once(time.Now())
//     reaches Redis a moment after its instant, and from a host whose
//     clock may be behind Redis's); later than that it is not owed, and is
//     recorded missed once, so that it does not pass in silence.
//   - at before the watermark (an earlier schedule of the task planned
//     past it, or the name was used before): the store refuses a fire
//     there, so it is recorded missed. The op's slot is just after the
//     watermark, for the store to take it.
//
// Both missed events carry the policy skip: no misfire policy decided.
func onceAfter(spec events.Spec, ct store.ClaimedTask, after time.Time, node string) (time.Time, *store.Op) {
	at := spec.Trigger.At.UTC().Truncate(time.Millisecond)
	missed := func(slot time.Time, reason string) *store.Op {
		return &store.Op{Slot: slot, Event: events.Event{Type: events.TypeMissed, Task: ct.Name, At: at, Count: 1,
			Policy: events.MisfireSkip, Worker: node, Reason: reason}}
	}
	switch {
	case ct.Planned.After(at):
		return after, missed(ct.Planned.Add(time.Millisecond), fmt.Sprintf(
			"its time is before %s, the latest slot already planned for the task (under an earlier schedule)",
			ct.Planned.Format(time.RFC3339Nano)))
	case !at.Before(ct.Since) || !ct.Planned.Before(at):
		return after, nil // an ordinary slot, or one fired or recorded already
	case ct.Since.Sub(at) > spec.MisfireGrace:
		return after, missed(at, fmt.Sprintf("its time was %s before the task was registered, rescheduled or resumed, past the %s grace",
			ct.Since.Sub(at).Round(time.Millisecond), spec.MisfireGrace))
	}
	return at.Add(-time.Millisecond), nil
}

// Due is when the fire of task's slot is due under a jitter (the slot
// itself without one: events.JitterDelay, kept below the gap to the next
// slot), with that next slot (ok false when there is none), so a caller
// walking the slots computes each once.
func Due(sched Schedule, task string, slot time.Time, jitter time.Duration) (due, following time.Time, ok bool) {
	following, ok = sched.Next(slot)
	if jitter <= 0 {
		return slot, following, ok
	}
	var gap time.Duration
	if ok {
		gap = following.Sub(slot)
	}
	return slot.Add(events.JitterDelay(task, slot, jitter, gap)), following, ok
}
