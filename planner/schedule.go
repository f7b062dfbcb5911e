package planner

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/taskino/taskino/events"
)

// Schedule gives the slots of a trigger. Slots are instants to the
// millisecond, in UTC.
type Schedule interface {
	// Next returns the first slot strictly after t; ok is false when the
	// trigger has none left.
	Next(t time.Time) (slot time.Time, ok bool)
}

// cronParser reads 5 fields (minute first) or 6 (seconds first) and
// descriptors such as @daily. It is the only use of robfig/cron: a parser.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Compile turns a trigger into its schedule, or a *events.SpecError (with
// an empty task name) saying what is wrong with it.
func Compile(t events.Trigger) (Schedule, error) {
	if err := (events.Spec{Name: "-", Trigger: t}).Validate(); err != nil {
		err.(*events.SpecError).Task = ""
		return nil, err
	}
	switch t.Kind {
	case events.KindOnce:
		return onceSchedule{at: t.At.UTC().Truncate(time.Millisecond)}, nil
	case events.KindEvery:
		e := everySchedule{period: t.Period.Milliseconds(), end: endMs(t.End)}
		if !t.Start.IsZero() {
			e.anchor = t.Start.UnixMilli()
			e.hasStart = true
		}
		return e, nil
	}
	loc, _ := events.LoadZone(t.TZ)
	parsed, err := cronParser.Parse(t.Cron)
	if err != nil {
		return nil, &events.SpecError{Field: "cron", Problem: fmt.Sprintf("%q: %v; want 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or a descriptor such as @daily", t.Cron, err)}
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, &events.SpecError{Field: "cron", Problem: fmt.Sprintf("%q is a fixed interval; use an every trigger for it", t.Cron)}
	}
	inZone, naive := *spec, *spec
	inZone.Location, naive.Location = loc, time.UTC
	c := cronSchedule{spec: &inZone, naive: &naive, loc: loc, start: t.Start, end: endMs(t.End),
		everyHour: spec.Hour&(1<<24-1) == 1<<24-1}
	if naive.Next(time.Now()).IsZero() {
		return nil, &events.SpecError{Field: "cron", Problem: fmt.Sprintf("%q never fires (no matching date within five years)", t.Cron)}
	}
	return c, nil
}

// Validate checks a spec completely: everything events.Spec.Validate checks,
// and that its trigger compiles (cron syntax). Errors are *events.SpecError.
func Validate(s events.Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := Compile(s.Trigger); err != nil {
		err.(*events.SpecError).Task = s.Name
		return err
	}
	return nil
}

func endMs(t time.Time) int64 {
	if t.IsZero() {
		return -1
	}
	return t.UnixMilli()
}

// msAfter is the first whole millisecond strictly after t (UnixMilli rounds
// down, also before the epoch).
func msAfter(t time.Time) int64 { return t.UnixMilli() + 1 }

type onceSchedule struct{ at time.Time }

func (o onceSchedule) Next(t time.Time) (time.Time, bool) {
	if o.at.After(t) {
		return o.at, true
	}
	return time.Time{}, false
}

// everySchedule's slots are anchor + k*period (k >= 0 when a start is set,
// any k otherwise: the anchor is then the epoch), up to end (-1: none).
type everySchedule struct {
	anchor, period, end int64
	hasStart            bool
}

func (e everySchedule) Next(t time.Time) (time.Time, bool) {
	after := msAfter(t) // the slot must be >= after
	var slot int64
	if e.hasStart && after <= e.anchor {
		slot = e.anchor
	} else {
		k := (after - e.anchor + e.period - 1) / e.period
		if after-e.anchor < 0 { // integer division truncates toward zero
			k = -((e.anchor - after) / e.period)
		}
		slot = e.anchor + k*e.period
	}
	if e.end >= 0 && slot > e.end {
		return time.Time{}, false
	}
	return time.UnixMilli(slot).UTC(), true
}

// cronSchedule is a parsed cron expression in a zone, with these rules for
// daylight-saving changes (robfig/cron alone skips the first and runs the
// second twice):
//   - spring forward: a wall time that does not exist that day fires once,
//     at the instant the gap ends (02:30 in a 02:00-03:00 gap fires at 03:00);
//   - fall back: a wall time that occurs twice fires at its first
//     occurrence only, unless the hour field is "*" (every hour), in which
//     case the repeated hour runs like any other hour.
type cronSchedule struct {
	spec, naive *cron.SpecSchedule // naive: the same fields on UTC, read as wall-clock time
	loc         *time.Location
	start       time.Time
	end         int64
	everyHour   bool
}

func (c cronSchedule) Next(t time.Time) (time.Time, bool) {
	if !c.start.IsZero() && t.Before(c.start) {
		t = c.start.Add(-time.Nanosecond)
	}
	for {
		n := c.spec.Next(t)
		if n.IsZero() {
			return time.Time{}, false
		}
		if g, ok := c.gapSlot(t, n); ok {
			n = g
		} else if !c.everyHour && repeatedWallTime(n.In(c.loc)) {
			t = n
			continue
		}
		if c.end >= 0 && n.UnixMilli() > c.end {
			return time.Time{}, false
		}
		return n.UTC(), true
	}
}

// gapSlot finds the first spring-forward gap ending in (t, n] in which the
// expression matches a wall time, and returns the instant that gap ends.
func (c cronSchedule) gapSlot(t, n time.Time) (time.Time, bool) {
	p := t.In(c.loc)
	for {
		_, end := p.ZoneBounds()
		if end.IsZero() || end.After(n) {
			return time.Time{}, false
		}
		_, before := end.Add(-time.Nanosecond).Zone()
		_, after := end.Zone()
		if after > before {
			// Wall times [end+before, end+after) do not exist; read them naively.
			gapStart := end.UTC().Add(time.Duration(before) * time.Second)
			gapEnd := end.UTC().Add(time.Duration(after) * time.Second)
			if m := c.naive.Next(gapStart.Add(-time.Nanosecond)); !m.IsZero() && m.Before(gapEnd) {
				return end.UTC(), true
			}
		}
		p = end
	}
}

// repeatedWallTime reports whether t's wall-clock time already occurred
// earlier, in the hour that a fall-back change repeats.
func repeatedWallTime(t time.Time) bool {
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, before := start.Add(-time.Nanosecond).Zone()
	_, now := t.Zone()
	return before > now && t.Sub(start) < time.Duration(before-now)*time.Second
}
