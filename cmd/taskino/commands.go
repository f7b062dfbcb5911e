package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/cmd/internal/tasksfile"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

func applyFlags(fs *flag.FlagSet, c *cli) {
	fs.Int64Var(&c.version, "version", 0, "version to apply (default: the file's version)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "print what applying would change (and each added or rescheduled task's next fire), writing nothing")
}

func runApply(ctx context.Context, c *cli, args []string) error {
	if err := want("apply", args, 1, 1, "one tasks file"); err != nil {
		return err
	}
	if c.version < 0 {
		return usagef("apply: --version %d: want a whole number from 1", c.version)
	}
	f, err := tasksfile.Load(args[0])
	if err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	if c.dryRun {
		return dryRunApply(ctx, c, f, c.version)
	}
	res, err := app.ApplyFile(ctx, c.st, f, c.version)
	if err != nil {
		return err
	}
	if res.Outcome != store.Adopted {
		if ws, err := c.st.Workers(ctx); err != nil {
			fmt.Fprintf(c.stderr, "taskino: warning: cannot read the workers registry to check that each task has a live worker: %s\n", app.OneLine(err))
		} else {
			warnUnrun(c, f, ws)
		}
	}
	switch res.Outcome {
	case store.Adopted:
		v := c.version
		if v == 0 {
			v = f.Version
		}
		return fmt.Errorf("version %d not applied: version %d is stored; apply a higher version", v, res.Version)
	case store.Unchanged:
		fmt.Fprintf(c.stdout, "version %d is already applied with these %d tasks; nothing changed\n", res.Version, len(f.Tasks))
		return nil
	}
	if res.Previous == 0 {
		fmt.Fprintf(c.stdout, "applied version %d (%d tasks)\n", res.Version, len(f.Tasks))
	} else {
		fmt.Fprintf(c.stdout, "applied version %d over %d (%d tasks)\n", res.Version, res.Previous, len(f.Tasks))
	}
	resched := map[string]bool{}
	for _, n := range res.Rescheduled {
		resched[n] = true
	}
	for _, n := range res.Added {
		fmt.Fprintf(c.stdout, "  + %s\n", n)
	}
	for _, n := range res.Changed {
		if resched[n] {
			fmt.Fprintf(c.stdout, "  ~ %s (rescheduled)\n", n)
		} else {
			fmt.Fprintf(c.stdout, "  ~ %s\n", n)
		}
	}
	for _, n := range res.Removed {
		fmt.Fprintf(c.stdout, "  - %s\n", n)
	}
	return nil
}

func triggerFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.payload, "payload", "", "payload text for this run (default: the task's payload)")
	fs.StringVar(&c.id, "id", "", "fire id: a trigger with an id used in the last 24h appends nothing")
}

func runTrigger(ctx context.Context, c *cli, args []string) error {
	if err := want("trigger", args, 1, 1, "one task name"); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	entry, appended, err := c.st.TriggerOnce(ctx, args[0], c.payload, c.id)
	if errors.Is(err, store.ErrUnknownTask) {
		return c.unknownTask(ctx, args[0])
	}
	if err != nil {
		return err // it names the task
	}
	if !appended {
		fmt.Fprintf(c.stdout, "not triggered again: %s was triggered with id %s within %s, as entry %s\n", args[0], printable(c.id), store.TriggerIDTTL, entry)
		return nil
	}
	fmt.Fprintf(c.stdout, "triggered %s: entry %s\n", args[0], entry)
	return nil
}

// storedSpec connects and reads the stored spec of task: an unknown task
// is the error unknownTask says.
func (c *cli) storedSpec(ctx context.Context, task string) (events.Spec, error) {
	if err := c.connect(ctx); err != nil {
		return events.Spec{}, err
	}
	spec, err := c.st.Spec(ctx, task)
	if errors.Is(err, store.ErrNotFound) {
		return events.Spec{}, c.unknownTask(ctx, task)
	}
	return spec, err
}

// unknownTask is the error for a task name not in the stored set, listing
// the names that are.
func (c *cli) unknownTask(ctx context.Context, name string) error {
	specs, err := c.st.Specs(ctx)
	if err != nil {
		return fmt.Errorf("unknown task %q in namespace %q", name, c.Namespace)
	}
	if len(specs) == 0 {
		return fmt.Errorf("unknown task %q: namespace %q has no tasks; apply a tasks file first", name, c.Namespace)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	return fmt.Errorf("unknown task %q in namespace %q; its tasks are: %s", name, c.Namespace, clip(strings.Join(names, ", "), 300))
}

func runPause(ctx context.Context, c *cli, args []string) error {
	if err := want("pause", args, 1, 1, "one task name"); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	at, err := planner.Pause(ctx, c.st, args[0], who())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return c.unknownTask(ctx, args[0])
	case errors.Is(err, store.ErrAlreadyPaused):
		return fmt.Errorf("%s is already paused (since %s)", args[0], stamp(at))
	case err != nil:
		return err
	}
	if st, err := c.st.State(ctx, args[0]); err == nil && st.Done {
		fmt.Fprintf(c.stdout, "paused %s at %s; it has no slot left (done), so this holds back only a new definition applied before taskino resume %s\n", args[0], stamp(at), args[0])
		return nil
	}
	fmt.Fprintf(c.stdout, "paused %s at %s: no fires until taskino resume %s\n", args[0], stamp(at), args[0])
	return nil
}

func runResume(ctx context.Context, c *cli, args []string) error {
	if err := want("resume", args, 1, 1, "one task name"); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	done, err := planner.Resume(ctx, c.st, args[0], who())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return c.unknownTask(ctx, args[0])
	case errors.Is(err, store.ErrNotPaused):
		return fmt.Errorf("%s is not paused", args[0])
	case err != nil:
		return err
	}
	if done {
		fmt.Fprintf(c.stdout, "resumed %s: it has no slot left, so it is done (the slots skipped are recorded as missed)\n", args[0])
		return nil
	}
	fmt.Fprintf(c.stdout, "resumed %s: planned again from now on (the slots skipped are recorded as missed)\n", args[0])
	return nil
}

func deadFlags(fs *flag.FlagSet, c *cli) {
	fs.Int64Var(&c.count, "count", 100, "list: the most dead letters shown, oldest first")
	fs.BoolVar(&c.all, "all", false, "replay or delete: every dead letter")
}

// deadLetters yields the dead letters named by ids, or every one (page by
// page) with --all; a missing id is an error.
func (c *cli) deadLetters(ctx context.Context, ids []string) iter.Seq2[store.DeadLetter, error] {
	return func(yield func(store.DeadLetter, error) bool) {
		if !c.all {
			for _, id := range ids {
				d, err := c.st.DeadLetterByID(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					err = fmt.Errorf("no dead letter %q (see taskino dead)", id)
				}
				if !yield(d, err) || err != nil {
					return
				}
			}
			return
		}
		start := "-"
		for {
			page, err := c.st.ListDead(ctx, start, 1000)
			if err != nil {
				yield(store.DeadLetter{}, err)
				return
			}
			for _, d := range page {
				if !yield(d, nil) {
					return
				}
			}
			if len(page) < 1000 {
				return
			}
			start = "(" + page[len(page)-1].ID
		}
	}
}

func runDead(ctx context.Context, c *cli, args []string) error {
	sub := "list"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list", "ls":
		if err := want("dead list", args, 0, 0, "no arguments"); err != nil {
			return err
		}
		if c.count < 1 {
			return usagef("dead: --count %d: want 1 or more", c.count)
		}
		if err := c.connect(ctx); err != nil {
			return err
		}
		ds, err := c.st.ListDead(ctx, "-", c.count)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			fmt.Fprintln(c.stdout, "no dead letters")
			return nil
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTASK\tFIRE\tREASON\tERROR")
		for _, d := range ds {
			task, fire := d.Task(), d.Fields[events.FieldID]
			if task == "" {
				task = "-"
			}
			if fire == "" {
				fire = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(d.ID), printable(task), printable(fire), printable(clip(d.Reason, 60)), printable(clip(d.Error, 60)))
		}
		return tw.Flush()
	case "replay", "delete":
		if c.all == (len(args) > 0) {
			return usagef("dead %s: want dead-letter ids or --all (one of them)", sub)
		}
		if err := c.connect(ctx); err != nil {
			return err
		}
		letters := c.deadLetters(ctx, args)
		if sub == "delete" {
			n := 0
			for d, err := range letters {
				if err != nil {
					return err
				}
				k, err := c.st.DeleteDead(ctx, d.ID)
				if err != nil {
					return fmt.Errorf("dead delete %s (deleted %d before it): %v", d.ID, n, err)
				}
				n += int(k)
			}
			fmt.Fprintf(c.stdout, "%d deleted\n", n)
			return nil
		}
		n := 0
		var refused []string
		for d, err := range letters {
			if err != nil {
				return err
			}
			entry, err := c.st.Replay(ctx, d, who())
			switch {
			case errors.Is(err, store.ErrNotFound):
				continue // replayed or deleted by someone else meanwhile
			case errors.Is(err, store.ErrNotReplayable):
				// Say why, and go on with the others.
				fmt.Fprintf(c.stderr, "taskino: %v\n", err)
				refused = append(refused, d.ID)
				continue
			case err != nil:
				return fmt.Errorf("dead replay %s (replayed %d before it): %v", d.ID, n, err)
			}
			n++
			fmt.Fprintf(c.stdout, "replayed %s (%s) as %s\n", d.ID, orDash(d.Task()), entry)
		}
		fmt.Fprintf(c.stdout, "%d replayed\n", n)
		if len(refused) > 0 {
			return fmt.Errorf("%d dead letter(s) cannot be replayed: %s; see above, and taskino dead delete ID to drop them", len(refused), clip(strings.Join(refused, " "), 200))
		}
		return nil
	default:
		return usagef("dead: unknown subcommand %q; want list or replay", sub)
	}
}

// who names the CLI user in events: user@host.
func who() string {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if user == "" {
		user = "cli"
	}
	return "taskino-cli:" + user + "@" + host
}

// stamp formats a time for people: UTC, to the millisecond.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func relative(d time.Duration) string {
	if d < 0 {
		return "due"
	}
	return "in " + d.Round(time.Millisecond).String()
}

func clip(s string, n int) string { return inspect.Clip(s, n) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
