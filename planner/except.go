package planner

import (
	"fmt"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
)

// Excluder is a schedule with exceptions (a trigger's Except): slots that
// are the schedule's, and fire nothing. The planner records each one
// missed, with the rule that excluded it.
type Excluder interface {
	// Excluded returns the rule that excludes slot, "" when none does.
	Excluded(slot time.Time) string
}

// exceptSchedule is a schedule and its exceptions, read in loc.
type exceptSchedule struct {
	Schedule
	loc   *time.Location
	days  []exceptDays
	crons []exceptCron
}

type exceptDays struct {
	rule, from, to string // days as YYYY-MM-DD
}

type exceptCron struct {
	rule    string
	c       cronSchedule // its fields, read naively on wall-clock times
	seconds bool         // six fields: matched to the second, else to the minute
}

// withExcept compiles the trigger's Except around sched.
func withExcept(sched Schedule, t events.Trigger) (Schedule, error) {
	if len(t.Except) == 0 {
		return sched, nil
	}
	loc, err := events.LoadZone(t.TZ)
	if err != nil {
		return nil, &events.SpecError{Field: "tz", Problem: err.Error()}
	}
	x := exceptSchedule{Schedule: sched, loc: loc}
	for _, r := range t.Except {
		rule, err := events.ParseExcept(r)
		if err != nil {
			return nil, &events.SpecError{Field: "except", Problem: err.Error()}
		}
		if rule.Cron == "" {
			x.days = append(x.days, exceptDays{rule: strings.TrimSpace(r), from: rule.From, to: rule.To})
			continue
		}
		cs, err := Compile(events.Cron(rule.Cron))
		if err != nil {
			problem := err.Error()
			if se, ok := err.(*events.SpecError); ok {
				problem = se.Problem
			}
			return nil, &events.SpecError{Field: "except", Problem: fmt.Sprintf("rule %q: %s", r, problem)}
		}
		x.crons = append(x.crons, exceptCron{rule: strings.TrimSpace(r), c: cs.(cronSchedule), seconds: len(strings.Fields(rule.Cron)) == 6})
	}
	// Rules that exclude every slot would leave a task that never fires
	// and records a miss for each slot: refused.
	t0, ok := sched.Next(time.Now())
	for i := 0; ok && i < exceptCheck; i++ {
		if x.Excluded(t0) == "" {
			return x, nil
		}
		t0, ok = sched.Next(t0)
	}
	if !ok {
		return x, nil // the trigger ends: its last slots may all be excluded
	}
	return nil, &events.SpecError{Field: "except", Problem: fmt.Sprintf("the rules exclude every one of the next %d slots: the task would never fire", exceptCheck)}
}

// exceptCheck is how many coming slots a trigger's except rules may not
// all exclude.
const exceptCheck = 10_000

// Excluded implements Excluder.
func (x exceptSchedule) Excluded(slot time.Time) string {
	w := slot.In(x.loc)
	day := w.Format("2006-01-02")
	for _, d := range x.days {
		if day >= d.from && day <= d.to {
			return d.rule
		}
	}
	wall := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, time.UTC)
	for _, c := range x.crons {
		at := wall.Truncate(time.Minute)
		if c.seconds {
			at = wall
		}
		if c.c.naiveNext(at.Add(-time.Nanosecond)).Equal(at) {
			return c.rule
		}
	}
	return ""
}
