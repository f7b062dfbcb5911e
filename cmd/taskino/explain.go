package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/taskino/taskino/cmd/internal/inspect"
)

// explain: one slot of a task, in plain words, with the facts behind the
// answer, from the task's spec, state, history, the workers registry and
// the dead letters.

func explainFlags(fs *flag.FlagSet, c *cli) {
	jsonFlag(fs, c)
	fs.StringVar(&c.at, "at", "", "the slot to explain: RFC 3339, or YYYY-MM-DD HH:MM[:SS] in the task's zone; a time between slots means the slot before it (default: the most recent slot, or the next when none was due yet)")
}

func runExplain(ctx context.Context, c *cli, args []string) error {
	if err := want("explain", args, 1, 1, "one task name"); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	vs, now, err := c.views(ctx, args)
	if err != nil {
		return err
	}
	v := vs[0]
	var at time.Time
	if c.at != "" {
		if at, err = inspect.ParseAt(c.at, v.Loc); err != nil {
			return usagef("explain: --at: %v", err)
		}
	}
	ex, err := inspect.Explain(ctx, c.st, v, now, at, c.at)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(c, ex)
	}
	fmt.Fprintf(c.stdout, "%s, slot %s (%s):\n  %s\n", printable(ex.Task), ex.SlotLocal, ex.Slot, printable(ex.Summary))
	if ex.Asked != "" {
		fmt.Fprintf(c.stdout, "  (%s is not a slot of the task: this is the slot before it)\n", printable(ex.Asked))
	}
	for _, f := range ex.Facts {
		fmt.Fprintf(c.stdout, "  - %s\n", printable(f))
	}
	return nil
}
