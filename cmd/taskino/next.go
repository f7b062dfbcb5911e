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
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// nextFlags are taskino next's: a stored task, or a trigger given here.
type nextFlags struct {
	cron, every, tz, from string
	dstGap, dstOverlap    string
	n                     int
}

func nextFlagSet(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.next.cron, "cron", "", "a cron expression (5 fields, or 6 with seconds first, or @daily...) instead of a stored task")
	fs.StringVar(&c.next.every, "every", "", "a period (such as 90s or 1h) instead of a stored task")
	fs.StringVar(&c.next.tz, "tz", "", "the time zone of --cron (an IANA name such as Europe/Berlin; default UTC), and the zone --every's times are shown in")
	fs.StringVar(&c.next.from, "from", "", "list the slots after this time (RFC 3339, such as 2026-03-28T00:00:00Z; default now); --every's first slot is at it")
	fs.StringVar(&c.next.dstGap, "dst-gap", "", "with --cron: what a wall time the clocks skip does, shift (fire when the gap ends; the default) or skip")
	fs.StringVar(&c.next.dstOverlap, "dst-overlap", "", "with --cron: what a wall time the clocks repeat does, once or twice (default: once, unless the hour field covers all 24 hours)")
	fs.IntVar(&c.next.n, "n", 5, "how many slots, 1 to 1000")
	fs.BoolVar(&c.json, "json", false, "one JSON array instead of a table")
}

// runNext lists a trigger's next slots: a stored task's (read from Redis,
// from Redis's clock) or one given with --cron or --every (no Redis).
func runNext(ctx context.Context, c *cli, args []string) error {
	f := c.next
	if (f.dstGap != "" || f.dstOverlap != "") && f.cron == "" {
		return usagef("next: --dst-gap and --dst-overlap go with --cron (a stored task has its own)")
	}
	given := 0
	for _, set := range []bool{len(args) > 0, f.cron != "", f.every != ""} {
		if set {
			given++
		}
	}
	if given != 1 || len(args) > 1 {
		return usagef("next: want one of TASK, --cron EXPR or --every D")
	}
	if f.n < 1 || f.n > 1000 {
		return usagef("next: -n %d: want 1 to 1000", f.n)
	}
	var from time.Time
	if f.from != "" {
		t, err := time.Parse(time.RFC3339Nano, f.from)
		if err != nil {
			return usagef("next: --from %q: want an RFC 3339 time such as 2026-03-28T00:00:00Z", f.from)
		}
		from = t
	}
	var trig events.Trigger
	what, task := "", "" // task: a stored task's name
	var paused time.Time // a stored task's pause
	done := false        // a stored task with no slot left to fire
	switch {
	case f.cron != "":
		trig, what = events.Cron(f.cron).In(f.tz).DST(events.DSTGap(f.dstGap), events.DSTOverlap(f.dstOverlap)), fmt.Sprintf("--cron %q", f.cron)
	case f.every != "":
		d, err := time.ParseDuration(f.every)
		if err != nil || d <= 0 {
			return usagef("next: --every %q: want a positive duration such as 90s or 1h", f.every)
		}
		trig, what = events.Every(d), "--every "+f.every
		if from.IsZero() {
			// No start: slots are multiples of the period since the
			// epoch, as the planner fires a task with none.
			from = time.Now()
		} else {
			trig = trig.From(from)
			from = from.Add(-time.Millisecond) // its first slot is at --from
		}
	default:
		spec, err := c.storedSpec(ctx, args[0])
		if err != nil {
			return err
		}
		trig, what, task = spec.Trigger, "task "+args[0], args[0]
		ts, err := c.st.State(ctx, args[0])
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		paused, done = ts.Paused, ts.Done
		if from.IsZero() {
			if from, err = c.st.Time(ctx); err != nil {
				return err
			}
		}
	}
	if from.IsZero() {
		from = time.Now()
	}
	sched, err := planner.Compile(trig)
	if err != nil {
		return usagef("next: %s: %s", what, strings.TrimPrefix(err.Error(), `task "(unnamed)": `))
	}
	zone := trig.TZ
	if f.tz != "" {
		zone = f.tz
	}
	zone, loc, err := zoneOf(zone)
	if err != nil {
		return usagef("next: --tz %q: want an IANA time zone such as Europe/Berlin", zone)
	}
	slots := inspect.NextSlots(sched, loc, from, f.n)
	if task != "" {
		inspect.Jitter(slots, sched, task, trig.Jitter)
	}
	if c.json {
		b, err := json.Marshal(slots)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, string(b))
		return nil
	}
	if len(slots) == 0 {
		fmt.Fprintf(c.stdout, "%s has no slot after %s\n", what, from.In(loc).Format(time.RFC3339))
		return nil
	}
	if !paused.IsZero() {
		fmt.Fprintf(c.stdout, "%s is paused since %s: none of these slots fires until it is resumed (taskino resume)\n", what, stamp(paused))
	}
	if done {
		fmt.Fprintf(c.stdout, "%s is done (its limit of fires is reached, or its window ended): none of these slots fires\n", what)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "#\tTIME (%s)\tUTC\tNOTE\n", zone)
	for i, s := range slots {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i+1, s.At.Format("2006-01-02 15:04:05.000 MST"), s.UTC.Format("2006-01-02 15:04:05.000Z"), s.Note)
	}
	if len(slots) < f.n {
		fmt.Fprintf(tw, "\t(no slot after these)\t\t\n")
	}
	return tw.Flush()
}

// zoneOf loads the time zone named tz ("" for UTC) and returns its name.
func zoneOf(tz string) (string, *time.Location, error) {
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	return tz, loc, err
}
