// Package inspect reads what the store keeps of tasks (spec, state,
// history, workers, dead letters) and answers for people: a task's view and
// status, its slots, and why a slot ran or did not. It only reads; the CLI
// and the web console print what it returns.
package inspect

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// UnknownTaskError is returned by Views for a name the namespace does not
// hold.
type UnknownTaskError struct{ Name string }

func (e *UnknownTaskError) Error() string { return fmt.Sprintf("unknown task %q", e.Name) }

// Run is one run of a task's state, as --json prints it.
type Run struct {
	Fire      string `json:"fire"`
	Status    string `json:"status"`
	Scheduled string `json:"scheduled"`
	Fired     string `json:"fired,omitempty"`
	Started   string `json:"started,omitempty"`
	Finished  string `json:"finished,omitempty"`
	CostMs    *int64 `json:"cost_ms,omitempty"`
	LateMs    *int64 `json:"late_ms,omitempty"`
	Attempt   int    `json:"attempt,omitempty"`
	Worker    string `json:"worker,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Task is a task's state, as ls --json and last-run --json print it.
type Task struct {
	Task        string `json:"task"`
	Trigger     string `json:"trigger"`
	Zone        string `json:"zone"`
	Queue       string `json:"queue"`
	Mode        string `json:"mode"`
	Status      string `json:"status"`
	Why         string `json:"why,omitempty"`
	Next        string `json:"next,omitempty"`
	PausedSince string `json:"paused_since,omitempty"`
	PausedWhy   string `json:"paused_why,omitempty"`
	// Limit is the spec's fire limit; Fired, the fires counted against it.
	Limit       int   `json:"limit,omitempty"`
	Fired       int64 `json:"fired,omitempty"`
	Latest      *Run  `json:"latest_fire,omitempty"`
	Running     *Run  `json:"running,omitempty"`
	LastOutcome *Run  `json:"last_outcome,omitempty"`
	LastSuccess *Run  `json:"last_success,omitempty"`
	// ConsecutiveFailures counts the slots that failed since the last
	// success (a slot's retries count once).
	ConsecutiveFailures int `json:"consecutive_failures"`
}

// ISO is t as RFC 3339 in UTC, "" for the zero time.
func ISO(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func msPtr(d time.Duration) *int64 { n := d.Milliseconds(); return &n }

// RunOf is a run record as --json prints it (nil for nil).
func RunOf(r *events.LastRun) *Run {
	if r == nil {
		return nil
	}
	j := &Run{Fire: r.Fire, Status: r.Status, Scheduled: ISO(r.Scheduled), Fired: ISO(r.Fired), Started: ISO(r.Started),
		Finished: ISO(r.Finished), Attempt: r.Attempt, Worker: r.Worker, Error: r.Error}
	if !r.Started.IsZero() {
		j.LateMs = msPtr(r.Started.Sub(r.DueAt()))
		if !r.Finished.IsZero() {
			j.CostMs = msPtr(r.Finished.Sub(r.Started))
		}
	}
	return j
}

// View is what ls and last-run read of each task.
type View struct {
	Spec        events.Spec
	State       store.TaskState
	Status, Why string
	// Loc is the zone the task's times are shown in (Zone).
	Loc *time.Location
}

// Views reads the state of the named tasks (all when names is empty),
// each with its status by the workers registry.
func Views(ctx context.Context, st *store.Store, names []string) ([]View, time.Time, error) {
	specs, err := st.Specs(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(names) > 0 {
		var keep []events.Spec
		for _, s := range specs {
			if s.Name == names[0] {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 {
			return nil, time.Time{}, &UnknownTaskError{Name: names[0]}
		}
		specs = keep
	}
	return ViewsOf(ctx, st, specs)
}

// ViewsOf reads the state of the tasks of specs, each with its status by
// the workers registry, in one pipeline and two more round trips (the
// workers registry and Redis's clock), whatever the namespace holds.
func ViewsOf(ctx context.Context, st *store.Store, specs []events.Spec) ([]View, time.Time, error) {
	all := make([]string, len(specs))
	for i, s := range specs {
		all[i] = s.Name
	}
	states, err := st.States(ctx, all)
	if err != nil {
		return nil, time.Time{}, err
	}
	ws, err := st.Workers(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	now, err := st.Time(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	out := make([]View, 0, len(specs))
	for _, s := range specs {
		s = s.WithDefaults()
		v := View{Spec: s, State: states[s.Name], Loc: Zone(s)}
		v.Status, v.Why = store.Status(s, v.State, ws)
		out = append(out, v)
	}
	return out, now, nil
}

// Zone is the zone a task's times are shown in: its cron zone, else
// UTC.
func Zone(s events.Spec) *time.Location {
	if s.Trigger.TZ != "" {
		if loc, err := time.LoadLocation(s.Trigger.TZ); err == nil {
			return loc
		}
	}
	return time.UTC
}

// Stamp is t in loc, to the second, with the zone's abbreviation (and
// milliseconds when t has them).
func Stamp(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	if t.Nanosecond() != 0 {
		return t.In(loc).Format("2006-01-02 15:04:05.000 MST")
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// JSON is the view as ls --json prints it.
func (v View) JSON() Task {
	ts := v.State
	j := Task{Task: v.Spec.Name, Trigger: v.Spec.Trigger.String(), Zone: v.Loc.String(), Queue: v.Spec.Queue,
		Mode: string(v.Spec.Mode), Status: v.Status, Why: v.Why, Next: ISO(ts.Next), PausedSince: ISO(ts.Paused), PausedWhy: ts.PausedWhy, Limit: v.Spec.Limit, Fired: ts.Fired,
		Latest: RunOf(ts.Latest), LastOutcome: RunOf(ts.Outcome), LastSuccess: RunOf(ts.Success)}
	if v.Status == store.StatusRunning {
		j.Running = RunOf(ts.Running)
	}
	if ts.Outcome != nil {
		j.ConsecutiveFailures = ts.Outcome.Fails
	}
	return j
}

// JSONOf is the views' JSON form.
func JSONOf(vs []View) []Task {
	out := make([]Task, len(vs))
	for i, v := range vs {
		out[i] = v.JSON()
	}
	return out
}

// Slot is one slot of a task's history, as history --json prints it.
type Slot struct {
	Outcome   string `json:"outcome"`
	Fire      string `json:"fire,omitempty"`
	Scheduled string `json:"scheduled"`
	Until     string `json:"until,omitempty"`
	Count     int64  `json:"count,omitempty"`
	Fired     string `json:"fired,omitempty"`
	Started   string `json:"started,omitempty"`
	Finished  string `json:"finished,omitempty"`
	LateMs    *int64 `json:"late_ms,omitempty"`
	CostMs    *int64 `json:"cost_ms,omitempty"`
	Attempt   int    `json:"attempt,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
	Worker    string `json:"worker,omitempty"`
	Error     string `json:"error,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Policy    string `json:"policy,omitempty"`
	// Origin is "backfill" for a slot taskino backfill fired.
	Origin string `json:"origin,omitempty"`
}

func SlotOf(s store.Slot) Slot {
	j := Slot{Outcome: s.Outcome, Fire: s.Fire, Scheduled: ISO(s.Scheduled), Until: ISO(s.Until), Count: s.Count,
		Fired: ISO(s.Fired), Started: ISO(s.Started), Finished: ISO(s.Finished), Attempt: s.Attempt, Attempts: s.Attempts,
		Worker: s.Worker, Error: s.Error, Reason: s.Reason, Policy: string(s.Policy), Origin: s.Origin}
	if !s.Started.IsZero() || s.Outcome == store.OutcomeWaiting {
		j.LateMs = msPtr(s.Late)
	}
	if !s.Started.IsZero() && !s.Finished.IsZero() {
		j.CostMs = msPtr(s.Finished.Sub(s.Started))
	}
	return j
}

// SlotBefore is the latest slot of sched at or before t; ok is false when
// there is none within a year before t.
func SlotBefore(sched planner.Schedule, t time.Time) (time.Time, bool) {
	for _, back := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 366 * 24 * time.Hour} {
		s, ok := sched.Next(t.Add(-back))
		if !ok || s.After(t) {
			continue
		}
		for {
			n, ok := sched.Next(s)
			if !ok || n.After(t) {
				return s, true
			}
			s = n
		}
	}
	return time.Time{}, false
}

// Took is how long a run took, as words ("" when it has not finished).
func Took(s store.Slot) string {
	if s.Started.IsZero() || s.Finished.IsZero() {
		return ""
	}
	return s.Finished.Sub(s.Started).Round(time.Millisecond).String()
}

// Clip folds s's white space and cuts it to n bytes, marking a cut.
func Clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
