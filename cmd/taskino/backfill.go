package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// backfillFlags are taskino backfill's own flags.
type backfillFlags struct {
	from, to, overlap string
	window            int
	unchecked         bool
}

func backfillFlagSet(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.backfill.from, "from", "", "the first time of the range (RFC 3339, or a date and time in the task's zone such as 2026-11-01 00:00)")
	fs.StringVar(&c.backfill.to, "to", "", "the last time of the range, included (the same forms)")
	fs.StringVar(&c.backfill.overlap, "overlap", "", "allow: up to --window of the backfill's fires wait or run at once; skip, buffer-one or cancel-previous: one at a time (default: the task's overlap policy)")
	fs.IntVar(&c.backfill.window, "window", 10, "with --overlap allow, the most fires appended and not yet finished at once, 1 to 10000")
	fs.BoolVar(&c.backfill.unchecked, "unchecked", false, "fire the slots older than the events stream reaches too (whether they fired cannot be checked: one that did runs again)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "list what would be fired and what fired already; append nothing")
}

// runBackfill fires the slots of a task's trigger in a range that did not
// fire, paced, and waits for their outcomes.
func runBackfill(ctx context.Context, c *cli, args []string) error {
	if err := want("backfill", args, 1, 1, "one task name"); err != nil {
		return err
	}
	f := c.backfill
	if f.from == "" || f.to == "" {
		return usagef("backfill: want --from and --to")
	}
	spec, err := c.storedSpec(ctx, args[0])
	if err != nil {
		return err
	}
	_, loc, err := zoneOf(spec.Trigger.TZ)
	if err != nil {
		return err
	}
	from, err := inspect.ParseAt(f.from, loc)
	if err != nil {
		return usagef("backfill: --from %q: want RFC 3339 such as 2026-11-01T00:00:00Z, or a date and time in the task's zone such as 2026-11-01 00:00", f.from)
	}
	to, err := inspect.ParseAt(f.to, loc)
	if err != nil {
		return usagef("backfill: --to %q: want RFC 3339 such as 2026-11-30T23:59:59Z, or a date and time in the task's zone such as 2026-11-30 23:59", f.to)
	}
	opts := planner.BackfillOptions{Overlap: events.Overlap(f.overlap), Window: f.window, Unchecked: f.unchecked, DryRun: c.dryRun, By: who()}
	lastLine := time.Time{}
	opts.Progress = func(r planner.BackfillReport) {
		if time.Since(lastLine) < time.Second && r.Done < len(r.Fired) {
			return
		}
		lastLine = time.Now()
		fmt.Fprintln(c.stdout, strings.TrimSpace(fmt.Sprintf("backfill %s: %d fired, %d finished %s", args[0], len(r.Fired), r.Done, outcomes(r.Outcomes))))
	}
	rep, err := planner.Backfill(ctx, c.st, args[0], from, to, opts)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	verb := "fired"
	if c.dryRun {
		verb = "to fire"
	}
	fmt.Fprintf(c.stdout, "backfill %s from %s to %s: %d slots; %s %d; fired already %d; excluded by except %d\n", args[0],
		stamp(from), stamp(to), rep.Slots, verb, len(rep.Fired), len(rep.AlreadyFired), len(rep.Excluded))
	show := func(what string, ts []time.Time, why map[time.Time]string) {
		for i, t := range ts {
			if i == 10 {
				fmt.Fprintf(c.stdout, "  ... and %d more %s\n", len(ts)-10, what)
				break
			}
			line := "  " + what + " " + stamp(t)
			if w := why[t]; w != "" {
				line += ": " + w
			}
			fmt.Fprintln(c.stdout, line)
		}
	}
	show("fired already", rep.AlreadyFired, rep.Why)
	show("excluded", rep.Excluded, nil)
	if c.dryRun {
		show("to fire", rep.Fired, nil)
		return nil
	}
	fmt.Fprintln(c.stdout, strings.TrimSpace(fmt.Sprintf("outcomes: %d of %d finished %s", rep.Done, len(rep.Fired), outcomes(rep.Outcomes))))
	if err != nil {
		return fmt.Errorf("backfill %s stopped before every fire finished: %w (the fires appended still run; taskino history %s shows them)", args[0], err, args[0])
	}
	return nil
}

// outcomes is a count by outcome for people: "(completed 3, dead 1)".
func outcomes(m map[string]int) string {
	var parts []string
	for _, k := range []string{"completed", "failed", "dead", "missed", "cancelled"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
