package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// ls, last-run and history: what the per-task state and history say, as
// tables (times in the task's zone, labelled) or as JSON (RFC 3339 in
// UTC, durations in ms).

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
	specs, bad, err := c.st.SpecsAndBad(ctx)
	if err != nil {
		return err
	}
	for name, why := range bad {
		fmt.Fprintf(c.stderr, "taskino: the stored spec of task %s does not decode (%s); it is left out\n", printable(name), printable(why.Error()))
	}
	vs, now, err := inspect.ViewsOf(ctx, c.st, specs)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(c, inspect.JSONOf(vs))
	}
	version, err := c.st.Version(ctx)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		fmt.Fprintf(c.stdout, "no tasks in namespace %q\n", c.Namespace)
		return nil
	}
	fmt.Fprintf(c.stdout, "namespace %q, version %d, %d tasks; now %s\n", c.Namespace, version, len(vs), inspect.Stamp(now.Truncate(time.Second), time.UTC))
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tTRIGGER\tQUEUE\tSTATUS\tNEXT\tLAST OUTCOME\tLAST SUCCESS")
	for _, v := range vs {
		ts := v.State
		status := v.Status
		switch {
		case v.Status == store.StatusPaused:
			status += " since " + inspect.Stamp(ts.Paused, v.Loc)
			if ts.PausedWhy != "" {
				status += " " + printable(clip(ts.PausedWhy, 80))
			}
		case v.Status == store.StatusDone && v.Spec.Limit > 0 && ts.Fired >= int64(v.Spec.Limit):
			status += fmt.Sprintf(" (limit of %d fires reached)", v.Spec.Limit)
		case v.Status == store.StatusRunning:
			status += " on " + printable(ts.Running.Worker) + " since " + inspect.Stamp(ts.Running.Started, v.Loc)
		case v.Why != "":
			status += ": " + printable(v.Why)
		}
		next := "-"
		switch {
		case !ts.Paused.IsZero() || ts.Done:
		case !ts.Next.IsZero():
			n := inspect.NextFire(v.Spec, ts.Next)
			next = inspect.Stamp(n, v.Loc) + " (" + relative(n.Sub(now)) + ")"
		default:
			next = "being planned"
		}
		last := "never"
		if o := ts.Outcome; o != nil {
			last = inspect.Stamp(o.Scheduled, v.Loc) + " " + o.Status
			if o.Fails > 1 {
				last += fmt.Sprintf(" (%d in a row)", o.Fails)
			}
			if o.Error != "" {
				last += ": " + printable(clip(o.Error, 40))
			}
		}
		ok := "never"
		if s := ts.Success; s != nil {
			ok = inspect.Stamp(s.Scheduled, v.Loc)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(v.Spec.Name), printable(v.Spec.Trigger.String()),
			printable(v.Spec.Queue), status, next, last, ok)
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
	vs, _, err := c.views(ctx, args)
	if err != nil {
		return err
	}
	if c.json {
		if len(args) == 1 {
			return printJSON(c, vs[0].JSON())
		}
		return printJSON(c, inspect.JSONOf(vs))
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tRUN\tSCHEDULED\tSTATUS\tSTARTED\tCOST\tWORKER\tFIRE\tERROR")
	n := 0
	row := func(v inspect.View, what string, r *events.LastRun, status string) {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(v.Spec.Name), what, inspect.Stamp(r.Scheduled, v.Loc), status,
			inspect.Stamp(r.Started, v.Loc), cost, orDash(printable(r.Worker)), printable(r.Fire), printable(clip(r.Error, 60)))
	}
	for _, v := range vs {
		ts := v.State
		if l := ts.Latest; l != nil && (ts.Outcome == nil || ts.Outcome.Fire != l.Fire) && (ts.Running == nil || ts.Running.Fire != l.Fire || v.Status != store.StatusRunning) {
			st := l.Status
			if v.Status == store.StatusStuck {
				st = "waiting (stuck)"
			}
			row(v, "latest", l, st)
		}
		if v.Status == store.StatusRunning {
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
		out := make([]inspect.Slot, len(slots))
		for i, s := range slots {
			out[i] = inspect.SlotOf(s)
		}
		return printJSON(c, out)
	}
	if len(slots) == 0 {
		fmt.Fprintf(c.stdout, "%s has no history yet\n", printable(args[0]))
		return nil
	}
	loc := inspect.Zone(spec)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tOUTCOME\tSTARTED\tLATE\tCOST\tTRIES\tWORKER\tDETAIL")
	for _, s := range slots {
		slot := inspect.Stamp(s.Scheduled, loc)
		if s.Count > 1 {
			slot += fmt.Sprintf(" (%d slots, to %s)", s.Count, inspect.Stamp(s.Until, loc))
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
		outcome := s.Outcome
		if s.Origin != "" {
			outcome += " (" + s.Origin + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", slot, outcome, inspect.Stamp(s.Started, loc), late, cost, tries,
			orDash(printable(s.Worker)), printable(clip(detail, 80)))
	}
	return tw.Flush()
}

// views reads the named tasks' views (all when names is empty); an unknown
// name's error lists the namespace's tasks.
func (c *cli) views(ctx context.Context, names []string) ([]inspect.View, time.Time, error) {
	vs, now, err := inspect.Views(ctx, c.st, names)
	var unknown *inspect.UnknownTaskError
	if errors.As(err, &unknown) {
		return nil, now, c.unknownTask(ctx, unknown.Name)
	}
	return vs, now, err
}
