package inspect

import (
	"fmt"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// NextSlot is one coming slot of a task (a line of taskino next).
type NextSlot struct {
	At   time.Time `json:"at"`   // in the trigger's zone
	UTC  time.Time `json:"utc"`  // the same instant
	Note string    `json:"note"` // a DST change before it, an exclusion, else empty
	// Excluded is the except rule that excludes the slot ("": it fires).
	Excluded string `json:"excluded,omitempty"`
	// Due is when a jittered task's fire of the slot is due (see Jitter).
	Due *time.Time `json:"due,omitempty"`
}

// Jitter sets each slot's Due to its time plus task's jitter delay (the
// delay every planner computes), and says so in its note; a slot that
// fires nothing is left alone. No jitter: slots unchanged.
func Jitter(slots []NextSlot, sched planner.Schedule, task string, jitter time.Duration) {
	if jitter <= 0 {
		return
	}
	for i := range slots {
		s := &slots[i]
		if s.Excluded != "" {
			continue
		}
		dueUTC, _, _ := planner.Due(sched, task, s.UTC, jitter)
		d := dueUTC.Sub(s.UTC)
		due := s.At.Add(d)
		s.Due = &due
		s.Note = strings.TrimPrefix(s.Note+"; ", "; ") + "jitter: due " + d.String() + " after the slot"
	}
}

// NextSlots lists up to n slots of sched after from, in loc, each with a
// note when the zone's UTC offset changed since the one before (or since
// from, for the first): a DST change, which moves a wall-clock slot or
// makes a fixed period fall at another local time.
func NextSlots(sched planner.Schedule, loc *time.Location, from time.Time, n int) []NextSlot {
	out := []NextSlot{}
	_, prevOff := from.In(loc).Zone()
	for t, ok := sched.Next(from); ok && len(out) < n; t, ok = sched.Next(t) {
		at := t.In(loc)
		s := NextSlot{At: at, UTC: t.UTC()}
		if _, off := at.Zone(); off != prevOff {
			s.Note = fmt.Sprintf("DST: UTC offset %s -> %s before this slot", offset(prevOff), offset(off))
			prevOff = off
		}
		if ex, ok := sched.(planner.Excluder); ok {
			if rule := ex.Excluded(t); rule != "" {
				s.Excluded = rule
				s.Note = strings.TrimPrefix(s.Note+"; ", "; ") + "excluded by except " + rule + ": fires nothing"
			}
		}
		out = append(out, s)
	}
	return out
}

// offset formats a UTC offset in seconds as +01:00.
func offset(sec int) string {
	sign := '+'
	if sec < 0 {
		sign, sec = '-', -sec
	}
	return fmt.Sprintf("%c%02d:%02d", sign, sec/3600, sec%3600/60)
}

// NextFire is the first slot of spec from next on that fires: next,
// unless the trigger's except rules exclude it; then the first of the
// 1,000 slots after it they do not (next when none is found).
func NextFire(spec events.Spec, next time.Time) time.Time {
	if len(spec.Trigger.Except) == 0 || next.IsZero() {
		return next
	}
	sched, err := planner.Compile(spec.Trigger)
	if err != nil {
		return next
	}
	x, _ := sched.(planner.Excluder)
	for t, i := next, 0; x != nil && i < 1000; i++ {
		if x.Excluded(t) == "" {
			return t
		}
		n, ok := sched.Next(t)
		if !ok {
			break
		}
		t = n
	}
	return next
}
