package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// ls, last-run and history: what the per-task state and history say, as
// tables (times in the task's zone, labelled) or as JSON (RFC 3339 in
// UTC, durations in ms).

// runJSON is one run of a task's state, as --json prints it.
type runJSON struct {
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

// taskJSON is a task's state, as ls --json and last-run --json print it.
type taskJSON struct {
	Task        string   `json:"task"`
	Trigger     string   `json:"trigger"`
	Zone        string   `json:"zone"`
	Queue       string   `json:"queue"`
	Mode        string   `json:"mode"`
	Status      string   `json:"status"`
	Why         string   `json:"why,omitempty"`
	Next        string   `json:"next,omitempty"`
	PausedSince string   `json:"paused_since,omitempty"`
	Latest      *runJSON `json:"latest_fire,omitempty"`
	Running     *runJSON `json:"running,omitempty"`
	LastOutcome *runJSON `json:"last_outcome,omitempty"`
	LastSuccess *runJSON `json:"last_success,omitempty"`
	// ConsecutiveFailures counts the slots that failed since the last
	// success (a slot's retries count once).
	ConsecutiveFailures int `json:"consecutive_failures"`
}

func iso(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func msPtr(d time.Duration) *int64 { n := d.Milliseconds(); return &n }

func runOf(r *events.LastRun) *runJSON {
	if r == nil {
		return nil
	}
	j := &runJSON{Fire: r.Fire, Status: r.Status, Scheduled: iso(r.Scheduled), Fired: iso(r.Fired), Started: iso(r.Started),
		Finished: iso(r.Finished), Attempt: r.Attempt, Worker: r.Worker, Error: r.Error}
	if !r.Started.IsZero() {
		j.LateMs = msPtr(r.Started.Sub(r.Scheduled))
		if !r.Finished.IsZero() {
			j.CostMs = msPtr(r.Finished.Sub(r.Started))
		}
	}
	return j
}

// taskView is what ls and last-run read of each task.
type taskView struct {
	spec        events.Spec
	state       store.TaskState
	status, why string
	loc         *time.Location
}

// views reads the state of the named tasks (all when names is empty),
// each with its status by the workers registry.
func views(ctx context.Context, c *cli, names []string) ([]taskView, time.Time, error) {
	specs, err := c.st.Specs(ctx)
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
			return nil, time.Time{}, c.unknownTask(ctx, names[0])
		}
		specs = keep
	}
	all := make([]string, len(specs))
	for i, s := range specs {
		all[i] = s.Name
	}
	states, err := c.st.States(ctx, all)
	if err != nil {
		return nil, time.Time{}, err
	}
	ws, err := c.st.Workers(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	now, err := c.st.Time(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	out := make([]taskView, 0, len(specs))
	for _, s := range specs {
		s = s.WithDefaults()
		v := taskView{spec: s, state: states[s.Name], loc: taskZone(s)}
		v.status, v.why = store.Status(s, v.state, ws, now)
		out = append(out, v)
	}
	return out, now, nil
}

// taskZone is the zone a task's times are shown in: its cron zone, else
// UTC.
func taskZone(s events.Spec) *time.Location {
	if s.Trigger.TZ != "" {
		if loc, err := time.LoadLocation(s.Trigger.TZ); err == nil {
			return loc
		}
	}
	return time.UTC
}

// zstamp is t in loc, to the second, with the zone's abbreviation (and
// milliseconds when t has them).
func zstamp(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	if t.Nanosecond() != 0 {
		return t.In(loc).Format("2006-01-02 15:04:05.000 MST")
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

func (v taskView) json() taskJSON {
	ts := v.state
	j := taskJSON{Task: v.spec.Name, Trigger: v.spec.Trigger.String(), Zone: v.loc.String(), Queue: v.spec.Queue,
		Mode: string(v.spec.Mode), Status: v.status, Why: v.why, Next: iso(ts.Next), PausedSince: iso(ts.Paused),
		Latest: runOf(ts.Latest), LastOutcome: runOf(ts.Outcome), LastSuccess: runOf(ts.Success)}
	if v.status == store.StatusRunning {
		j.Running = runOf(ts.Running)
	}
	if ts.Outcome != nil {
		j.ConsecutiveFailures = ts.Outcome.Fails
	}
	return j
}

// jsonOf is the views' JSON form.
func jsonOf(vs []taskView) []taskJSON {
	out := make([]taskJSON, len(vs))
	for i, v := range vs {
		out[i] = v.json()
	}
	return out
}

func printJSON(c *cli, v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runLs(ctx context.Context, c *cli, args []string) error {
	if err := want("ls", args, 0, 0, "no arguments"); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	vs, now, err := views(ctx, c, nil)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(c, jsonOf(vs))
	}
	version, err := c.st.Version(ctx)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		fmt.Fprintf(c.stdout, "no tasks in namespace %q\n", c.Namespace)
		return nil
	}
	fmt.Fprintf(c.stdout, "namespace %q, version %d, %d tasks; now %s\n", c.Namespace, version, len(vs), zstamp(now.Truncate(time.Second), time.UTC))
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tTRIGGER\tQUEUE\tSTATUS\tNEXT\tLAST OUTCOME\tLAST SUCCESS")
	for _, v := range vs {
		ts := v.state
		status := v.status
		switch {
		case v.status == store.StatusPaused:
			status += " since " + zstamp(ts.Paused, v.loc)
		case v.status == store.StatusRunning:
			status += " on " + printable(ts.Running.Worker) + " since " + zstamp(ts.Running.Started, v.loc)
		case v.why != "":
			status += ": " + printable(v.why)
		}
		next := "-"
		switch {
		case !ts.Paused.IsZero() || ts.Done:
		case !ts.Next.IsZero():
			next = zstamp(ts.Next, v.loc) + " (" + relative(ts.Next.Sub(now)) + ")"
		default:
			next = "being planned"
		}
		last := "never"
		if o := ts.Outcome; o != nil {
			last = zstamp(o.Scheduled, v.loc) + " " + o.Status
			if o.Fails > 1 {
				last += fmt.Sprintf(" (%d in a row)", o.Fails)
			}
			if o.Error != "" {
				last += ": " + printable(clip(o.Error, 40))
			}
		}
		ok := "never"
		if s := ts.Success; s != nil {
			ok = zstamp(s.Scheduled, v.loc)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(v.spec.Name), printable(v.spec.Trigger.String()),
			printable(v.spec.Queue), status, next, last, ok)
	}
	return tw.Flush()
}

func runLastRun(ctx context.Context, c *cli, args []string) error {
	if err := want("last-run", args, 0, 1, "at most one task name"); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	vs, _, err := views(ctx, c, args)
	if err != nil {
		return err
	}
	if c.json {
		if len(args) == 1 {
			return printJSON(c, vs[0].json())
		}
		return printJSON(c, jsonOf(vs))
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tRUN\tSCHEDULED\tSTATUS\tSTARTED\tCOST\tWORKER\tFIRE\tERROR")
	n := 0
	row := func(v taskView, what string, r *events.LastRun, status string) {
		if r == nil {
			return
		}
		n++
		cost := "-"
		if !r.Finished.IsZero() && !r.Started.IsZero() {
			cost = r.Finished.Sub(r.Started).Round(time.Millisecond).String()
		}
		if status == "" {
			status = r.Status
		}
		if r.Fails > 1 {
			status += fmt.Sprintf(" (%d in a row)", r.Fails)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(v.spec.Name), what, zstamp(r.Scheduled, v.loc), status,
			zstamp(r.Started, v.loc), cost, orDash(printable(r.Worker)), printable(r.Fire), printable(clip(r.Error, 60)))
	}
	for _, v := range vs {
		ts := v.state
		if l := ts.Latest; l != nil && (ts.Outcome == nil || ts.Outcome.Fire != l.Fire) && (ts.Running == nil || ts.Running.Fire != l.Fire || v.status != store.StatusRunning) {
			st := l.Status
			if v.status == store.StatusStuck {
				st = "waiting (stuck)"
			}
			row(v, "latest", l, st)
		}
		if v.status == store.StatusRunning {
			row(v, "running", ts.Running, "")
		}
		row(v, "outcome", ts.Outcome, "")
		if ts.Success != nil && (ts.Outcome == nil || ts.Success.Fire != ts.Outcome.Fire) {
			row(v, "success", ts.Success, "")
		}
	}
	if n == 0 {
		if len(args) == 1 {
			fmt.Fprintf(c.stdout, "%s has not fired yet\n", printable(args[0]))
		} else {
			fmt.Fprintln(c.stdout, "no task has fired yet")
		}
		return nil
	}
	return tw.Flush()
}

func historyFlags(fs *flag.FlagSet, c *cli) {
	jsonFlag(fs, c)
	fs.IntVar(&c.limit, "limit", 20, "the most slots to print (0: all the history keeps)")
}

// slotJSON is one slot of a task's history, as history --json prints it.
type slotJSON struct {
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
}

func slotOf(s store.Slot) slotJSON {
	j := slotJSON{Outcome: s.Outcome, Fire: s.Fire, Scheduled: iso(s.Scheduled), Until: iso(s.Until), Count: s.Count,
		Fired: iso(s.Fired), Started: iso(s.Started), Finished: iso(s.Finished), Attempt: s.Attempt, Attempts: s.Attempts,
		Worker: s.Worker, Error: s.Error, Reason: s.Reason, Policy: string(s.Policy)}
	if !s.Started.IsZero() || s.Outcome == store.OutcomeWaiting {
		j.LateMs = msPtr(s.Late)
	}
	if !s.Started.IsZero() && !s.Finished.IsZero() {
		j.CostMs = msPtr(s.Finished.Sub(s.Started))
	}
	return j
}

func runHistory(ctx context.Context, c *cli, args []string) error {
	if err := want("history", args, 1, 1, "one task name"); err != nil {
		return err
	}
	if c.limit < 0 {
		return usagef("history: --limit %d: want 0 (all) or more", c.limit)
	}
	spec, err := c.storedSpec(ctx, args[0])
	if err != nil {
		return err
	}
	now, err := c.st.Time(ctx)
	if err != nil {
		return err
	}
	slots, err := c.st.History(ctx, args[0], c.limit, now)
	if err != nil {
		return err
	}
	if c.json {
		out := make([]slotJSON, len(slots))
		for i, s := range slots {
			out[i] = slotOf(s)
		}
		return printJSON(c, out)
	}
	if len(slots) == 0 {
		fmt.Fprintf(c.stdout, "%s has no history yet\n", printable(args[0]))
		return nil
	}
	loc := taskZone(spec)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tOUTCOME\tSTARTED\tLATE\tCOST\tTRIES\tWORKER\tDETAIL")
	for _, s := range slots {
		slot := zstamp(s.Scheduled, loc)
		if s.Count > 1 {
			slot += fmt.Sprintf(" (%d slots, to %s)", s.Count, zstamp(s.Until, loc))
		}
		late, cost := "-", "-"
		if !s.Started.IsZero() || s.Outcome == store.OutcomeWaiting {
			late = s.Late.Round(time.Millisecond).String()
		}
		if !s.Started.IsZero() && !s.Finished.IsZero() {
			cost = s.Finished.Sub(s.Started).Round(time.Millisecond).String()
		}
		tries := "-"
		if s.Attempts > 0 {
			tries = fmt.Sprint(s.Attempts)
		}
		detail := s.Error
		if s.Reason != "" {
			detail = s.Reason
			if s.Policy != "" && !strings.HasPrefix(s.Reason, "paused") {
				detail += " (policy " + string(s.Policy) + ")"
			}
			if s.Error != "" {
				detail += "; last error: " + s.Error
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", slot, s.Outcome, zstamp(s.Started, loc), late, cost, tries,
			orDash(printable(s.Worker)), printable(clip(detail, 80)))
	}
	return tw.Flush()
}

// slotBefore is the latest slot of sched at or before t; ok is false when
// there is none within a year before t.
func slotBefore(sched planner.Schedule, t time.Time) (time.Time, bool) {
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
