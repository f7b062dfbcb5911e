package planner

import (
	"context"
	"fmt"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// maxCountedSlots bounds the slots Resume counts one by one.
const maxCountedSlots = 1_000_000

// Pause stops the planning of task until Resume: no planner fires its slots.
// Fires already on a stream still run, and manual triggers still do. by
// names who paused it, for the paused event. Errors: store.ErrNotFound for
// a task not in the task set, store.ErrAlreadyPaused when it is paused.
func Pause(ctx context.Context, st *store.Store, task, by string) (time.Time, error) {
	return st.Pause(ctx, task, by)
}

// Resume plans a paused task again from now on. The slots it had while
// paused, and those already overdue when it was paused, are not fired:
// they are recorded as one missed event (reason "paused", policy skip)
// with their count, so nothing is skipped silently. When its window ended
// meanwhile, that event says so too, and the task is done; done reports
// that, or a task that was done before it was paused.
// Errors: store.ErrNotFound, store.ErrNotPaused.
func Resume(ctx context.Context, st *store.Store, task, by string) (done bool, err error) {
	return st.Resume(ctx, task, by, func(spec events.Spec, after, now time.Time) (events.Event, bool, error) {
		sched, err := Compile(spec.Trigger)
		if err != nil {
			return events.Event{}, false, fmt.Errorf("task %q: %w", task, err)
		}
		e := pausedSlots(task, by, sched, after, now)
		_, left := sched.Next(now.Add(-time.Millisecond))
		if !left && e.Count > 0 {
			e.Reason += "; no slot is left after the resume" + windowEnd(spec.Trigger)
		}
		return e, !left, nil
	})
}

// pausedSlots is the missed event for the slots of sched in (after, now).
func pausedSlots(task, by string, sched Schedule, after, now time.Time) events.Event {
	e := events.Event{Type: events.TypeMissed, Task: task, Policy: events.MisfireSkip, Worker: by}
	var last time.Time
	for t, ok := sched.Next(after); ok && t.Before(now); t, ok = sched.Next(t) {
		if e.Count == 0 {
			e.At = t
		}
		last = t
		e.Count++
		if e.Count == maxCountedSlots {
			e.Reason = fmt.Sprintf("paused; at least %d slots (counting stopped)", e.Count)
			break
		}
	}
	if e.Reason == "" {
		e.Reason = "paused"
	}
	if e.Count > 1 {
		e.Until = last
	}
	return e
}
