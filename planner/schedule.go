package planner

import (
	"fmt"
	"strings"
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
	sched, err := compile(t)
	if err != nil {
		return nil, err
	}
	return withExcept(sched, t)
}

func compile(t events.Trigger) (Schedule, error) {
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
	expr := strings.TrimSpace(t.Cron)
	var days *dayFields
	if f := strings.Fields(expr); !strings.HasPrefix(expr, "@") && (len(f) == 5 || len(f) == 6) {
		i := len(f) - 3 // the day-of-month; the day-of-week is two after it
		d, err := parseDays(f[i], f[i+2])
		if err != nil {
			return nil, &events.SpecError{Field: "cron", Problem: fmt.Sprintf("%q: %v", t.Cron, err)}
		}
		if err := fieldError(f); err != nil {
			return nil, &events.SpecError{Field: "cron", Problem: fmt.Sprintf("%q: %v", t.Cron, err)}
		}
		if d.special() {
			f[i], f[i+2] = "*", "*" // the schedule checks the days itself
			days = d
		} else {
			f[i], f[i+2] = plain(d.dom, d.domStar, 1, 31), plain(d.dow, d.dowStar, 0, 6)
		}
		expr = strings.Join(f, " ")
	}
	parsed, err := cronParser.Parse(expr)
	if err != nil {
		return nil, &events.SpecError{Field: "cron", Problem: fmt.Sprintf("%q: %v; want 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or a descriptor such as @daily", t.Cron, err)}
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, &events.SpecError{Field: "cron", Problem: fmt.Sprintf("%q is a fixed interval; use an every trigger for it", t.Cron)}
	}
	naive := *spec
	naive.Location = time.UTC
	c := cronSchedule{naive: &naive, days: days, loc: loc, start: t.Start, end: endMs(t.End),
		everyHour: spec.Hour&(1<<24-1) == 1<<24-1, gapSkip: t.DSTGap == events.GapSkip}
	c.twice = t.DSTOverlap == events.OverlapTwice || (t.DSTOverlap == "" && c.everyHour)
	if c.naiveNext(time.Now()).IsZero() {
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
// daylight-saving changes (the defaults; the trigger's DSTGap and
// DSTOverlap choose others):
//   - spring forward: a wall time that does not exist that day fires once,
//     at the instant the gap ends (02:30 in a 02:00-03:00 gap fires at 03:00);
//     with GapSkip, not at all;
//   - fall back: a wall time that occurs twice fires at its first
//     occurrence only, unless the hour field covers all 24 hours, in which
//     case the repeated hour runs like any other hour; OverlapOnce and
//     OverlapTwice choose one or the other whatever the hour field.
//
// robfig/cron's own zone handling assumes whole-hour shifts at hour
// boundaries (it skips or doubles slots in zones such as
// Australia/Lord_Howe or Asia/Gaza), so it is used only to match wall-clock
// times (naive, on UTC); mapping them to instants is done here.
type cronSchedule struct {
	naive     *cron.SpecSchedule // the fields on UTC, read as wall-clock time
	days      *dayFields         // the day fields, when they hold a rule robfig/cron lacks
	loc       *time.Location
	start     time.Time
	end       int64
	everyHour bool // the hour field covers all 24 hours
	twice     bool // a repeated wall time fires at both occurrences
	gapSkip   bool // a wall time in a gap fires not at all (else: once, when the gap ends)
}

func (c cronSchedule) Next(t time.Time) (time.Time, bool) {
	if !c.start.IsZero() && t.Before(c.start) {
		t = c.start.Add(-time.Nanosecond)
	}
	n, ok := c.next(t)
	if !ok || (c.end >= 0 && n.UnixMilli() > c.end) {
		return time.Time{}, false
	}
	return n.UTC(), true
}

// next walks the zone's offset periods from t. Within a period the wall
// clock is the instant plus a fixed offset, so the first naive match after
// the wall time of t that falls inside the period is the next slot, unless
// it is the second occurrence of a wall time repeated at the period's start.
// A period with no slot left may end in a spring-forward gap whose wall
// times match: that fires once, at the gap's end.
func (c cronSchedule) next(t time.Time) (time.Time, bool) {
	after, p := t, t // slots are strictly after `after`; p selects the period
	for periods := 0; periods < 1000; periods++ {
		lt := p.In(c.loc)
		_, off := lt.Zone()
		start, end := zoneBounds(lt)
		o := time.Duration(off) * time.Second
		var repeatedUntil time.Time // walls before it, at this period's start, occurred in the previous period
		if !start.IsZero() {
			if _, prev := start.Add(-time.Nanosecond).Zone(); prev > off {
				repeatedUntil = start.UTC().Add(time.Duration(prev) * time.Second)
			}
		}
		wall := after.UTC().Add(o)
		for {
			m := c.naiveNext(wall)
			if m.IsZero() {
				return time.Time{}, false
			}
			u := m.Add(-o)
			if !end.IsZero() && !u.Before(end) {
				break
			}
			if !c.twice && m.Before(repeatedUntil) {
				wall = m
				continue
			}
			return u, true
		}
		if _, nextOff := end.Zone(); nextOff > off && !c.gapSkip {
			gapStart := end.UTC().Add(o)
			gapEnd := end.UTC().Add(time.Duration(nextOff) * time.Second)
			if m := c.naiveNext(gapStart.Add(-time.Nanosecond)); !m.IsZero() && m.Before(gapEnd) {
				return end, true
			}
		}
		if e := end.Add(-time.Nanosecond); e.After(after) {
			after = e
		}
		p = end
	}
	return time.Time{}, false
}

// zoneBounds is t's offset period [start, end) (zero end: none). It takes
// time.Time.ZoneBounds, except where that is wrong: for years a zone file
// covers by its closing rule, Go (as of 1.26) can return an end at or
// before t (at the end of leap years); the end is then found from Zone
// offsets, which are right. An end with the same offset on both sides (a
// year boundary) is harmless to next.
func zoneBounds(t time.Time) (start, end time.Time) {
	start, end = t.ZoneBounds()
	if end.IsZero() || end.After(t) {
		return start, end
	}
	return start, nextOffsetChange(t)
}

// nextOffsetChange finds the first instant after t whose UTC offset differs
// from t's, stepping 12 hours at a time (offset periods are longer) and then
// bisecting to the second; it returns t plus about 400 days when there is
// none that soon (an end with the same offset on both sides).
func nextOffsetChange(t time.Time) time.Time {
	_, off := t.Zone()
	const step = 12 * time.Hour
	lo := t.Truncate(time.Second) // transitions fall on whole seconds, so bisecting ends on one
	for i := 0; i < 800; i++ {
		hi := lo.Add(step)
		if _, o := hi.Zone(); o != off {
			for hi.Sub(lo) > time.Second {
				mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
				if !mid.After(lo) {
					break
				}
				if _, o := mid.Zone(); o != off {
					hi = mid
				} else {
					lo = mid
				}
			}
			return hi
		}
		lo = hi
	}
	return lo
}
